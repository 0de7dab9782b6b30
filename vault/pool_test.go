package vault

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestPoolClientIdentity(t *testing.T) {
	p := NewPool(Options{})
	mk := func(tg Target) *Client {
		t.Helper()
		c, err := p.Client(tg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := mk(Target{Address: "https://vault:8200"})
	if b := mk(Target{Address: "https://vault:8200"}); b != a {
		t.Error("same target gave different clients")
	}
	if b := mk(Target{Address: "https://vault:8200/"}); b != a {
		t.Error("trailing slash gave a different client")
	}
	if a.Address() != "https://vault:8200" {
		t.Errorf("Address() = %q", a.Address())
	}
	ns1 := mk(Target{Address: "https://vault:8200", Namespace: "team-a"})
	ns2 := mk(Target{Address: "https://vault:8200", Namespace: "team-b"})
	if ns1 == a || ns2 == a || ns1 == ns2 {
		t.Error("different namespaces share a client")
	}
	if again := mk(Target{Address: "https://vault:8200", Namespace: "team-a"}); again != ns1 {
		t.Error("same namespace gave a different client")
	}
	if other := mk(Target{Address: "https://vault2:8200"}); other == a {
		t.Error("different addresses share a client")
	}
	if tls := mk(Target{Address: "https://vault:8200", TLS: config.TLS{SkipTLSVerify: true}}); tls == a {
		t.Error("different TLS settings share a client")
	}

	// A namespaced client first, then the root one.
	p2 := NewPool(Options{})
	n, err := p2.Client(Target{Address: "https://v:1", Namespace: "x"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p2.Client(Target{Address: "https://v:1"})
	if err != nil {
		t.Fatal(err)
	}
	if n == r {
		t.Error("namespaced and root clients are the same")
	}
}

func TestPoolBadTLSIsSettingsError(t *testing.T) {
	p := NewPool(Options{})
	_, err := p.Client(Target{Address: "https://vault:8200", TLS: config.TLS{CACert: "/nonexistent/ca.pem"}})
	var se *SettingsError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *SettingsError", err, err)
	}
	if se.Addr != "https://vault:8200" || se.Err == nil {
		t.Errorf("SettingsError = %+v", se)
	}
	for _, want := range []string{"Vault TLS settings for https://vault:8200 cannot be used", "/nonexistent/ca.pem", "vaultCACertPath"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
	// The class is vault's own; provider/errors.go maps it.
	if config.IsInputError(err) {
		t.Errorf("vault returned config's error class: %v", err)
	}
	// A failed setting is not remembered: the next call tries again.
	if _, err := p.Client(Target{Address: "https://vault:8200", TLS: config.TLS{CACert: "/nonexistent/ca.pem"}}); !errors.As(err, &se) {
		t.Errorf("second call: err = %v, want a *SettingsError again", err)
	}
}

func TestClientIgnoresEnvironmentToken(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "env-root-token")
	t.Setenv("VAULT_NAMESPACE", "env-namespace")
	// AnyToken: a $VAULT_TOKEN that slipped through would be accepted.
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.EnableAuth("kubernetes").Role("app", vaulttest.Role{})
	v.PutKV2("secret/data/app", map[string]any{"k": "v"})
	for _, ns := range []string{"", "team-a"} {
		t.Run("namespace="+ns, func(t *testing.T) {
			c := newClient(t, Options{}, Target{Address: v.URL(), Namespace: ns})

			_, err := c.Do(context.Background(), "", config.Request{Method: "GET", Path: "secret/data/app"})
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != 403 {
				t.Errorf("Do with no token = %v, want 403", err)
			}
			got := last(t, v)
			if _, has := got.Header["X-Vault-Token"]; has {
				t.Errorf("Do with no token sent X-Vault-Token %q", got.Token)
			}
			if got.Namespace != ns {
				t.Errorf("Do sent namespace %q, want %q", got.Namespace, ns)
			}

			if _, err := c.Do(context.Background(), "hvs.pod", config.Request{Method: "GET", Path: "secret/data/app"}); err != nil {
				t.Fatal(err)
			}
			if got := last(t, v); got.Token != "hvs.pod" {
				t.Errorf("Do sent token %q, want the pod's", got.Token)
			}

			if _, err := c.Login(context.Background(), "kubernetes", "app", "jwt"); err != nil {
				t.Fatal(err)
			}
			got = last(t, v)
			if _, has := got.Header["X-Vault-Token"]; has {
				t.Errorf("Login (namespace %q) sent the provider's $VAULT_TOKEN %q", ns, got.Token)
			}
			if got.Namespace != ns {
				t.Errorf("Login sent namespace %q, want %q", got.Namespace, ns)
			}
		})
	}
}

func TestClientIgnoresAgentAddress(t *testing.T) {
	t.Setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:1")
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.PutKV2("secret/data/app", map[string]any{"k": "v"})
	c := newClient(t, Options{}, Target{Address: v.URL()})
	_, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/data/app"})
	if err != nil {
		t.Fatalf("with $VAULT_AGENT_ADDR set, the request did not reach the target %s: %v", v.URL(), err)
	}
	if n := len(v.Calls()); n != 1 {
		t.Errorf("target received %d requests, want 1", n)
	}
}
