package config

import (
	"strings"
	"testing"
)

func TestSocketPath(t *testing.T) {
	long := "unix:///" + strings.Repeat("d", 100) + "/agent.sock"
	for _, tt := range []struct {
		addr    string
		path    string // "" = not a well-formed socket address
		problem string // what checkAddress says, for the malformed ones
	}{
		{addr: "unix:///var/run/vault/agent.sock", path: "/var/run/vault/agent.sock"},
		{addr: "UNIX:///var/run/vault/agent.sock", path: "/var/run/vault/agent.sock"},
		{addr: "unix:///a b/agent.sock", path: "/a b/agent.sock"},
		{addr: "unix://agent.sock", problem: "not absolute"},
		{addr: "unix://", problem: "not absolute"},
		{addr: "unix:///var/run/../vault/agent.sock", problem: "not clean"},
		{addr: "unix:///var/run//agent.sock", problem: "not clean"},
		{addr: "unix:///var/run/agent.sock/", problem: "not clean"},
		{addr: "unix:///var/run/agent.sock?x=1", problem: "holds one of ?, #, % or @"},
		{addr: "unix:///var/run/agent%2esock", problem: "holds one of ?, #, % or @"},
		{addr: "unix:///var/run/\tagent.sock", problem: "control character"},
		{addr: long, problem: "longer than the 107 bytes"},
		{addr: "https://vault:8200"},
		{addr: "unix:/var/run/agent.sock", problem: "not a URL"},
	} {
		path, ok := SocketPath(tt.addr)
		if path != tt.path || ok != (tt.path != "") {
			t.Errorf("SocketPath(%q) = %q, %v; want %q", tt.addr, path, ok, tt.path)
		}
		err := checkAddress(tt.addr)
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("checkAddress(%q) = %v, want it accepted", tt.addr, err)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem) || !IsInputError(err)):
			t.Errorf("checkAddress(%q) = %v, want an input error saying %q", tt.addr, err, tt.problem)
		}
	}
}

// Parsing classes with socket addresses: a socket is usable only when
// the operator trusts it, a failover list may mix sockets and URLs, and
// no TLS setting ever applies to a socket.
func TestParseUnixAddress(t *testing.T) {
	const agent = "unix:///var/run/vault/agent.sock"
	const refused = "is a Unix socket on the provider's node, which a SecretProviderClass may use only if the provider's operator trusts it: it must be one of the -vault-addr addresses or listed exactly in -allowed-vault-addresses"
	tests := []struct {
		name   string
		d      Defaults
		over   map[string]string
		want   []string // VaultAddresses
		errSub string
	}{
		{
			name: "the default -vault-addr (vault-helm's agent)",
			d:    Defaults{VaultAddress: agent, TLS: operatorTLS},
			want: []string{agent},
		},
		{
			name: "the class names the default socket",
			d:    Defaults{VaultAddress: agent},
			over: map[string]string{ParamVaultAddress: agent},
			want: []string{agent},
		},
		{
			name: "failover from the socket to https",
			d:    Defaults{VaultAddress: agent + ",https://vault-0:8200", TLS: operatorTLS},
			want: []string{agent, "https://vault-0:8200"},
		},
		{
			name: "the class mixes an allow-listed socket and an untrusted URL",
			d:    Defaults{VaultAddress: "https://vault-0:8200", AllowedVaultAddresses: []string{"unix:///run/other.sock", "https://*"}},
			over: map[string]string{ParamVaultAddress: "https://tenant:8200,unix:///run/other.sock"},
			want: []string{"https://tenant:8200", "unix:///run/other.sock"},
		},
		{
			name:   "an untrusted socket without an allow-list",
			d:      Defaults{VaultAddress: "https://vault-0:8200"},
			over:   map[string]string{ParamVaultAddress: "unix:///run/docker.sock"},
			errSub: "Vault address unix:///run/docker.sock " + refused,
		},
		{
			name:   "an untrusted socket after a trusted one",
			d:      Defaults{VaultAddress: agent},
			over:   map[string]string{ParamVaultAddress: agent + ",unix:///run/docker.sock"},
			errSub: "unix:///run/docker.sock " + refused,
		},
		{
			name:   "a socket is not matched by an https prefix",
			d:      Defaults{VaultAddress: "https://vault-0:8200", AllowedVaultAddresses: []string{"https://*", "http://*"}},
			over:   map[string]string{ParamVaultAddress: agent},
			errSub: refused,
		},
		{
			name:   "another spelling of the trusted socket",
			d:      Defaults{VaultAddress: agent},
			over:   map[string]string{ParamVaultAddress: "unix:///var/run/vault/../vault/agent.sock"},
			errSub: "is not a usable unix:// address: its socket path is not clean",
		},
		{
			name:   "a relative socket path",
			d:      Defaults{VaultAddress: "https://vault-0:8200"},
			over:   map[string]string{ParamVaultAddress: "unix://agent.sock"},
			errSub: "its socket path is not absolute (write unix:///path/to/agent.sock)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.d.AuthMountPath = "kubernetes"
			c, err := Parse(attrs(t, tt.over), "null", "420", tt.d)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) || !IsInputError(err) {
					t.Fatalf("err = %v, want an input error containing %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if strings.Join(c.VaultAddresses, ",") != strings.Join(tt.want, ",") || c.VaultAddress != tt.want[0] {
				t.Errorf("VaultAddresses %q (VaultAddress %q), want %q", c.VaultAddresses, c.VaultAddress, tt.want)
			}
			for _, a := range c.VaultAddresses {
				if IsUnix(a) && c.TLSFor(a) != (TLS{}) {
					t.Errorf("TLSFor(%s) = %+v, want no TLS settings for a socket", a, c.TLSFor(a))
				}
				if !IsUnix(a) && c.trust.trusted(Origin(a)) && c.TLSFor(a) != tt.d.TLS {
					t.Errorf("TLSFor(%s) = %+v, want the operator's %+v next to a socket", a, c.TLSFor(a), tt.d.TLS)
				}
			}
		})
	}
}
