package vault

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// parse is config.Parse of a class with the given parameters.
func parse(t *testing.T, d config.Defaults, params map[string]string) *config.Config {
	t.Helper()
	attrs := map[string]string{
		config.ParamRoleName: "app",
		config.ParamObjects:  "- {objectName: a, secretPath: secret/x}",
	}
	for k, v := range params {
		attrs[k] = v
	}
	b, err := json.Marshal(attrs)
	if err != nil {
		t.Fatal(err)
	}
	if d.AuthMountPath == "" {
		d.AuthMountPath = "kubernetes"
	}
	cfg, err := config.Parse(string(b), "null", "420", d)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mountClient is the client a Mount of cfg uses for addr, and the context
// carrying the Mount's policy.
func mountClient(t *testing.T, p *Pool, cfg *config.Config, addr string) (*Client, context.Context) {
	t.Helper()
	c, err := p.Client(Target{Address: addr, Namespace: cfg.VaultNamespace, TLS: cfg.TLSFor(addr)})
	if err != nil {
		t.Fatal(err)
	}
	return c, WithPolicy(context.Background(), MountPolicy(cfg, 4<<20))
}

var getX = config.Request{Method: "GET", Path: "secret/x"}

// TestRedirectStandbyToActive: a class listing the nodes of an HA cluster
// works when a standby redirects to the active node, and the request
// arrives there whole: method, body, token, namespace, and the active
// node's Host.
func TestRedirectStandbyToActive(t *testing.T) {
	active := vaulttest.New(t, vaulttest.AnyToken())
	active.EnableAuth("kubernetes").Role("app", vaulttest.Role{})
	active.PutKV("secret/x", map[string]any{"k": "v"})
	standby := vaulttest.New(t)
	standby.Redirect("", active.URL())

	cfg := parse(t, config.Defaults{VaultAddress: "https://vault.default:8200"}, map[string]string{
		config.ParamVaultAddress:   standby.URL() + "," + active.URL(),
		config.ParamVaultNamespace: "team",
	})
	p := NewPool(Options{MaxRetries: 0})
	c, ctx := mountClient(t, p, cfg, standby.URL())

	if _, err := c.Login(ctx, "kubernetes", "app", "jwt-of-the-pod"); err != nil {
		t.Fatalf("login through the standby: %v", err)
	}
	login := last(t, active)
	if login.Method != "POST" || login.Path != "auth/kubernetes/login" || !strings.Contains(string(login.Body), "jwt-of-the-pod") || login.Namespace != "team" {
		t.Errorf("the active node got %s %s namespace %q body %q", login.Method, login.Path, login.Namespace, login.Body)
	}
	resp, err := c.Do(ctx, "hvs.pod", config.Request{Method: "GET", Path: "secret/x", Query: map[string][]string{"version": {"2"}}})
	if err != nil {
		t.Fatalf("read through the standby: %v", err)
	}
	if resp.Secret.Data["k"] != "v" {
		t.Errorf("data = %v", resp.Secret.Data)
	}
	read := last(t, active)
	if read.Token != "hvs.pod" || read.Namespace != "team" || read.Query.Get("version") != "2" {
		t.Errorf("the active node got token %q namespace %q query %v", read.Token, read.Namespace, read.Query)
	}
	active.Handle("sys/host", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":{"host":"` + r.Host + `"}}`))
	})
	if resp, err := c.Do(ctx, "hvs.pod", config.Request{Method: "GET", Path: "sys/host"}); err != nil || resp.Secret.Data["host"] != active.Addr() {
		t.Errorf("the active node got Host %v (err %v), want its own %s", resp.Secret.Data["host"], err, active.Addr())
	}
	if n := len(standby.Calls()); n != 3 {
		t.Errorf("standby got %d calls, want 3 (each redirected once)", n)
	}
}

