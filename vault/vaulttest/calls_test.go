package vaulttest_test

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestCalls(t *testing.T) {
	s, _, tok := seeded(t)
	c, err := vault.NewPool(vault.Options{}).Client(vault.Target{Address: s.URL(), Namespace: "team"})
	if err != nil {
		t.Fatal(err)
	}
	s.Clock().Advance(time.Minute)
	_, _ = c.Do(ctx, tok, config.Request{Method: "GET", Path: "kv/a", Query: url.Values{"x": {"1", "2"}}})
	_, _ = c.Do(ctx, tok, put("kv/a2", map[string]any{"k": "v"}))

	calls := s.Calls()
	if len(calls) != 3 {
		t.Fatalf("calls %v", calls)
	}
	login, read, write := calls[0], calls[1], calls[2]
	if login.String() != "POST auth/jwt/login" || login.JSON()["role"] != "app" || login.Token != "" {
		t.Errorf("login call %+v", login)
	}
	if _, has := login.Header["X-Vault-Token"]; has {
		t.Errorf("login call carries a token header")
	}
	if read.String() != "GET kv/a" || read.Token != tok || read.Namespace != "team" ||
		len(read.Query["x"]) != 2 || !read.Time.Equal(vaulttest.Epoch.Add(time.Minute)) || len(read.Body) != 0 {
		t.Errorf("read call %+v", read)
	}
	if write.Method != "PUT" || string(write.Body) != `{"k":"v"}` || write.JSON()["k"] != "v" {
		t.Errorf("write call %+v", write)
	}
	calls[1].Path = "changed"
	if s.Calls()[1].Path != "kv/a" {
		t.Error("Calls returns the server's own slice")
	}

	for _, tt := range []struct {
		method, prefix string
		want           int
	}{
		{"", "", 3}, {"GET", "", 1}, {"", "kv", 2}, {"", "kv/", 2}, {"", "kv/a", 1},
		{"PUT", "kv/a2", 1}, {"GET", "kv/a2", 0}, {"", "k", 0}, {"", "auth/jwt/login", 1},
	} {
		if n := s.Count(tt.method, tt.prefix); n != tt.want {
			t.Errorf("Count(%q, %q) = %d, want %d", tt.method, tt.prefix, n, tt.want)
		}
	}
}

func TestMaxInFlight(t *testing.T) {
	s, c, tok := seeded(t)
	release := s.Hold("kv/")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _, _ = c.Do(ctx, tok, get("kv/a")) })
	}
	vaulttest.Eventually(t, "three reads in flight", func() bool { return s.InFlight() == 3 })
	release()
	wg.Wait()
	if s.InFlight() != 0 || s.MaxInFlight() != 3 {
		t.Errorf("in flight %d, max %d; want 0 and 3", s.InFlight(), s.MaxInFlight())
	}
}
