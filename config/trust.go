package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// FlagAllowedVaultAddresses names the provider flag that lists the Vault
// addresses a SecretProviderClass may use besides -vault-addr; messages
// name it so a tenant knows what to ask the operator for.
const FlagAllowedVaultAddresses = "-allowed-vault-addresses"

// The provider is one process per node serving every pod, and every
// SecretProviderClass parameter is tenant input. The operator's own settings
// (-vault-addr, -vault-tls-*) are credentials of the node: the client
// certificate and the CA it trusts must only ever be used with the Vault
// servers the operator named. An address is trusted when it is one of the
// -vault-addr addresses or matches -allowed-vault-addresses.
//
// A unix:// address is a socket on the node: whatever listens there gets
// the pod's token and answers as Vault, and the socket may be a local
// service the tenant could otherwise not reach. So a class may name one
// only if it is trusted — one of -vault-addr's, or an exact entry of
// -allowed-vault-addresses (prefixes never match one) — even with no
// allow-list, and a redirect goes to or from one only where the Mount
// lists the target itself.

// trust is what the operator's flags say about Vault addresses.
type trust struct {
	origins  map[string]bool // -vault-addr's and exact allow-list entries, as Origin gives them
	prefixes []string        // allow-list entries ending in "*", without it, lower case
	// open is an empty allow-list: a SecretProviderClass may name any
	// address (only the -vault-addr ones are trusted).
	open bool
}

func (d *Defaults) trust() *trust {
	t := &trust{origins: map[string]bool{}, open: true}
	for _, a := range strings.Split(d.VaultAddress, ",") {
		if o := Origin(strings.TrimSpace(a)); o != "" {
			t.origins[o] = true
		}
	}
	for _, e := range d.AllowedVaultAddresses {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		t.open = false
		if p, ok := strings.CutSuffix(e, "*"); ok {
			if checkAllowedPrefix(p) == nil {
				t.prefixes = append(t.prefixes, strings.ToLower(p))
			}
			continue
		}
		if o := Origin(e); o != "" && checkAllowedOrigin(e) == nil {
			t.origins[o] = true
		}
	}
	return t
}

// trusted reports whether the operator's settings apply to origin (as
// Origin gives it).
func (t *trust) trusted(origin string) bool {
	if origin == "" {
		return false
	}
	if t.origins[origin] {
		return true
	}
	for _, p := range t.prefixes {
		if strings.HasPrefix(origin, p) {
			return true
		}
	}
	return false
}

