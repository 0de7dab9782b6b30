package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/server"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

func parse(t *testing.T, args []string, env map[string]string) (*options, error) {
	t.Helper()
	fs := flag.NewFlagSet("provider", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseFlags(fs, args, func(k string) string { return env[k] })
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"endpoint", o.endpoint, "/var/run/secrets-store-csi-providers/vault.sock"},
		{"health-addr", o.healthAddr, ":8080"},
		{"vault-addr", o.defaults.VaultAddress, "https://127.0.0.1:8200"},
		{"vault-mount", o.defaults.AuthMountPath, "kubernetes"},
		{"vault-namespace", o.defaults.VaultNamespace, ""},
		{"skip verify", o.defaults.TLS.SkipTLSVerify, false},
		{"max retries", o.vaultOpts.MaxRetries, vault.DefaultOptions.MaxRetries},
		{"timeout", o.vaultOpts.Timeout, vault.DefaultOptions.Timeout},
		{"fetch concurrency", o.fetchConc, provider.DefaultFetchConcurrency},
		{"max response", o.maxResponse, provider.MaxResponseBytes},
		{"grace", o.grace, 20 * time.Second},
		{"max concurrent mounts", o.grpc.MaxConcurrentMounts, server.DefaultMaxConcurrentMounts},
		{"max concurrent mounts per pod", o.grpc.MaxConcurrentMountsPerPod, server.DefaultMaxConcurrentMountsPerPod},
		{"max queued mounts", o.grpc.MaxQueuedMounts, server.DefaultMaxQueuedMounts},
		{"hmac name", o.hmacName, "vault-csi-provider-hmac-key"},
		{"hmac namespace", o.hmacNamespace, ""},
		{"max identities per pod", o.idsPerPod, cache.DefaultMaxTokensPerPod},
		{"max leases per pod", o.leasesPerPod, cache.DefaultMaxLeasesPerPod},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseFlagsEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o *options)
	}{
		{
			name: "VAULT_ADDR is the default",
			env:  map[string]string{"VAULT_ADDR": "https://vault.env:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.env:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "flag overrides VAULT_ADDR",
			args: []string{"-vault-addr", "https://vault.flag:8200"},
			env:  map[string]string{"VAULT_ADDR": "https://vault.env:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.flag:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "flag with = form",
			args: []string{"--vault-addr=https://vault.flag:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.flag:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "TLS and namespace from the environment",
			env: map[string]string{
				"VAULT_NAMESPACE":       "ns-env",
				"VAULT_CACERT":          "/ca.pem",
				"VAULT_CAPATH":          "/cas",
				"VAULT_TLS_SERVER_NAME": "vault.internal",
				"VAULT_CLIENT_CERT":     "/tls.crt",
				"VAULT_CLIENT_KEY":      "/tls.key",
				"VAULT_SKIP_VERIFY":     "true",
				"VAULT_MAX_RETRIES":     "5",
			},
			check: func(t *testing.T, o *options) {
				d := o.defaults
				if d.VaultNamespace != "ns-env" || d.TLS.CACert != "/ca.pem" || d.TLS.CADirectory != "/cas" ||
					d.TLS.ServerName != "vault.internal" || d.TLS.ClientCert != "/tls.crt" || d.TLS.ClientKey != "/tls.key" ||
					!d.TLS.SkipTLSVerify {
					t.Errorf("defaults = %+v", d)
				}
				if o.vaultOpts.MaxRetries != 5 {
					t.Errorf("MaxRetries = %d", o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "flags override TLS environment",
			args: []string{"-vault-namespace", "ns-flag", "-vault-tls-skip-verify=false", "-vault-max-retries", "0"},
			env:  map[string]string{"VAULT_NAMESPACE": "ns-env", "VAULT_SKIP_VERIFY": "1", "VAULT_MAX_RETRIES": "5"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultNamespace != "ns-flag" || o.defaults.TLS.SkipTLSVerify || o.vaultOpts.MaxRetries != 0 {
					t.Errorf("namespace %q skip %v retries %d", o.defaults.VaultNamespace, o.defaults.TLS.SkipTLSVerify, o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "malformed environment values fall back to defaults",
			env:  map[string]string{"VAULT_SKIP_VERIFY": "maybe", "VAULT_MAX_RETRIES": "lots"},
			check: func(t *testing.T, o *options) {
				if o.defaults.TLS.SkipTLSVerify || o.vaultOpts.MaxRetries != vault.DefaultOptions.MaxRetries {
					t.Errorf("skip %v retries %d", o.defaults.TLS.SkipTLSVerify, o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "empty VAULT_ADDR keeps the built-in default",
			env:  map[string]string{"VAULT_ADDR": ""},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://127.0.0.1:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "POD_NAMESPACE is the HMAC Secret namespace",
			env:  map[string]string{"POD_NAMESPACE": "csi"},
			check: func(t *testing.T, o *options) {
				if o.hmacNamespace != "csi" {
					t.Errorf("hmacNamespace = %q", o.hmacNamespace)
				}
			},
		},
		{
			name: "flag overrides POD_NAMESPACE",
			args: []string{"-hmac-secret-namespace", "other"},
			env:  map[string]string{"POD_NAMESPACE": "csi"},
			check: func(t *testing.T, o *options) {
				if o.hmacNamespace != "other" {
					t.Errorf("hmacNamespace = %q", o.hmacNamespace)
				}
			},
		},
		{
			name: "other flags",
			args: []string{"-endpoint", "unix:///tmp/v.sock", "-health-addr", "", "-shutdown-grace", "3s", "-fetch-concurrency", "9", "-max-response-bytes", "1024", "-debug", "-vault-mount", "jwt", "-vault-timeout", "7s"},
			check: func(t *testing.T, o *options) {
				if o.endpoint != "unix:///tmp/v.sock" || o.healthAddr != "" || o.grace != 3*time.Second ||
					o.fetchConc != 9 || o.maxResponse != 1024 || !o.debug || o.defaults.AuthMountPath != "jwt" ||
					o.vaultOpts.Timeout != 7*time.Second {
					t.Errorf("options = %+v", o)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestParseFlagsMountLimits(t *testing.T) {
	o, err := parse(t, []string{"-max-concurrent-mounts=8", "-max-concurrent-mounts-per-pod", "2", "-max-queued-mounts=100"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := server.Options{MaxConcurrentMounts: 8, MaxConcurrentMountsPerPod: 2, MaxQueuedMounts: 100}
	if o.grpc != want {
		t.Errorf("mount limits = %+v, want %+v", o.grpc, want)
	}
}

func TestParseFlagsCacheQuotas(t *testing.T) {
	o, err := parse(t, []string{"-cache-size", "500", "-lease-cache-size=2000", "-max-identities-per-pod", "3", "-max-leases-per-pod=40"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cacheSize != 500 || o.leaseSize != 2000 || o.idsPerPod != 3 || o.leasesPerPod != 40 {
		t.Errorf("cache %d, leases %d, identities per pod %d, leases per pod %d; want 500, 2000, 3, 40", o.cacheSize, o.leaseSize, o.idsPerPod, o.leasesPerPod)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"positional argument", []string{"serve"}, `unexpected arguments: ["serve"]`},
		{"positional after flags", []string{"-debug", "extra", "more"}, `unexpected arguments: ["extra" "more"]`},
		{"mount after server flags", []string{"-debug", "mount", "spc.yaml"}, "the mount subcommand comes first: provider mount [flags] SPC.yaml"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
		{"bad duration", []string{"-shutdown-grace", "soon"}, "shutdown-grace"},
		{"bad int", []string{"-fetch-concurrency", "many"}, "fetch-concurrency"},
		{"unknown log format", []string{"-log-format", "xml"}, "-log-format"},
		{"refresh fraction 1", []string{"-refresh-fraction", "1"}, "-refresh-fraction"},
		{"refresh fraction 0", []string{"-refresh-fraction", "0"}, "-refresh-fraction"},
		{"cache size 0", []string{"-cache-size", "0"}, "-cache-size"},
		{"max concurrent mounts 0", []string{"-max-concurrent-mounts", "0"}, "-max-concurrent-mounts 0 must be at least 1"},
		{"max concurrent mounts per pod 0", []string{"-max-concurrent-mounts-per-pod", "0"}, "-max-concurrent-mounts-per-pod 0 must be at least 1"},
		{"max queued mounts negative", []string{"-max-queued-mounts", "-1"}, "-max-queued-mounts -1 must be at least 1"},
		{"max identities per pod 0", []string{"-max-identities-per-pod", "0"}, "-max-identities-per-pod 0 must be at least 1"},
		{"max leases per pod 0", []string{"-max-leases-per-pod", "0"}, "-max-leases-per-pod 0 must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(t, tt.args, nil)
			if err == nil {
				t.Fatalf("parseFlags succeeded with %+v", o)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
		})
	}
}
