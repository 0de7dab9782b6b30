// Package config turns what the Secrets Store CSI driver sends in a Mount
// request (the SecretProviderClass parameters merged with the pod's volume
// attributes, the node-publish secrets and the default file permission) into a
// validated Config. It performs no I/O: every error it returns is the caller's
// input being wrong, and is reported as InvalidArgument.
//
// Parameter names and meanings follow hashicorp/vault-csi-provider so existing
// SecretProviderClass objects work unchanged.
package config

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
)

// SecretProviderClass parameter names.
const (
	ParamRoleName                 = "roleName"
	ParamVaultAddress             = "vaultAddress"
	ParamVaultNamespace           = "vaultNamespace"
	ParamVaultAuthMountPath       = "vaultAuthMountPath"
	ParamVaultKubernetesMountPath = "vaultKubernetesMountPath"
	ParamAudience                 = "audience"
	ParamVaultCACertPath          = "vaultCACertPath"
	ParamVaultCADirectory         = "vaultCADirectory"
	ParamVaultTLSServerName       = "vaultTLSServerName"
	ParamVaultTLSClientCertPath   = "vaultTLSClientCertPath"
	ParamVaultTLSClientKeyPath    = "vaultTLSClientKeyPath"
	ParamVaultSkipTLSVerify       = "vaultSkipTLSVerify"
	ParamObjects                  = "objects"

	// Attributes the driver adds for every pod.
	AttrPodName            = "csi.storage.k8s.io/pod.name"
	AttrPodNamespace       = "csi.storage.k8s.io/pod.namespace"
	AttrPodUID             = "csi.storage.k8s.io/pod.uid"
	AttrServiceAccountName = "csi.storage.k8s.io/serviceAccount.name"
	AttrServiceAccountToks = "csi.storage.k8s.io/serviceAccount.tokens"
)

// maxVaultAddresses bounds the failover list: each address may cost a
// connection attempt within one Mount's deadline.
const maxVaultAddresses = 5

// DefaultAudience is the audience whose driver-issued token is used when the
// SecretProviderClass sets none (the CSIDriver's tokenRequests audience).
const DefaultAudience = "vault"

// Defaults are the provider-wide settings (from flags and VAULT_* environment
// variables) that a SecretProviderClass may override.
type Defaults struct {
	VaultAddress   string
	VaultNamespace string
	AuthMountPath  string
	// TLS applies to trusted addresses only (see Config.TLSFor).
	TLS TLS
	// AllowedVaultAddresses (-allowed-vault-addresses) are the addresses a
	// SecretProviderClass may name besides VaultAddress's: exact origins
	// "scheme://host:port", or prefixes of origins ending in "*". Empty: a
	// class may name any address, but only VaultAddress's are trusted.
	AllowedVaultAddresses []string
	// Limits bound the work of parsing one Mount's attributes; zero
	// fields are the defaults.
	Limits Limits
}

// TLS holds the Vault client TLS settings. Paths are read on the provider's
// node, not in the pod.
type TLS struct {
	CACert        string
	CADirectory   string
	ServerName    string
	ClientCert    string
	ClientKey     string
	SkipTLSVerify bool
}

// Pod identifies the pod the volume is mounted for.
type Pod struct {
	Name               string
	Namespace          string
	UID                string
	ServiceAccountName string
}

