package vaulttest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestLogin(t *testing.T) {
	s := vaulttest.New(t)
	s.EnableAuth("auth/jwt/").Role("app", vaulttest.Role{JWTs: []string{"good-jwt"}, TTL: 10 * time.Minute})
	c := client(t, s)

	tok, err := c.Login(ctx, "jwt", "app", "good-jwt")
	if err != nil {
		t.Fatal(err)
	}
	if tok.TTL != 10*time.Minute || !tok.Renewable || tok.Accessor == "" || !strings.HasPrefix(tok.Value, "hvs.") {
		t.Errorf("token %+v", tok)
	}
	logins := s.Logins()
	if len(logins) != 1 || logins[0].Value != tok.Value || logins[0].Accessor != tok.Accessor ||
		logins[0].Mount != "jwt" || logins[0].Role != "app" || !logins[0].Live ||
		!logins[0].Expires.Equal(vaulttest.Epoch.Add(10*time.Minute)) {
		t.Errorf("Logins() = %+v", logins)
	}
	if again, _ := c.Login(ctx, "jwt", "app", "good-jwt"); again == nil || again.Value == tok.Value {
		t.Errorf("a second login gave %v, want a new token", again)
	}

	refused := []struct {
		name, mount, role, jwt string
		code                   int
		msg                    string
	}{
		{"wrong JWT", "jwt", "app", "bad-jwt", 403, "permission denied"},
		{"unknown role", "jwt", "nope", "good-jwt", 400, `role "nope" could not be found`},
		{"no JWT", "jwt", "app", "", 400, "missing jwt"},
		{"mount not enabled", "kubernetes", "app", "good-jwt", 403, "permission denied"},
	}
	for _, tt := range refused {
		_, err := c.Login(ctx, tt.mount, tt.role, tt.jwt)
		if status(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %d %q", tt.name, err, tt.code, tt.msg)
		}
	}
	if n := len(s.Logins()); n != 2 {
		t.Errorf("%d successful logins, want 2", n)
	}
	if n := s.Count("POST", "auth/jwt/login"); n != 5 {
		t.Errorf("%d login calls at auth/jwt, want 5", n)
	}
}

func TestLoginWho(t *testing.T) {
	s := vaulttest.New(t)
	s.EnableAuth("kubernetes").
		Role("sa", vaulttest.Role{ServiceAccounts: []string{"apps/app"}}).
		Role("func", vaulttest.Role{Allow: func(jwt string) bool { return strings.HasPrefix(jwt, "ok-") }}).
		Role("any", vaulttest.Role{})
	c := client(t, s)
	tests := []struct {
		role, jwt string
		ok        bool
	}{
		{"sa", makeJWT("system:serviceaccount:apps:app"), true},
		{"sa", makeJWT("system:serviceaccount:apps:other"), false},
		{"sa", makeJWT("system:serviceaccount:team:app"), false},
		{"sa", "not-a-jwt", false},
		{"func", "ok-1", true},
		{"func", "no-1", false},
		{"any", "whatever", true},
	}
	for _, tt := range tests {
		_, err := c.Login(ctx, "kubernetes", tt.role, tt.jwt)
		if (err == nil) != tt.ok {
			t.Errorf("role %s, JWT %q: %v, want ok=%v", tt.role, tt.jwt, err, tt.ok)
		}
	}
}

// A token lives TTL on the server's clock; renewals extend it by what is
// asked, up to the max TTL; then it is dead everywhere.
func TestTokenRenewAndExpiry(t *testing.T) {
	s := vaulttest.New(t)
	tok := login(t, s, vaulttest.Role{TTL: 60 * time.Second, MaxTTL: 150 * time.Second})
	c, clk := client(t, s), s.Clock()
	s.PutKV("kv/x", map[string]any{"k": "v"})

	clk.Advance(50 * time.Second)
	tok, err := c.RenewSelf(ctx, tok, 60*time.Second)
	if err != nil || tok.TTL != 60*time.Second {
		t.Fatalf("renewal at 50s: %v, %v; want TTL 60s", tok, err)
	}
	clk.Advance(50 * time.Second)
	if tok, err = c.RenewSelf(ctx, tok, 0); err != nil || tok.TTL != 50*time.Second {
		t.Fatalf("renewal at 100s: %v, %v; want the 50s left to the max TTL", tok, err)
	}
	if err := c.LookupSelf(ctx, tok); err != nil {
		t.Fatalf("LookupSelf of a live token: %v", err)
	}
	clk.Advance(49 * time.Second)
	if _, err := c.Do(ctx, tok.Value, get("kv/x")); err != nil {
		t.Fatalf("read 1s before expiry: %v", err)
	}
	clk.Advance(time.Second)
	if err := c.LookupSelf(ctx, tok); status(err) != 403 {
		t.Errorf("LookupSelf of an expired token: %v, want 403", err)
	}
	if _, err := c.Do(ctx, tok.Value, get("kv/x")); status(err) != 403 || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("read with an expired token: %v, want 403 permission denied", err)
	}
	if _, err := c.RenewSelf(ctx, tok, time.Minute); status(err) != 403 {
		t.Errorf("renewing an expired token: %v, want 403", err)
	}
	if info, ok := s.Token(tok.Value); !ok || info.Live || info.Revoked {
		t.Errorf("Token() = %+v, %v; want expired, not revoked", info, ok)
	}
}

