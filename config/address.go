package config

import (
	"net/url"
	"path/filepath"
	"strings"
)

// A Vault address is an http(s) URL, or "unix:///path/to.sock": a Vault
// Agent (or proxy) listening on a Unix socket of the provider's node, as
// vault-helm's CSI DaemonSet runs it (VAULT_ADDR=unix:///var/run/vault/agent.sock).
// Over a socket the provider speaks plain HTTP; TLS settings do not apply.
//
// A socket address is spelled literally — "unix://" and an absolute, clean
// path, nothing else — so that one socket has one spelling: trust
// (-vault-addr, -allowed-vault-addresses) compares addresses exactly, and a
// path such as /var/run/vault/../x would otherwise be a second name for a
// socket the operator trusts under another.

const unixScheme = "unix://"

// maxSocketPathBytes is what a Unix socket address (sun_path) holds on
// Linux, less its terminating NUL.
const maxSocketPathBytes = 107

// IsUnix reports whether addr is meant as a Unix socket address (it starts
// with unix://), well-formed or not.
func IsUnix(addr string) bool {
	return len(addr) >= len(unixScheme) && strings.EqualFold(addr[:len(unixScheme)], unixScheme)
}

// SocketPath returns the socket path of a well-formed unix:// address:
// "unix:///var/run/vault/agent.sock" is "/var/run/vault/agent.sock".
func SocketPath(addr string) (string, bool) {
	if !IsUnix(addr) {
		return "", false
	}
	p := addr[len(unixScheme):]
	if socketPathProblem(p) != "" {
		return "", false
	}
	return p, true
}

// socketPathProblem says what is wrong with p as the path of a unix://
// address, or "" if nothing is.
func socketPathProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "its socket path is not absolute (write unix:///path/to/agent.sock)"
	case filepath.Clean(p) != p:
		return "its socket path is not clean (no //, . or .. elements, no trailing /)"
	case strings.ContainsAny(p, "?#%@"):
		return "its socket path holds one of ?, #, % or @, which are not accepted in a unix:// address"
	case strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return "its socket path holds a control character"
	case len(p) > maxSocketPathBytes:
		return "its socket path is longer than the 107 bytes a Unix socket address holds"
	}
	return ""
}

// checkAddress refuses what is neither an http(s) URL nor a well-formed
// unix:// address, and user information: the Vault client would send it as
// basic auth, and every error about the address would show it. Neither
// message quotes credentials.
func checkAddress(addr string) error {
	if hasUserinfo(addr) {
		return errorf("a Vault address in parameter %q carries user information (user:password@, not shown here): Vault takes no credentials in its address, remove them", ParamVaultAddress)
	}
	if IsUnix(addr) {
		if problem := socketPathProblem(addr[len(unixScheme):]); problem != "" {
			return errorf("Vault address %q is not a usable unix:// address: %s", addr, problem)
		}
		return nil
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errorf("Vault address %q is not a URL like https://vault.example:8200 (or unix:///path/to/agent.sock for a Vault Agent's socket)", addr)
	}
	return nil
}
