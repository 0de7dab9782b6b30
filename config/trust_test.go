package config

import (
	"strings"
	"testing"
)

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://vault:8200":               "https://vault:8200",
		"HTTPS://Vault.Example:8200/":      "https://vault.example:8200",
		"https://vault":                    "https://vault:443",
		"http://vault":                     "http://vault:80",
		"https://vault:8200/v1/secret?x=1": "https://vault:8200",
		"https://user:pw@vault:8200":       "https://vault:8200",
		"http://[::1]:8200":                "http://[::1]:8200",
		"vault:8200":                       "",
		"ftp://vault":                      "",
		"https://":                         "",
		"unix:///var/run/vault.sock":       "unix:///var/run/vault.sock",
		"UNIX:///var/run/Vault.sock":       "unix:///var/run/Vault.sock",
		"unix://vault.sock":                "",
		"unix:///var/run/../vault.sock":    "",
		"unix:///var/run/vault.sock?x=1":   "",
		"":                                 "",
	} {
		if got := Origin(in); got != want {
			t.Errorf("Origin(%q) = %q, want %q", in, got, want)
		}
	}
}

// operatorTLS is what the operator configured: CA and client certificate.
var operatorTLS = TLS{CACert: "/etc/vault/ca.pem", ClientCert: "/etc/vault/tls.crt", ClientKey: "/etc/vault/tls.key", ServerName: "vault.internal"}

func trustDefaults(allowed ...string) Defaults {
	return Defaults{
		VaultAddress:          "https://vault-0:8200,https://vault-1:8200",
		AuthMountPath:         "kubernetes",
		TLS:                   operatorTLS,
		AllowedVaultAddresses: allowed,
	}
}

func TestTLSForAndMayContact(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		over    map[string]string
		addr    string // asked of TLSFor and MayContact
		wantTLS TLS
		contact bool
	}{
		{
			name: "default address gets the operator's TLS",
			addr: "https://vault-1:8200", wantTLS: operatorTLS, contact: true,
		},
		{
			name: "default address in another spelling",
			addr: "HTTPS://VAULT-0:8200/v1/x", wantTLS: operatorTLS, contact: true,
		},
		{
			name: "class address outside the defaults gets nothing of the operator's",
			over: map[string]string{ParamVaultAddress: "http://tenant:8200"},
			addr: "http://tenant:8200", wantTLS: TLS{}, contact: true,
		},
		{
			name: "untrusted address gets what the class set, without client certificate",
			over: map[string]string{ParamVaultAddress: "https://tenant:8200", ParamVaultCACertPath: "/tenant/ca.pem", ParamVaultTLSServerName: "t", ParamVaultSkipTLSVerify: "true"},
			addr: "https://tenant:8200", wantTLS: TLS{CACert: "/tenant/ca.pem", ServerName: "t", SkipTLSVerify: true}, contact: true,
		},
		{
			name: "a redirect target the class did not list",
			over: map[string]string{ParamVaultAddress: "http://tenant:8200"},
			addr: "https://internal:8443", wantTLS: TLS{}, contact: false,
		},
		{
			name: "the defaults stay reachable for a class with its own address",
			over: map[string]string{ParamVaultAddress: "http://tenant:8200"},
			addr: "https://vault-0:8200", wantTLS: operatorTLS, contact: true,
		},
		{
			name: "class overrides apply to trusted addresses",
			over: map[string]string{ParamVaultCACertPath: "/other/ca.pem"},
			addr: "https://vault-0:8200", wantTLS: TLS{CACert: "/other/ca.pem", ClientCert: operatorTLS.ClientCert, ClientKey: operatorTLS.ClientKey, ServerName: operatorTLS.ServerName}, contact: true,
		},
		{
			name:    "exact allow-list entry is trusted",
			allowed: []string{"https://vault-2:8200"},
			over:    map[string]string{ParamVaultAddress: "https://vault-2:8200"},
			addr:    "https://vault-2:8200", wantTLS: operatorTLS, contact: true,
		},
		{
			name:    "prefix allow-list entry is trusted",
			allowed: []string{"https://vault-*"},
			addr:    "https://vault-7.vault-internal:8200", wantTLS: operatorTLS, contact: true,
		},
		{
			name:    "allow-list does not trust other origins",
			allowed: []string{"https://vault-2:8200"},
			addr:    "https://vault-2:8201", wantTLS: TLS{}, contact: false,
		},
		{
			name:    "allow-list does not trust another scheme",
			allowed: []string{"https://vault-2:8200"},
			addr:    "http://vault-2:8200", wantTLS: TLS{}, contact: false,
		},
		{
			name: "not a URL",
			addr: "vault-0:8200", wantTLS: TLS{}, contact: false,
		},
		{
			name:    "an allow-listed socket gets no TLS settings",
			allowed: []string{"unix:///run/agent.sock"},
			over:    map[string]string{ParamVaultCACertPath: "/class/ca.pem"},
			addr:    "unix:///run/agent.sock", wantTLS: TLS{}, contact: true,
		},
		{
			name: "a socket nobody trusts or lists",
			addr: "unix:///run/agent.sock", wantTLS: TLS{}, contact: false,
		},
		{
			name:    "a socket is trusted only in its exact spelling",
			allowed: []string{"unix:///run/agent.sock"},
			addr:    "unix:///run/Agent.sock", wantTLS: TLS{}, contact: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(attrs(t, tt.over), "null", "420", trustDefaults(tt.allowed...))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TLSFor(tt.addr); got != tt.wantTLS {
				t.Errorf("TLSFor(%q) = %+v, want %+v", tt.addr, got, tt.wantTLS)
			}
			if got := c.MayContact(tt.addr); got != tt.contact {
				t.Errorf("MayContact(%q) = %v, want %v", tt.addr, got, tt.contact)
			}
		})
	}
}