func TestRedirectRefused(t *testing.T) {
	target := vaulttest.New(t, vaulttest.AnyToken())
	target.PutKV("secret/x", map[string]any{"k": "v"})
	tests := []struct {
		name   string
		setup  func(from *vaulttest.Server) // makes from redirect
		ctx    func(cfg *config.Config) context.Context
		allow  []string
		want   []string // in the message
		wantTo string
	}{
		{
			name:  "to an origin the class does not list",
			setup: func(from *vaulttest.Server) { from.Redirect("", target.URL()) },
			want:  []string{"redirected to " + config.Origin(target.URL()) + ", which is not followed: it is neither an address of this SecretProviderClass (vaultAddress) nor one the provider's operator trusts", "-allowed-vault-addresses"},
		},
		{
			name:  "to an origin outside the allow-list",
			setup: func(from *vaulttest.Server) { from.Redirect("", target.URL()) },
			allow: []string{"http://127.0.0.1:1", "http://localhost:*"},
			want:  []string{"is not followed: it is neither"},
		},
		{
			name:  "without a policy",
			setup: func(from *vaulttest.Server) { from.Redirect("", target.URL()) },
			ctx:   func(*config.Config) context.Context { return context.Background() },
			want:  []string{"redirects are not followed for this call"},
		},
		{
			name: "without a Location",
			setup: func(from *vaulttest.Server) {
				from.Handle("", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTemporaryRedirect) })
			},
			want:   []string{"redirected to an unusable location, which is not followed: the answer's Location header is missing"},
			wantTo: "-",
		},
		{
			name: "to something else than http(s)",
			setup: func(from *vaulttest.Server) {
				from.Handle("", func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
				})
			},
			want:   []string{"the Location is not an http, https or unix:// URL"},
			wantTo: "-",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := vaulttest.New(t)
			tt.setup(from)
			cfg := parse(t, config.Defaults{VaultAddress: from.URL(), AllowedVaultAddresses: tt.allow}, nil)
			c, ctx := mountClient(t, NewPool(Options{MaxRetries: 0}), cfg, from.URL())
			if tt.ctx != nil {
				ctx = tt.ctx(cfg)
			}
			before := len(target.Calls())
			_, err := c.Do(ctx, "hvs.pod", getX)
			var re *RedirectError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want a *RedirectError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
			wantTo := config.Origin(target.URL())
			if tt.wantTo == "-" {
				wantTo = ""
			}
			if re.From != from.URL() || re.To != wantTo || re.Op != "GET secret/x" {
				t.Errorf("RedirectError = %+v", re)
			}
			if n := len(target.Calls()) - before; n != 0 {
				t.Errorf("the redirect target got %d calls", n)
			}
		})
	}
}

func TestRedirectAllowListed(t *testing.T) {
	target := vaulttest.New(t, vaulttest.AnyToken())
	target.PutKV("secret/x", map[string]any{"k": "v"})
	from := vaulttest.New(t)
	from.Redirect("", target.URL())
	for _, allow := range []string{config.Origin(target.URL()), "http://127.0.0.1:*"} {
		cfg := parse(t, config.Defaults{VaultAddress: from.URL(), AllowedVaultAddresses: []string{allow}}, nil)
		c, ctx := mountClient(t, NewPool(Options{}), cfg, from.URL())
		if _, err := c.Do(ctx, "hvs.pod", getX); err != nil {
			t.Errorf("allow-list %s: %v", allow, err)
		}
	}
}

func TestRedirectOnlyOnce(t *testing.T) {
	active := vaulttest.New(t, vaulttest.AnyToken())
	active.PutKV("secret/x", map[string]any{"k": "v"})
	second := vaulttest.New(t)
	second.Redirect("", active.URL())
	first := vaulttest.New(t)
	first.Redirect("", second.URL())
	cfg := parse(t, config.Defaults{VaultAddress: first.URL() + "," + second.URL() + "," + active.URL()}, nil)
	c, ctx := mountClient(t, NewPool(Options{}), cfg, first.URL())
	_, err := c.Do(ctx, "hvs.pod", getX)
	var re *RedirectError
	if !errors.As(err, &re) || re.From != config.Origin(second.URL()) || re.To != config.Origin(active.URL()) || !strings.Contains(err.Error(), "only one redirect is followed") {
		t.Fatalf("err = %v, want a RedirectError from the second hop", err)
	}
	if n := len(active.Calls()); n != 0 {
		t.Errorf("a second redirect was followed (%d calls)", n)
	}
}

func TestRedirectNoDowngrade(t *testing.T) {
	pk := newPKI(t)
	plain := vaulttest.New(t, vaulttest.AnyToken())
	plain.PutKV("secret/x", map[string]any{"k": "v"})
	from := httptest.NewUnstartedServer(http.RedirectHandler(plain.URL()+"/v1/secret/x", http.StatusTemporaryRedirect))
	from.TLS = &tls.Config{Certificates: []tls.Certificate{pk.server}}
	from.StartTLS()
	t.Cleanup(from.Close)

	cfg := parse(t, config.Defaults{VaultAddress: from.URL + "," + plain.URL(), TLS: config.TLS{CACert: pk.caFile}}, nil)
	c, ctx := mountClient(t, NewPool(Options{}), cfg, from.URL)
	_, err := c.Do(ctx, "hvs.pod", getX)
	var re *RedirectError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "it would go from https to http") {
		t.Fatalf("err = %v, want a RedirectError refusing the downgrade", err)
	}
	if n := len(plain.Calls()); n != 0 {
		t.Errorf("the downgrade was followed (%d calls)", n)
	}
}

