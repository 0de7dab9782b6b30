package cache

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestRevokeAll(t *testing.T) {
	tests := []struct {
		name       string
		pods       []string // identities holding a cached token and a lease
		preRevoked []string // whose tokens Vault already revoked (revoke-self then fails)
		wantN      int
		wantErr    string
	}{
		{name: "empty cache", wantN: 0},
		{name: "one token", pods: []string{"a"}, wantN: 1},
		{name: "every identity's token", pods: []string{"a", "b", "c"}, wantN: 3},
		{name: "a refused revocation is reported, the others still happen", pods: []string{"a", "b"}, preRevoked: []string{"a"}, wantN: 1, wantErr: "revoking vault-token(accessor=vaulttest-accessor-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			var evicted []string
			forget := h.c.tokens.onEvict
			h.c.tokens.onEvict = func(key string, tok *vault.Token) {
				evicted = append(evicted, tok.Value)
				forget(key, tok)
			}
			tokens := map[string]string{}
			for _, uid := range tt.pods {
				cfg := h.pod(uid)
				tok := h.token(cfg)
				tokens[uid] = tok.Value
				h.fetch(tok, idOf(cfg), dbReq("x"))
			}
			for _, uid := range tt.preRevoked {
				h.fv.Revoke(tokens[uid])
			}

			n, err := h.c.RevokeAll(context.Background())
			if n != tt.wantN {
				t.Errorf("RevokeAll revoked %d tokens, want %d", n, tt.wantN)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("RevokeAll: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("RevokeAll error %v, want one containing %q", err, tt.wantErr)
			}
			asked := map[string]bool{}
			for _, r := range requests(h.fv, "auth/token/revoke-self") {
				asked[r.Token] = true
			}
			for uid, val := range tokens {
				if !asked[val] {
					t.Errorf("pod %s's token was not revoked", uid)
				}
			}
			if len(evicted) != len(tokens) {
				t.Errorf("onEvict saw %d tokens, want %d", len(evicted), len(tokens))
			}
			if n := h.c.Leases(); n != 0 {
				t.Errorf("%d leases cached after RevokeAll, want none: they went with their tokens", n)
			}
			// The cache is empty: each identity logs in anew.
			logins := loginCount(h.fv)
			for uid, val := range tokens {
				if got := h.token(h.pod(uid)); got.Value == val {
					t.Errorf("pod %s got its revoked token back", uid)
				}
			}
			if got := loginCount(h.fv) - logins; got != len(tokens) {
				t.Errorf("%d logins after RevokeAll, want %d", got, len(tokens))
			}
		})
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		name string
		// setup acts on Vault once pod a holds a cached token and a lease.
		setup func(h *harness, tok *vault.Token)
		// thisMount: the token was obtained in the Mount that was refused.
		thisMount   bool
		wantLookups int
		wantLogins  int // during Refused
		wantRetry   bool
		wantErr     bool
	}{
		{name: "revoked token: its leases forgotten, one new login, retry",
			setup:       func(h *harness, tok *vault.Token) { h.fv.Revoke(tok.Value) },
			wantLookups: 1, wantLogins: 1, wantRetry: true},
		{name: "live token (a policy denial): kept with its leases, no login, no retry",
			wantLookups: 1},
		{name: "lookup-self fails otherwise: the token is not known dead, kept",
			setup: func(h *harness, _ *vault.Token) {
				h.fv.Fail("auth/token/lookup-self", http.StatusInternalServerError)
			},
			wantLookups: 1},
		{name: "token from this Mount: Vault's answer is about the path, nothing asked",
			setup:     func(h *harness, tok *vault.Token) { h.fv.Revoke(tok.Value) },
			thisMount: true},
		{name: "revoked token, new login refused: the error, no retry",
			setup: func(h *harness, tok *vault.Token) {
				h.fv.Revoke(tok.Value)
				h.fv.Fail("auth/jwt/login", http.StatusForbidden)
			},
			wantLookups: 1, wantLogins: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			cfg := h.pod("a")
			id := idOf(cfg)
			tok := h.token(cfg)
			lease, _ := h.fetch(tok, id, dbReq("x"))
			// The refused Mount starts a little later, unless it is the
			// one that logged in.
			mountStart := h.c.Now()
			if !tt.thisMount {
				h.clk.Advance(10 * s)
				mountStart = h.c.Now()
			}
			if tt.setup != nil {
				tt.setup(h, tok)
			}
			logins := loginCount(h.fv)

			newTok, retry, err := h.c.Refused(context.Background(), h.vc, id, cfg, tok, mountStart)

			if n := count(h.fv, "auth/token/lookup-self"); n != tt.wantLookups {
				t.Errorf("%d lookup-self calls, want %d", n, tt.wantLookups)
			}
			if n := loginCount(h.fv) - logins; n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
			if retry != tt.wantRetry {
				t.Errorf("retry = %v, want %v", retry, tt.wantRetry)
			}
			if tt.wantErr {
				var le *auth.LoginError
				if !errors.As(err, &le) {
					t.Errorf("err = %v, want the LoginError", err)
				}
			} else if err != nil {
				t.Fatalf("Refused: %v", err)
			}
			if retry != (newTok != nil) {
				t.Errorf("retry = %v with new token %v", retry, newTok)
			}
			if newTok != nil && newTok.Value == tok.Value {
				t.Errorf("Refused handed back the refused token")
			}
			if tt.wantErr {
				return
			}

			// The token the identity now has: the new one, or the kept one,
			// with no further Vault call.
			calls := total(h.fv)
			want := tok
			if retry {
				want = newTok
			}
			if got := h.token(cfg); got.Value != want.Value || total(h.fv) != calls {
				t.Errorf("Token afterwards: %q with %d Vault calls, want the cached %q", got.Value, total(h.fv)-calls, want.Value)
			}
			// A kept token keeps its lease; a dead token's lease is gone.
			resp, outcome := h.fetch(want, id, dbReq("x"))
			kept := outcome == Hit && answer(resp) == answer(lease)
			if kept == retry {
				t.Errorf("lease after Refused: %s %s (first %s); want it kept = %v", outcome, answer(resp), answer(lease), !retry)
			}
		})
	}
}

