// Package app is the composition of the provider binary: what the provider's server (cmd/provider) and its
// `provider mount` subcommand share: the Vault client flags with their VAULT_*
// defaults, the HMAC key file format, and the construction of the
// provider.Provider, so that both run the same Mount pipeline wired the same
// way.
package app

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/kubeapi"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// VaultFlags registers the Vault flags (-vault-addr, -vault-mount,
// -vault-namespace, -vault-tls-*, -allowed-vault-addresses,
// -vault-max-retries, -vault-timeout, -vault-client-cache-size,
// -vault-max-connections) on fs.
// Their defaults come from the VAULT_* environment read through getenv, so the
// precedence is environment < flag < SecretProviderClass parameter. Call
// CheckVaultFlags after parsing.
func VaultFlags(fs *flag.FlagSet, d *config.Defaults, o *vault.Options, getenv func(string) string) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envBool := func(name string) bool {
		b, _ := strconv.ParseBool(getenv(name))
		return b
	}
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(getenv(name)); err == nil {
			return n
		}
		return def
	}
	fs.StringVar(&d.VaultAddress, "vault-addr", envOr("VAULT_ADDR", "https://127.0.0.1:8200"), "default Vault address [$VAULT_ADDR]")
	fs.StringVar(&d.AuthMountPath, "vault-mount", "kubernetes", "default Vault auth mount (kubernetes or jwt auth)")
	fs.StringVar(&d.VaultNamespace, "vault-namespace", getenv("VAULT_NAMESPACE"), "default Vault Enterprise namespace [$VAULT_NAMESPACE]")
	fs.StringVar(&d.TLS.CACert, "vault-tls-ca-cert", getenv("VAULT_CACERT"), "PEM CA certificate for Vault [$VAULT_CACERT]")
	fs.StringVar(&d.TLS.CADirectory, "vault-tls-ca-directory", getenv("VAULT_CAPATH"), "directory of PEM CA certificates for Vault [$VAULT_CAPATH]")
	fs.StringVar(&d.TLS.ServerName, "vault-tls-server-name", getenv("VAULT_TLS_SERVER_NAME"), "TLS server name for Vault [$VAULT_TLS_SERVER_NAME]")
	fs.StringVar(&d.TLS.ClientCert, "vault-tls-client-cert", getenv("VAULT_CLIENT_CERT"), "client certificate for Vault mTLS [$VAULT_CLIENT_CERT]")
	fs.StringVar(&d.TLS.ClientKey, "vault-tls-client-key", getenv("VAULT_CLIENT_KEY"), "client key for Vault mTLS [$VAULT_CLIENT_KEY]")
	fs.BoolVar(&d.TLS.SkipTLSVerify, "vault-tls-skip-verify", envBool("VAULT_SKIP_VERIFY"), "do not verify Vault's certificate (insecure) [$VAULT_SKIP_VERIFY]")
	fs.Func("allowed-vault-addresses", "comma-separated Vault addresses a SecretProviderClass may use besides -vault-addr: origins (https://vault-2.example:8200) or prefixes ending in * (https://vault-*); only these and -vault-addr's get the -vault-tls-* settings. Default: any address may be named, and only -vault-addr's get them", func(s string) error {
		d.AllowedVaultAddresses = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				d.AllowedVaultAddresses = append(d.AllowedVaultAddresses, e)
			}
		}
		return nil // CheckVaultFlags checks them, without quoting credentials
	})
	fs.IntVar(&o.MaxRetries, "vault-max-retries", envInt("VAULT_MAX_RETRIES", vault.DefaultOptions.MaxRetries), "retries of a Vault call on connection errors and 5xx [$VAULT_MAX_RETRIES]")
	fs.DurationVar(&o.Timeout, "vault-timeout", vault.DefaultOptions.Timeout, "timeout of one Vault HTTP attempt")
	fs.IntVar(&o.MaxClients, "vault-client-cache-size", vault.DefaultOptions.MaxClients, "Vault clients kept (one per address, namespace and TLS setting, LRU); the least recently used one's idle connections are closed")
	fs.IntVar(&o.MaxConnections, "vault-max-connections", vault.DefaultOptions.MaxConnections, "connections kept to one Vault address, busy or idle; more requests at once wait for one")
}

// CheckVaultFlags checks the parsed Vault flags: no credentials in
// -vault-addr ($VAULT_ADDR), well-formed -allowed-vault-addresses, a client
// cache of at least one. Its errors never quote a password.
func CheckVaultFlags(d *config.Defaults, o *vault.Options) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if o.MaxClients < 1 {
		return fmt.Errorf("-vault-client-cache-size %d must be at least 1", o.MaxClients)
	}
	if o.MaxConnections < 1 {
		return fmt.Errorf("-vault-max-connections %d must be at least 1", o.MaxConnections)
	}
	return nil
}