// TestRedirectNeverCarriesTheOperatorsCertificate is the hostile-tenant
// case: the operator configured an mTLS client certificate for its Vault;
// a class names the tenant's own server, which redirects to an internal
// service that requires client certificates. The operator's certificate is
// presented only to addresses the operator trusts.
func TestRedirectNeverCarriesTheOperatorsCertificate(t *testing.T) {
	pk := newPKI(t)
	vault := newTLSServer(t, pk, tls.RequireAnyClientCert, "vault")
	internal := newTLSServer(t, pk, tls.RequireAnyClientCert, "internal")
	tenant := vaulttest.New(t)
	tenant.Redirect("", internal.URL)
	operator := config.Defaults{
		VaultAddress: vault.URL,
		TLS:          config.TLS{CACert: pk.caFile, ClientCert: pk.clientCert, ClientKey: pk.clientKey},
	}
	read := func(t *testing.T, d config.Defaults, params map[string]string, addr string) (*Response, error) {
		t.Helper()
		cfg := parse(t, d, params)
		c, ctx := mountClient(t, NewPool(Options{MaxRetries: 0}), cfg, addr)
		return c.Do(ctx, "hvs.pod", getX)
	}

	// The operator's own Vault gets the certificate.
	if resp, err := read(t, operator, nil, vault.URL); err != nil || resp.Secret.Data["server"] != "vault" {
		t.Fatalf("operator's Vault: %v", err)
	}
	if got := vault.requests(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("operator's Vault saw %v client certificates, want [1]", got)
	}

	// The tenant's server redirects to an origin the class does not list.
	_, err := read(t, operator, map[string]string{config.ParamVaultAddress: tenant.URL()}, tenant.URL())
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("redirect to an unlisted internal service: err = %v, want a RedirectError", err)
	}

	// The class lists the internal service too (any address may be named
	// without an allow-list): the redirect is followed with the internal
	// service's own settings — the class's CA, no client certificate — so
	// the service refuses the handshake and returns nothing.
	_, err = read(t, operator, map[string]string{
		config.ParamVaultAddress:    tenant.URL() + "," + internal.URL,
		config.ParamVaultCACertPath: pk.caFile,
	}, tenant.URL())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(ue.Addr, strings.TrimPrefix(internal.URL, "https://")) {
		t.Fatalf("redirect to a listed untrusted service: err = %v, want the service unreachable without a client certificate", err)
	}
	if got := internal.requests(); len(got) != 0 {
		t.Fatalf("the internal service answered %d requests for the tenant", len(got))
	}

	// Even a trusted address redirecting (the operator's Vault, say) does
	// not lend its certificate to the origin it redirects to.
	redirecting := httptest.NewUnstartedServer(http.RedirectHandler(internal.URL+"/v1/secret/x", http.StatusTemporaryRedirect))
	redirecting.TLS = &tls.Config{Certificates: []tls.Certificate{pk.server}, ClientAuth: tls.RequireAnyClientCert}
	redirecting.StartTLS()
	t.Cleanup(redirecting.Close)
	viaTrusted := operator
	viaTrusted.VaultAddress = redirecting.URL
	_, err = read(t, viaTrusted, map[string]string{
		config.ParamVaultAddress:    redirecting.URL + "," + internal.URL,
		config.ParamVaultCACertPath: pk.caFile,
	}, redirecting.URL)
	if !errors.As(err, &ue) {
		t.Fatalf("redirect from a trusted address to a listed untrusted one: err = %v, want the service unreachable without a client certificate", err)
	}
	if got := internal.requests(); len(got) != 0 {
		t.Fatalf("the internal service answered %d requests for the tenant", len(got))
	}

	// Once the operator trusts the internal service, a redirect to it is
	// followed with the operator's settings, certificate included.
	trusting := operator
	trusting.AllowedVaultAddresses = []string{tenant.URL(), internal.URL}
	resp, err := read(t, trusting, map[string]string{config.ParamVaultAddress: tenant.URL()}, tenant.URL())
	if err != nil || resp.Secret.Data["server"] != "internal" {
		t.Fatalf("redirect to a trusted service: %v", err)
	}
	if got := internal.requests(); len(got) != 1 || got[0] != 1 {
		t.Errorf("trusted internal service saw %v client certificates, want [1]", got)
	}
}