// Row 9 of the multi-tenancy audit: a token's leases are indexed by
// identity and accessor, so a token of another identity (another Vault)
// with the same accessor string keeps its leases when the first is refused
// or evicted.
func TestForgetTokenLeavesOtherIdentities(t *testing.T) {
	tests := []struct {
		name string
		// kill makes pod a's token (at Vault 1) gone from the cache's view.
		kill func(t *testing.T, h *harness, a, b *config.Config, tokA *vault.Token)
		// revoked: Vault revoked a's token (and its lease) meanwhile.
		revoked bool
	}{
		{name: "refused by Vault", revoked: true, kill: func(t *testing.T, h *harness, a, _ *config.Config, tokA *vault.Token) {
			h.fv.Revoke(tokA.Value)
			_, retry, err := h.c.Refused(context.Background(), h.vc, idOf(a), a, tokA, h.c.Now().Add(time.Second))
			if err != nil || !retry {
				t.Fatalf("Refused: retry %v, %v; want a retry", retry, err)
			}
		}},
		{name: "evicted", kill: func(t *testing.T, h *harness, _, b *config.Config, _ *vault.Token) {
			// The cache holds two tokens; a third pod evicts a's, the
			// least recently used of pods holding one each.
			h.token(b)
			h.token(h.pod("c"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 2})
			// Both Vaults name their first token alike: same accessor.
			other := newVault(t, h.clk)
			a := h.pod("a")
			b := h.pod("b")
			b.VaultAddress = other.URL()
			tokA, tokB := h.token(a), h.token(b)
			if tokA.Accessor != tokB.Accessor {
				t.Fatalf("accessors %q and %q, want them alike", tokA.Accessor, tokB.Accessor)
			}
			vcB := h.client(other.URL())
			leaseA, _ := h.fetch(tokA, idOf(a), dbReq("x"))
			leaseB, _, err := h.c.Fetch(context.Background(), vcB, tokB, idOf(b), dbReq("x"))
			if err != nil {
				t.Fatal(err)
			}
			h.clk.Advance(10 * s)

			tt.kill(t, h, a, b, tokA)

			if n := h.c.Leases(); n != 1 {
				t.Errorf("%d leases cached, want b's only", n)
			}
			resp, outcome, err := h.c.Fetch(context.Background(), vcB, tokB, idOf(b), dbReq("x"))
			if err != nil || outcome != Hit || answer(resp) != answer(leaseB) {
				t.Errorf("b's lease: %s %s %v, want a hit on %s", outcome, answer(resp), err, answer(leaseB))
			}
			// Eviction forgets; only Vault (or RevokeAll) revokes.
			if got := live(h.fv, tokA); got == tt.revoked {
				t.Errorf("a's token live in Vault = %v, want %v", got, !tt.revoked)
			}
			if l, _ := h.fv.Lease(leaseA.Secret.LeaseID); l.Live == tt.revoked {
				t.Errorf("a's lease live in Vault = %v, want %v", l.Live, !tt.revoked)
			}
			if n := count(h.fv, "auth/token/revoke-self") + count(other, "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
			if got := h.token(a); got.Value == tokA.Value {
				t.Fatalf("a still has its forgotten token")
			}
			if resp, outcome := h.fetch(h.token(a), idOf(a), dbReq("x")); outcome != Issued || answer(resp) == answer(leaseA) {
				t.Errorf("a's lease: %s %s, want a new one (not %s)", outcome, answer(resp), answer(leaseA))
			}
		})
	}
}

// Concurrent Mounts refused with one dead token log in once between them.
func TestRefusedConcurrent(t *testing.T) {
	const callers = 10
	h := newHarness(t, Options{TokenCacheSize: 10})
	cfg := h.pod("a")
	id := idOf(cfg)
	tok := h.token(cfg)
	h.clk.Advance(10 * s)
	mountStart := h.c.Now()
	h.fv.Revoke(tok.Value)
	release := h.fv.Hold("auth/jwt/login")

	results := make([]*vault.Token, callers)
	retries := make([]bool, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], retries[i], errs[i] = h.c.Refused(context.Background(), h.vc, id, cfg, tok, mountStart)
		}()
	}
	vaulttest.Eventually(t, "callers to wait for one login", func() bool {
		return singleflightWaiters("(*tokenCache).relogin(") >= callers-1 || loginCount(h.fv) > 2
	})
	release()
	wg.Wait()

	if n := loginCount(h.fv); n != 2 {
		t.Errorf("%d logins in all, want the first and one new", n)
	}
	for i := range callers {
		if errs[i] != nil || !retries[i] {
			t.Fatalf("caller %d: retry %v, %v", i, retries[i], errs[i])
		}
		if results[i].Value != results[0].Value || results[i].Value == tok.Value {
			t.Errorf("caller %d got %q, caller 0 %q, refused %q", i, results[i].Value, results[0].Value, tok.Value)
		}
	}
}