// LimitFlags registers the flags of config.Limits (-max-attributes-bytes,
// -max-objects-bytes, -max-objects, -max-template-bytes,
// -max-templates-bytes, -max-secret-args-bytes) on fs: what parsing one
// Mount's SecretProviderClass may cost. Each refusal names its flag.
func LimitFlags(fs *flag.FlagSet, l *config.Limits) {
	d := config.DefaultLimits
	fs.IntVar(&l.MaxAttributesBytes, config.FlagMaxAttributesBytes, d.MaxAttributesBytes, "largest Mount attributes JSON (SecretProviderClass parameters with the pod's volumeAttributes), in bytes; 0: the default")
	fs.IntVar(&l.MaxObjectsBytes, config.FlagMaxObjectsBytes, d.MaxObjectsBytes, "largest objects parameter, in bytes; 0: the default")
	fs.IntVar(&l.MaxObjects, config.FlagMaxObjects, d.MaxObjects, "most objects in one SecretProviderClass; 0: the default")
	fs.IntVar(&l.MaxTemplateBytes, config.FlagMaxTemplateBytes, d.MaxTemplateBytes, "largest template source of one object, in bytes; 0: the default")
	fs.IntVar(&l.MaxTemplatesBytes, config.FlagMaxTemplatesBytes, d.MaxTemplatesBytes, "largest total of a SecretProviderClass's template sources, in bytes; 0: the default")
	fs.IntVar(&l.MaxSecretArgsBytes, config.FlagMaxSecretArgsBytes, d.MaxSecretArgsBytes, "largest total of a SecretProviderClass's secretArgs, as JSON, in bytes; 0: the default")
}

// Tuning are the provider's cache and limit settings.
type Tuning struct {
	CacheSize        int     // Vault tokens cached (-cache-size)
	LeaseCacheSize   int     // leased answers cached (-lease-cache-size)
	IdentitiesPerPod int     // Vault tokens one pod keeps cached (-max-identities-per-pod); 0: the default
	LeasesPerPod     int     // leased answers one pod keeps cached (-max-leases-per-pod); 0: the default
	RefreshFraction  float64 // -refresh-fraction
	FetchConcurrency int     // -fetch-concurrency
	MaxResponseBytes int     // -max-response-bytes
	// Now is the caches' clock; nil is time.Now. Tests that move time
	// forward set it, so they run the production wiring, not a copy.
	Now func() time.Time
}

// DefaultTuning is what the provider's flags default to.
func DefaultTuning() Tuning {
	return Tuning{
		CacheSize:        1000,
		LeaseCacheSize:   cache.DefaultMaxEntries,
		RefreshFraction:  cache.DefaultRefreshFraction,
		FetchConcurrency: provider.DefaultFetchConcurrency,
		MaxResponseBytes: provider.MaxResponseBytes,
		IdentitiesPerPod: cache.DefaultMaxTokensPerPod,
		LeasesPerPod:     cache.DefaultMaxLeasesPerPod,
	}
}

// NewProvider wires a provider.Provider: a Vault client pool, an
// Authenticator (which requests pod tokens through kube when the driver sent
// none; kube may be nil), the credentials cache (tokens and leases) and the
// key source for object versions.
func NewProvider(d config.Defaults, vo vault.Options, t Tuning, kube *kubeapi.Client, keys objversion.KeySource) *provider.Provider {
	authn := &auth.Authenticator{}
	if kube != nil { // a nil *kubeapi.Client in the interface would not compare nil
		authn.Kube = kube
	}
	return &provider.Provider{
		Defaults: d,
		Vault:    vault.NewPool(vo),
		Auth:     authn,
		Credentials: cache.New(authn, cache.Options{
			TokenCacheSize:  t.CacheSize,
			LeaseCacheSize:  t.LeaseCacheSize,
			MaxTokensPerPod: t.IdentitiesPerPod,
			MaxLeasesPerPod: t.LeasesPerPod,
			RefreshFraction: t.RefreshFraction,
			Now:             t.Now,
		}),
		Classes:          config.NewClasses(0, 0),
		Keys:             keys,
		FetchConcurrency: t.FetchConcurrency,
		MaxResponseBytes: t.MaxResponseBytes,
	}
}

// ReadKeyFile reads an object-version HMAC key file (-hmac-key-file): 32 bytes,
// raw, hex or base64. Errors name the file, never its contents.
func ReadKeyFile(path string) (objversion.StaticKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading -hmac-key-file: %w", err)
	}
	k, err := objversion.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("-hmac-key-file %s: %w", path, err)
	}
	return k, nil
}