// Redirects to or from a Vault Agent's Unix socket are followed only to an
// address the Mount itself lists: trusting an address (-vault-addr,
// -allowed-vault-addresses) is not enough to have a server send the
// provider to, or from, a socket on the node.
func TestRedirectUnixSocket(t *testing.T) {
	sockAddr := func(t *testing.T) string { return "unix://" + socketPath(t) }
	tests := []struct {
		name string
		// run sets up the servers and returns the defaults, the class's
		// vaultAddress, the address the Mount starts at, and the server
		// the read must reach ("" if it must be refused).
		run      func(t *testing.T) (d config.Defaults, classAddr, start string, target *vaulttest.Server)
		refusal  string
		wantFrom func(start string) string
	}{
		{
			name: "from the socket to an address the class lists",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				active := seeded(t, vaulttest.New(t, vaulttest.AnyToken()))
				agent := vaulttest.New(t, vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://")))
				agent.Redirect("", active.URL())
				return config.Defaults{VaultAddress: addr}, addr + "," + active.URL(), addr, active
			},
		},
		{
			name: "from the socket to an address only the allow-list names",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				active := seeded(t, vaulttest.New(t, vaulttest.AnyToken()))
				agent := vaulttest.New(t, vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://")))
				agent.Redirect("", active.URL())
				return config.Defaults{VaultAddress: addr, AllowedVaultAddresses: []string{active.URL()}}, "", addr, nil
			},
			refusal: "which is not followed: a redirect to or from a Unix socket (unix://) is followed only to an address this SecretProviderClass itself lists in vaultAddress",
		},
		{
			name: "to the socket, which the class lists",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				agent := seeded(t, vaulttest.New(t, vaulttest.AnyToken(), vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://"))))
				standby := vaulttest.New(t)
				redirectTo(standby, addr)
				return config.Defaults{VaultAddress: addr}, standby.URL() + "," + addr, standby.URL(), agent
			},
		},
		{
			name: "to the socket, trusted as -vault-addr but not listed by the class",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				seeded(t, vaulttest.New(t, vaulttest.AnyToken(), vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://"))))
				tenant := vaulttest.New(t)
				redirectTo(tenant, addr)
				return config.Defaults{VaultAddress: addr}, tenant.URL(), tenant.URL(), nil
			},
			refusal: "a redirect to or from a Unix socket (unix://) is followed only to an address this SecretProviderClass itself lists",
		},
		{
			name: "from https to the socket the class lists",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				agent := seeded(t, vaulttest.New(t, vaulttest.AnyToken(), vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://"))))
				standby := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, addr, http.StatusTemporaryRedirect)
				}))
				t.Cleanup(standby.Close)
				return config.Defaults{VaultAddress: addr}, standby.URL + "," + addr, standby.URL, agent
			},
		},
		{
			name: "a relative Location from the socket stays on it",
			run: func(t *testing.T) (config.Defaults, string, string, *vaulttest.Server) {
				addr := sockAddr(t)
				agent := seeded(t, vaulttest.New(t, vaulttest.AnyToken(), vaulttest.OnSocket(strings.TrimPrefix(addr, "unix://"))))
				agent.Handle("secret/old", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Location", "/v1/secret/x")
					w.WriteHeader(http.StatusTemporaryRedirect)
				})
				return config.Defaults{VaultAddress: addr}, "", addr, agent
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, classAddr, start, target := tt.run(t)
			var params map[string]string
			if classAddr != "" {
				params = map[string]string{config.ParamVaultAddress: classAddr, config.ParamVaultSkipTLSVerify: "true"}
			}
			cfg := parse(t, d, params)
			c, ctx := mountClient(t, NewPool(Options{MaxRetries: 0}), cfg, start)
			path := "secret/x"
			if tt.name == "a relative Location from the socket stays on it" {
				path = "secret/old"
			}
			resp, err := c.Do(ctx, "hvs.pod", config.Request{Method: "GET", Path: path, Query: map[string][]string{"version": {"3"}}})
			if tt.refusal != "" {
				var re *RedirectError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.refusal) {
					t.Fatalf("err = %v, want a RedirectError saying %q", err, tt.refusal)
				}
				if re.From != start {
					t.Errorf("RedirectError.From = %q, want %q", re.From, start)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if resp.Secret.Data["k"] != "v" {
				t.Errorf("data = %v", resp.Secret.Data)
			}
			got := last(t, target)
			if got.Path != "secret/x" || got.Token != "hvs.pod" || got.Query.Get("version") != "3" {
				t.Errorf("the target got %s token %q query %v", got.Path, got.Token, got.Query)
			}
		})
	}
}

// seeded gives s the secret at secret/x the redirect tests read.
func seeded(t *testing.T, s *vaulttest.Server) *vaulttest.Server {
	t.Helper()
	s.PutKV("secret/x", map[string]any{"k": "v"})
	return s
}

// redirectTo makes s redirect every request to the unix:// address addr,
// which names only the socket.
func redirectTo(s *vaulttest.Server, addr string) {
	s.Handle("", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", addr)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
}