// Config is one validated Mount request.
type Config struct {
	// VaultAddress is the Vault address this Mount talks to: the first of
	// VaultAddresses until the provider fails over to another.
	VaultAddress string
	// VaultAddresses are the addresses vaultAddress (or -vault-addr) lists,
	// comma-separated, in the order they are tried.
	VaultAddresses []string
	VaultNamespace string
	AuthMountPath  string // without the "auth/" prefix, e.g. "kubernetes"
	RoleName       string
	// Audience is the audience of the service account token to present. It is
	// empty when the SecretProviderClass set none; the driver token is then
	// looked up under DefaultAudience and a self-minted token carries the API
	// server's default audience, as vault-csi-provider does.
	Audience string
	// TLS are the settings for trusted addresses: the operator's defaults
	// with the class's overrides. Use TLSFor(address), which gives an
	// address the operator does not trust only what the class set.
	TLS TLS
	Pod Pod
	// Token is the pod's service account token supplied by the driver for
	// the audience, or empty when the driver sent none.
	Token   string
	Objects []Object
	// DefaultMode is the file mode for objects without filePermission.
	DefaultMode os.FileMode

	// trust is the operator's word on addresses; nil (a Config built by
	// code, not Parse) trusts every address.
	trust *trust
	// classTLS is what the class itself set, for untrusted addresses.
	classTLS TLS
}

// TokenAudience is the key under which the driver's token is looked up.
func (c *Config) TokenAudience() string {
	if c.Audience != "" {
		return c.Audience
	}
	return DefaultAudience
}

// Parse validates a Mount request's attributes, secrets and permission, all as
// the driver sends them (JSON strings), against the provider defaults.
func Parse(attributesJSON, secretsJSON, permissionJSON string, d Defaults) (*Config, error) {
	return ParseCached(attributesJSON, secretsJSON, permissionJSON, d, nil)
}