func TestTokenRenewLimits(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	capped := login(t, s, vaulttest.Role{TTL: time.Minute, RenewTTL: 30 * time.Second})
	if tok, err := c.RenewSelf(ctx, capped, time.Hour); err != nil || tok.TTL != 30*time.Second {
		t.Errorf("renewal with RenewTTL 30s: %v, %v", tok, err)
	}
	fixed := login(t, s, vaulttest.Role{NonRenewable: true})
	if fixed.Renewable || fixed.TTL != vaulttest.DefaultTokenTTL {
		t.Errorf("non-renewable token %+v", fixed)
	}
	if _, err := c.RenewSelf(ctx, fixed, time.Hour); status(err) != 400 {
		t.Errorf("renewing a non-renewable token: %v, want 400", err)
	}
	forever := login(t, s, vaulttest.Role{NoExpiry: true})
	if forever.TTL != 0 || forever.Renewable {
		t.Errorf("token without expiry %+v", forever)
	}
	s.Clock().Advance(10000 * time.Hour)
	if err := c.LookupSelf(ctx, forever); err != nil {
		t.Errorf("token without expiry expired: %v", err)
	}
}

// Revoking a token, by revoke-self or from the test, ends it and the
// leases it created.
func TestRevoke(t *testing.T) {
	for _, how := range []string{"revoke-self", "Revoke"} {
		t.Run(how, func(t *testing.T) {
			s := vaulttest.New(t)
			c := client(t, s)
			tok := login(t, s, vaulttest.Role{})
			resp, err := c.Do(ctx, tok.Value, get("database/creds/app"))
			if err != nil {
				t.Fatal(err)
			}
			if how == "Revoke" {
				s.Revoke(tok.Value)
			} else if err := c.RevokeSelf(ctx, tok); err != nil {
				t.Fatalf("RevokeSelf: %v", err)
			}
			if err := c.LookupSelf(ctx, tok); status(err) != 403 {
				t.Errorf("LookupSelf after revocation: %v, want 403", err)
			}
			if l, ok := s.Lease(resp.Secret.LeaseID); !ok || l.Live || l.Revoked {
				t.Errorf("lease of the revoked token: %+v, %v; want dead (with its token)", l, ok)
			}
			if _, err := c.RenewLease(ctx, login(t, s, vaulttest.Role{}).Value, resp.Secret.LeaseID, time.Hour); status(err) != 400 {
				t.Errorf("renewing the revoked token's lease: %v, want 400", err)
			}
			if info, _ := s.Token(tok.Value); !info.Revoked || info.Live {
				t.Errorf("Token() = %+v", info)
			}
		})
	}
}

// A policy denial is a 403 with a live token: lookup-self tells them apart.
func TestDeny(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	s.PutKV("kv/a", map[string]any{"k": "v"})
	s.PutKV("kv/b", map[string]any{"k": "v"})
	s.PutKV("kv/b2", map[string]any{"k": "v"})
	s.Deny("kv/a")
	tok := login(t, s, vaulttest.Role{Deny: []string{"kv/b"}})
	other := login(t, s, vaulttest.Role{})
	for _, tt := range []struct {
		tok  *vault.Token
		path string
		code int
	}{
		{tok, "kv/a", 403}, {tok, "kv/b", 403}, {tok, "kv/b2", 0},
		{other, "kv/a", 403}, {other, "kv/b", 0},
	} {
		if _, err := c.Do(ctx, tt.tok.Value, get(tt.path)); status(err) != tt.code {
			t.Errorf("read %s: %v, want status %d", tt.path, err, tt.code)
		}
	}
	if err := c.LookupSelf(ctx, tok); err != nil {
		t.Errorf("LookupSelf after a denial: %v, want the token alive", err)
	}
}

func TestAnyToken(t *testing.T) {
	strict := vaulttest.New(t)
	strict.PutKV("kv/x", map[string]any{"k": "v"})
	if _, err := client(t, strict).Do(ctx, "hvs.made-up", get("kv/x")); status(err) != 403 {
		t.Errorf("made-up token without AnyToken: %v, want 403", err)
	}
	if _, err := client(t, strict).Do(ctx, "", get("kv/x")); status(err) != 403 {
		t.Errorf("no token: %v, want 403", err)
	}

	s := vaulttest.New(t, vaulttest.AnyToken())
	s.PutKV("kv/x", map[string]any{"k": "v"})
	c := client(t, s)
	if _, err := c.Do(ctx, "hvs.made-up", get("kv/x")); err != nil {
		t.Fatalf("made-up token with AnyToken: %v", err)
	}
	s.Revoke("hvs.made-up")
	s.Revoke("hvs.never-seen")
	for _, tok := range []string{"hvs.made-up", "hvs.never-seen"} {
		if _, err := c.Do(ctx, tok, get("kv/x")); status(err) != 403 {
			t.Errorf("revoked %s: %v, want 403", tok, err)
		}
	}
	if _, err := c.Do(ctx, "", get("kv/x")); status(err) != 403 {
		t.Errorf("no token with AnyToken: %v, want 403", err)
	}
}