// Origin returns addr's origin "scheme://host:port": scheme and host in
// lower case, the scheme's default port made explicit, no user information,
// path or query. A well-formed unix:// address is its own origin, its path
// kept as written ("unix:///var/run/vault/agent.sock"). It is "" when addr
// is neither an http or https URL with a host nor a well-formed unix://
// address.
func Origin(addr string) string {
	if IsUnix(addr) {
		if p, ok := SocketPath(addr); ok {
			return unixScheme + p
		}
		return ""
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return ""
	case port == "" && scheme == "https":
		port = "443"
	case port == "":
		port = "80"
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return ""
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// TLSFor returns the TLS settings for talking to addr (any of the Mount's
// addresses, or an origin a Vault redirected to). A trusted address gets
// c.TLS: the operator's defaults with the class's overrides. Any other
// address gets only what the class itself set, never a client certificate:
// the operator's CA and client certificate are not the tenant's to present
// to a server of their choosing, and neither is a file on the node.
//
// A unix:// address gets no TLS settings at all: the provider speaks plain
// HTTP over the socket, and reads none of the files.
//
// A Config not made by Parse trusts every address: code built it, not a
// tenant.
func (c *Config) TLSFor(addr string) TLS {
	if IsUnix(addr) {
		return TLS{}
	}
	if c.trust == nil || c.trust.trusted(Origin(addr)) {
		return c.TLS
	}
	t := c.classTLS
	t.ClientCert, t.ClientKey = "", ""
	return t
}

// MayContact reports whether this Mount may talk to addr: one of its own
// vaultAddress addresses, or an address the operator trusts. A redirect
// from Vault is followed only to such an origin.
func (c *Config) MayContact(addr string) bool {
	o := Origin(addr)
	if o == "" {
		return false
	}
	if c.trust == nil {
		return true
	}
	for _, a := range c.VaultAddresses {
		if Origin(a) == o {
			return true
		}
	}
	return c.trust.trusted(o)
}

// Lists reports whether addr is one of this Mount's own addresses
// (vaultAddress, or -vault-addr's when the class named none).
func (c *Config) Lists(addr string) bool {
	o := Origin(addr)
	if o == "" {
		return false
	}
	for _, a := range c.VaultAddresses {
		if Origin(a) == o {
			return true
		}
	}
	return false
}

// MayRedirect reports whether a redirect from the address from to the
// origin to may be followed: to an address the Mount may contact, and
// where either end is a unix:// socket only to one of the Mount's own
// addresses — an allow-list entry or a -vault-addr the class did not list
// is not enough to have Vault send the provider to or from a socket on the
// node.
func (c *Config) MayRedirect(from, to string) bool {
	if IsUnix(from) || IsUnix(to) {
		return c.Lists(to)
	}
	return c.MayContact(to)
}

// checkTrust refuses what a class may not do with the addresses it named:
// an address outside a non-empty allow-list, a unix:// address the operator
// does not trust, and a client certificate of its own for an address the
// operator does not trust.
func (c *Config) checkTrust(classCert bool) error {
	for _, a := range c.VaultAddresses {
		if c.trust.trusted(Origin(a)) {
			continue
		}
		if IsUnix(a) {
			return errorf("Vault address %s is a Unix socket on the provider's node, which a SecretProviderClass may use only if the provider's operator trusts it: it must be one of the -vault-addr addresses or listed exactly in %s; use a Vault URL (https://...), or ask the operator to add this socket", a, FlagAllowedVaultAddresses)
		}
		if !c.trust.open {
			return errorf("Vault address %s is not allowed: this provider lets a SecretProviderClass use only its -vault-addr addresses and those its operator listed in %s; use one of those, or ask the operator to add this address", a, FlagAllowedVaultAddresses)
		}
		if classCert {
			return errorf("parameters %q and %q name files on the provider's node, which are used only with Vault addresses the operator trusts, and %s is not one: drop them, or ask the operator to add the address to %s", ParamVaultTLSClientCertPath, ParamVaultTLSClientKeyPath, a, FlagAllowedVaultAddresses)
		}
	}
	return nil
}

// Validate checks the provider-wide defaults once, at startup: no Vault
// address may carry user information (it would be sent to Vault and shown
// in every tenant's errors), and the allow-list entries must be origins or
// prefixes of origins. Its messages never quote an address that carries
// credentials.
func (d *Defaults) Validate() error {
	addrs := strings.Split(d.VaultAddress, ",")
	for i, a := range addrs {
		a = strings.TrimSpace(a)
		if hasUserinfo(a) {
			return fmt.Errorf("-vault-addr (or $VAULT_ADDR): address %d of %d carries user information (user:password@); Vault takes no credentials in its address, remove them", i+1, len(addrs))
		}
		if IsUnix(a) {
			if problem := socketPathProblem(a[len(unixScheme):]); problem != "" {
				return fmt.Errorf("-vault-addr (or $VAULT_ADDR): address %d of %d, %q, is not a usable unix:// address: %s", i+1, len(addrs), a, problem)
			}
		}
	}
	for i, e := range d.AllowedVaultAddresses {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var err error
		if p, ok := strings.CutSuffix(e, "*"); ok {
			err = checkAllowedPrefix(p)
		} else {
			err = checkAllowedOrigin(e)
		}
		if err != nil {
			shown := fmt.Sprintf("%q", e)
			if strings.Contains(e, "@") {
				shown = "(not shown: it contains '@')"
			}
			return fmt.Errorf("%s: entry %d %s %v", FlagAllowedVaultAddresses, i+1, shown, err)
		}
	}
	return nil
}

// hasUserinfo reports whether addr carries user information, or cannot be
// parsed and holds an "@" (then it may, and must not be quoted either).
func hasUserinfo(addr string) bool {
	u, err := url.Parse(addr)
	if err != nil {
		return strings.Contains(addr, "@")
	}
	return u.User != nil
}

// checkAllowedOrigin checks an exact allow-list entry: scheme://host:port,
// or a unix:// socket address.
func checkAllowedOrigin(e string) error {
	if IsUnix(e) {
		if problem := socketPathProblem(e[len(unixScheme):]); problem != "" {
			return fmt.Errorf("is not a usable unix:// address: %s", problem)
		}
		return nil
	}
	u, err := url.Parse(e)
	switch {
	case err != nil || Origin(e) == "":
		return fmt.Errorf("is not an origin like https://vault.example:8200")
	case u.User != nil:
		return fmt.Errorf("carries user information")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(e, "*"):
		return fmt.Errorf("is not an origin like https://vault.example:8200 (no path, query or wildcard; a prefix ends in *)")
	}
	return nil
}

// checkAllowedPrefix checks a prefix entry (without its final "*"): it must
// fix the scheme and stay within the host and port.
func checkAllowedPrefix(p string) error {
	lp := strings.ToLower(p)
	rest, ok := strings.CutPrefix(lp, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(lp, "http://")
	}
	switch {
	case !ok && IsUnix(p):
		return fmt.Errorf("is a prefix of unix:// addresses; a Unix socket is trusted only when listed exactly (unix:///path/to/agent.sock)")
	case !ok:
		return fmt.Errorf("is a prefix that does not start with https:// or http://")
	case strings.ContainsAny(rest, "/?#@*"):
		return fmt.Errorf("is a prefix of more than a host and port (only one * at the end; no path, query or user information)")
	}
	return nil
}