// ParseCached is Parse with the objects parameter parsed through classes
// (nil: parsed every time): a class the cache holds is not parsed again.
func ParseCached(attributesJSON, secretsJSON, permissionJSON string, d Defaults, classes *Classes) (*Config, error) {
	lim := d.Limits.WithDefaults()
	if err := lim.checkAttributes(attributesJSON); err != nil {
		return nil, err
	}
	var attrs map[string]string
	if err := json.Unmarshal([]byte(attributesJSON), &attrs); err != nil {
		return nil, errorf("attributes are not a JSON object of strings: %v", err)
	}
	// secrets is "null" when the volume has no nodePublishSecretRef.
	var secrets map[string]string
	if strings.TrimSpace(secretsJSON) != "" {
		if err := json.Unmarshal([]byte(secretsJSON), &secrets); err != nil {
			return nil, errorf("node publish secrets are not a JSON object of strings: %v", err)
		}
	}
	mode, err := parsePermission(permissionJSON)
	if err != nil {
		return nil, err
	}

	c := &Config{
		VaultAddress:   d.VaultAddress,
		VaultNamespace: d.VaultNamespace,
		AuthMountPath:  d.AuthMountPath,
		TLS:            d.TLS,
		DefaultMode:    mode,
		RoleName:       attrs[ParamRoleName],
		Audience:       attrs[ParamAudience],
		Pod: Pod{
			Name:               attrs[AttrPodName],
			Namespace:          attrs[AttrPodNamespace],
			UID:                attrs[AttrPodUID],
			ServiceAccountName: attrs[AttrServiceAccountName],
		},
	}
	if c.RoleName == "" {
		return nil, errorf("parameter %q is required: set it to the Vault role the pod's service account logs in as", ParamRoleName)
	}
	if v, ok := attrs[ParamVaultAddress]; ok && v != "" {
		c.VaultAddress = v
	}
	if c.VaultAddress == "" {
		return nil, errorf("no Vault address: set parameter %q or the provider's -vault-addr flag", ParamVaultAddress)
	}
	for _, a := range strings.Split(c.VaultAddress, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if err := checkAddress(a); err != nil {
			return nil, err
		}
		c.VaultAddresses = append(c.VaultAddresses, a)
	}
	if len(c.VaultAddresses) == 0 {
		return nil, errorf("no Vault address: set parameter %q or the provider's -vault-addr flag", ParamVaultAddress)
	}
	if len(c.VaultAddresses) > maxVaultAddresses {
		return nil, errorf("parameter %q lists %d addresses; at most %d are tried", ParamVaultAddress, len(c.VaultAddresses), maxVaultAddresses)
	}
	c.VaultAddress = c.VaultAddresses[0]
	c.trust = d.trust()
	if v, ok := attrs[ParamVaultNamespace]; ok {
		c.VaultNamespace = v
	}

	k8sMount, k8sSet := attrs[ParamVaultKubernetesMountPath]
	authMount, authSet := attrs[ParamVaultAuthMountPath]
	switch {
	case k8sSet && authSet:
		return nil, errorf("parameters %q and %q are both set: keep only %q", ParamVaultKubernetesMountPath, ParamVaultAuthMountPath, ParamVaultAuthMountPath)
	case k8sSet:
		c.AuthMountPath = k8sMount
	case authSet:
		c.AuthMountPath = authMount
	}
	c.AuthMountPath = normalizeMountPath(c.AuthMountPath)
	if c.AuthMountPath == "" {
		return nil, errorf("parameter %q is empty: name the Vault auth mount, e.g. \"kubernetes\"", ParamVaultAuthMountPath)
	}

	// Each TLS parameter overrides the default in c.TLS and is also kept in
	// c.classTLS: untrusted addresses get only what the class set.
	for _, p := range []struct {
		name string
		to   func(*TLS) *string
	}{
		{ParamVaultCACertPath, func(t *TLS) *string { return &t.CACert }},
		{ParamVaultCADirectory, func(t *TLS) *string { return &t.CADirectory }},
		{ParamVaultTLSServerName, func(t *TLS) *string { return &t.ServerName }},
		{ParamVaultTLSClientCertPath, func(t *TLS) *string { return &t.ClientCert }},
		{ParamVaultTLSClientKeyPath, func(t *TLS) *string { return &t.ClientKey }},
	} {
		if v, ok := attrs[p.name]; ok {
			*p.to(&c.TLS) = v
			*p.to(&c.classTLS) = v
		}
	}
	if (c.TLS.ClientCert == "") != (c.TLS.ClientKey == "") {
		return nil, errorf("parameters %q and %q must be set together", ParamVaultTLSClientCertPath, ParamVaultTLSClientKeyPath)
	}
	if v, ok := attrs[ParamVaultSkipTLSVerify]; ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errorf("parameter %q is %q: use \"true\" or \"false\"", ParamVaultSkipTLSVerify, v)
		}
		c.TLS.SkipTLSVerify = b
		c.classTLS.SkipTLSVerify = b
	}
	if err := c.checkTrust(attrs[ParamVaultTLSClientCertPath] != "" || attrs[ParamVaultTLSClientKeyPath] != ""); err != nil {
		return nil, err
	}

	tok, err := driverToken(attrs, secrets, c.TokenAudience())
	if err != nil {
		return nil, err
	}
	c.Token = tok

	c.Objects, err = classes.objects(attrs[ParamObjects], lim)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// normalizeMountPath accepts "kubernetes", "/kubernetes/" and
// "auth/kubernetes" for the auth mount named "kubernetes".
func normalizeMountPath(p string) string {
	p = strings.Trim(p, "/")
	p = strings.TrimPrefix(p, "auth/")
	return strings.Trim(p, "/")
}

// parsePermission reads the driver's default file mode. The driver marshals an
// os.FileMode, so it arrives as a JSON number (420 for 0644); a JSON string
// holding the decimal number is accepted too.
func parsePermission(s string) (os.FileMode, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errorf("the driver sent no file permission")
	}
	var raw any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return 0, errorf("file permission %q is not JSON: %v", s, err)
	}
	var n uint64
	switch v := raw.(type) {
	case float64:
		if v < 0 || v != float64(uint64(v)) {
			return 0, errorf("file permission %q is not a file mode", s)
		}
		n = uint64(v)
	case string:
		var err error
		if n, err = strconv.ParseUint(v, 10, 32); err != nil {
			return 0, errorf("file permission %q is not a file mode", s)
		}
	default:
		return 0, errorf("file permission %q is not a file mode", s)
	}
	if n == 0 || n > 0o777 {
		return 0, errorf("file permission %q is outside 0001-0777", s)
	}
	return os.FileMode(n), nil
}