// MayRedirect: between http(s) addresses, what MayContact says; to or
// from a socket, only to an address the Mount lists itself.
func TestMayRedirect(t *testing.T) {
	const agent = "unix:///var/run/vault/agent.sock"
	d := Defaults{
		VaultAddress:          agent,
		AuthMountPath:         "kubernetes",
		AllowedVaultAddresses: []string{"https://vault-*", "unix:///run/other.sock"},
	}
	tests := []struct {
		name     string
		class    string // vaultAddress, "" for the default
		from, to string
		want     bool
	}{
		{"socket to an allow-listed origin the class does not list", "", agent, "https://vault-0:8200", false},
		{"socket to an origin the class lists", agent + ",https://vault-0:8200", agent, "https://vault-0:8200", true},
		{"listed origin to the socket the class lists", agent + ",https://vault-0:8200", "https://vault-0:8200", agent, true},
		{"listed origin to the trusted default socket the class does not list", "https://vault-0:8200", "https://vault-0:8200", agent, false},
		{"to an allow-listed socket the class does not list", "https://vault-0:8200", "https://vault-0:8200", "unix:///run/other.sock", false},
		{"socket to the same socket", "", agent, agent, true},
		{"between URLs: an allow-listed origin the class does not list", "https://vault-0:8200", "https://vault-0:8200", "https://vault-1:8200", true},
		{"between URLs: an untrusted unlisted origin", "https://vault-0:8200", "https://vault-0:8200", "https://elsewhere:8200", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			over := map[string]string{}
			if tt.class != "" {
				over[ParamVaultAddress] = tt.class
			}
			c, err := Parse(attrs(t, over), "null", "420", d)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MayRedirect(tt.from, tt.to); got != tt.want {
				t.Errorf("MayRedirect(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestConfigNotFromParseTrustsEverything(t *testing.T) {
	c := &Config{VaultAddresses: []string{"https://a:1"}, TLS: operatorTLS}
	if got := c.TLSFor("https://b:2"); got != operatorTLS {
		t.Errorf("TLSFor = %+v, want the Config's TLS", got)
	}
	if !c.MayContact("https://b:2") || c.MayContact("nope") {
		t.Error("MayContact of a hand-built Config")
	}
}

func TestParseRefusesUntrusted(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		over    map[string]string
		errSub  string // "" = accepted
	}{
		{name: "any address without an allow-list", over: map[string]string{ParamVaultAddress: "http://anything:1"}},
		{name: "defaults with an allow-list", allowed: []string{"https://vault-9:8200"}},
		{name: "allowed address", allowed: []string{"https://vault-9:8200"}, over: map[string]string{ParamVaultAddress: "https://vault-9:8200"}},
		{name: "allowed by prefix", allowed: []string{"https://vault-*"}, over: map[string]string{ParamVaultAddress: "https://vault-9.x:8200"}},
		{
			name: "unlisted address with an allow-list", allowed: []string{"https://vault-9:8200"},
			over:   map[string]string{ParamVaultAddress: "https://vault-0:8200,http://tenant:8200"},
			errSub: "Vault address http://tenant:8200 is not allowed: this provider lets a SecretProviderClass use only its -vault-addr addresses and those its operator listed in -allowed-vault-addresses",
		},
		{
			name: "class client certificate for a trusted address",
			over: map[string]string{ParamVaultTLSClientCertPath: "/c", ParamVaultTLSClientKeyPath: "/k"},
		},
		{
			name:   "class client certificate for an untrusted address",
			over:   map[string]string{ParamVaultAddress: "https://vault-0:8200,https://tenant:8200", ParamVaultTLSClientCertPath: "/etc/vault/tls.crt", ParamVaultTLSClientKeyPath: "/etc/vault/tls.key"},
			errSub: "https://tenant:8200 is not one: drop them, or ask the operator to add the address to -allowed-vault-addresses",
		},
		{
			name:   "class client key alone (with the operator's certificate) for an untrusted address",
			over:   map[string]string{ParamVaultAddress: "https://tenant:8200", ParamVaultTLSClientKeyPath: "/etc/vault/tls.key"},
			errSub: "are used only with Vault addresses the operator trusts",
		},
		{
			name: "clearing the client certificate for an untrusted address",
			over: map[string]string{ParamVaultAddress: "https://tenant:8200", ParamVaultTLSClientCertPath: "", ParamVaultTLSClientKeyPath: ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(attrs(t, tt.over), "null", "420", trustDefaults(tt.allowed...))
			if tt.errSub == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("err = %v, want one containing %q", err, tt.errSub)
			}
			if !IsInputError(err) {
				t.Errorf("%T is not an input error", err)
			}
		})
	}
}

func TestParseRefusesUserinfo(t *testing.T) {
	for _, addr := range []string{
		"https://admin:hunter2@vault:8200",
		"https://vault-0:8200,https://admin:hunter2@vault:8200",
		"https://admin:hunter2@vault:8200/%zz", // not even a URL
		"https://hunter2@vault:8200",
	} {
		_, err := Parse(attrs(t, map[string]string{ParamVaultAddress: addr}), "null", "420", trustDefaults())
		if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), "carries user information") {
			t.Errorf("%s: err = %v, want an input error about user information", addr, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "admin") {
			t.Errorf("message %q echoes the credentials", err)
		}
	}
}

func TestDefaultsValidate(t *testing.T) {
	tests := []struct {
		name   string
		d      Defaults
		errSub string
	}{
		{name: "plain", d: trustDefaults()},
		{name: "allow-list", d: trustDefaults("https://vault-2:8200", "https://vault-*", "http://10.0.0.1:8200/", " ", "https://*")},
		{name: "userinfo in -vault-addr", d: Defaults{VaultAddress: "https://admin:hunter2@vault:8200"}, errSub: "address 1 of 1 carries user information"},
		{name: "userinfo in the second -vault-addr", d: Defaults{VaultAddress: "https://a:1, https://admin:hunter2@vault:8200"}, errSub: "address 2 of 2 carries user information"},
		{name: "unparsable with @", d: Defaults{VaultAddress: "https://admin:hunter2@vault:8200/%zz"}, errSub: "carries user information"},
		{name: "entry with userinfo", d: trustDefaults("https://admin:hunter2@vault:8200"), errSub: "entry 1 (not shown: it contains '@') carries user information"},
		{name: "entry with path", d: trustDefaults("https://vault:8200/v1"), errSub: `entry 1 "https://vault:8200/v1" is not an origin`},
		{name: "entry without scheme", d: trustDefaults("vault:8200"), errSub: "is not an origin"},
		{name: "wildcard inside", d: trustDefaults("https://*.example:8200"), errSub: "no path, query or wildcard"},
		{name: "prefix without scheme", d: trustDefaults("vault-*"), errSub: "does not start with https:// or http://"},
		{name: "prefix with path", d: trustDefaults("https://vault:8200/*"), errSub: "more than a host and port"},
		{name: "prefix with userinfo", d: trustDefaults("https://admin:hunter2@*"), errSub: "(not shown: it contains '@') is a prefix of more than a host and port"},
		{name: "socket as -vault-addr", d: Defaults{VaultAddress: "unix:///var/run/vault/agent.sock,https://vault:8200"}},
		{name: "relative socket as -vault-addr", d: Defaults{VaultAddress: "https://vault:8200,unix://agent.sock"}, errSub: `-vault-addr (or $VAULT_ADDR): address 2 of 2, "unix://agent.sock", is not a usable unix:// address: its socket path is not absolute`},
		{name: "socket entry", d: trustDefaults("unix:///run/agent.sock")},
		{name: "unclean socket entry", d: trustDefaults("unix:///run/./agent.sock"), errSub: `entry 1 "unix:///run/./agent.sock" is not a usable unix:// address: its socket path is not clean`},
		{name: "socket prefix", d: trustDefaults("unix:///run/*"), errSub: "is a prefix of unix:// addresses; a Unix socket is trusted only when listed exactly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Validate()
			if tt.errSub == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("err = %v, want one containing %q", err, tt.errSub)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("message %q echoes the password", err)
			}
		})
	}
}
