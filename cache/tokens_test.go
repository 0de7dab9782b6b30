package cache

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestTokenCacheRefresh(t *testing.T) {
	tests := []struct {
		name        string
		fraction    float64 // 0: the default, 2/3
		loginTTL    int
		renewable   bool
		renewTTL    int // granted by renew-self; 0: as asked
		renewStatus int
		after       time.Duration
		wantLogins  int
		wantRenews  int
		wantSame    bool          // the second Token is the first token (renewed or not)
		wantIssued  time.Duration // IssuedAt of the second token, after epoch
		wantTTL     time.Duration
	}{
		{name: "hit before the threshold", loginTTL: 300, renewable: true, after: 199 * s,
			wantLogins: 1, wantSame: true, wantIssued: 0, wantTTL: 300 * s},
		{name: "renewed past the threshold", loginTTL: 300, renewable: true, after: 201 * s,
			wantLogins: 1, wantRenews: 1, wantSame: true, wantIssued: 201 * s, wantTTL: 300 * s},
		{name: "renewal granting less, but enough", loginTTL: 300, renewable: true, renewTTL: 150, after: 201 * s,
			wantLogins: 1, wantRenews: 1, wantSame: true, wantIssued: 201 * s, wantTTL: 150 * s},
		{name: "renewal granting less than (1-fraction) of the login TTL: new login", loginTTL: 300, renewable: true, renewTTL: 99, after: 201 * s,
			wantLogins: 2, wantRenews: 1, wantIssued: 201 * s, wantTTL: 300 * s},
		{name: "renewal refused: new login", loginTTL: 300, renewable: true, renewStatus: http.StatusForbidden, after: 201 * s,
			wantLogins: 2, wantRenews: 1, wantIssued: 201 * s, wantTTL: 300 * s},
		{name: "renewal fails: new login", loginTTL: 300, renewable: true, renewStatus: http.StatusBadRequest, after: 201 * s,
			wantLogins: 2, wantRenews: 1, wantIssued: 201 * s, wantTTL: 300 * s},
		{name: "long past the TTL: still renewed first", loginTTL: 300, renewable: true, after: 250 * s,
			wantLogins: 1, wantRenews: 1, wantSame: true, wantIssued: 250 * s, wantTTL: 300 * s},
		{name: "non-renewable token past the threshold: new login", loginTTL: 300, renewable: false, after: 201 * s,
			wantLogins: 2, wantIssued: 201 * s, wantTTL: 300 * s},
		{name: "non-renewable token before the threshold: hit", loginTTL: 300, renewable: false, after: 199 * s,
			wantLogins: 1, wantSame: true, wantTTL: 300 * s},
		{name: "token without TTL is never refreshed", loginTTL: 0, renewable: false, after: 10 * 365 * 24 * time.Hour,
			wantLogins: 1, wantSame: true},
		{name: "custom fraction: hit before it", fraction: 0.5, loginTTL: 300, renewable: true, after: 149 * s,
			wantLogins: 1, wantSame: true, wantTTL: 300 * s},
		{name: "custom fraction: renewed past it", fraction: 0.5, loginTTL: 300, renewable: true, after: 151 * s,
			wantLogins: 1, wantRenews: 1, wantSame: true, wantIssued: 151 * s, wantTTL: 300 * s},
		{name: "out-of-range fraction means the default", fraction: 1.5, loginTTL: 300, renewable: true, after: 199 * s,
			wantLogins: 1, wantSame: true, wantTTL: 300 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10, RefreshFraction: tt.fraction})
			setLoginRole(h.fv, vaulttest.Role{
				TTL: time.Duration(tt.loginTTL) * s, NoExpiry: tt.loginTTL == 0, NonRenewable: !tt.renewable,
				RenewTTL: time.Duration(tt.renewTTL) * s,
			})
			if tt.renewStatus != 0 {
				h.fv.Fail("auth/token/renew-self", tt.renewStatus)
			}
			cfg := h.pod("uid-1")
			first := h.token(cfg)
			if !first.IssuedAt.Equal(epoch) {
				t.Errorf("IssuedAt of a login = %v, want the cache clock's %v", first.IssuedAt, epoch)
			}
			h.clk.Advance(tt.after)
			second := h.token(cfg)

			if n := loginCount(h.fv); n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
			renews := requests(h.fv, "auth/token/renew-self")
			if len(renews) != tt.wantRenews {
				t.Errorf("%d renew-self calls, want %d", len(renews), tt.wantRenews)
			}
			for _, r := range renews {
				if r.Token != first.Value {
					t.Errorf("renew-self with token %q, want the cached %q", r.Token, first.Value)
				}
				if inc, _ := r.JSON()["increment"].(float64); int(inc) != tt.loginTTL {
					t.Errorf("renew-self asked for increment %v, want the login TTL %d", r.JSON()["increment"], tt.loginTTL)
				}
			}
			if n := count(h.fv, "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revocations, want none", n)
			}
			if same := second.Value == first.Value; same != tt.wantSame {
				t.Errorf("second token %q, first %q: same = %v, want %v", second.Value, first.Value, same, tt.wantSame)
			}
			if want := epoch.Add(tt.wantIssued); !second.IssuedAt.Equal(want) {
				t.Errorf("second token issued at %v, want %v", second.IssuedAt, want)
			}
			if second.TTL != tt.wantTTL {
				t.Errorf("second token TTL %v, want %v", second.TTL, tt.wantTTL)
			}

			// Whatever happened, the result is cached: asking again at once
			// makes no Vault call.
			calls := total(h.fv)
			if third := h.token(cfg); third.Value != second.Value {
				t.Errorf("third token %q, want the cached %q", third.Value, second.Value)
			}
			if n := total(h.fv); n != calls {
				t.Errorf("asking again right away made %d Vault calls", n-calls)
			}
		})
	}
}

// Every renewal asks for the TTL granted at login, not for what the last
// renewal granted, and the threshold counts from the last renewal.
func TestTokenCacheRenewalYardstick(t *testing.T) {
	h := newHarness(t, Options{TokenCacheSize: 10})
	setLoginRole(h.fv, vaulttest.Role{TTL: loginTTL, RenewTTL: 240 * s})
	cfg := h.pod("uid-1")
	first := h.token(cfg)
	h.clk.Advance(201 * time.Second)
	h.token(cfg) // renewed: TTL 240 from now
	h.clk.Advance(159 * time.Second)
	if tok := h.token(cfg); tok.Value != first.Value || count(h.fv, "auth/token/renew-self") != 1 {
		t.Fatalf("before 2/3 of the renewed TTL: token %q, %d renewals; want a hit", tok.Value, count(h.fv, "auth/token/renew-self"))
	}
	h.clk.Advance(2 * time.Second) // 161s > 2/3 of 240s
	tok := h.token(cfg)
	renews := requests(h.fv, "auth/token/renew-self")
	if len(renews) != 2 || tok.Value != first.Value || loginCount(h.fv) != 1 {
		t.Fatalf("past 2/3 of the renewed TTL: token %q, %d renewals, %d logins; want a second renewal", tok.Value, len(renews), loginCount(h.fv))
	}
	if inc, _ := renews[1].JSON()["increment"].(float64); inc != 300 {
		t.Errorf("second renewal asked for %v s, want the login TTL 300", renews[1].JSON()["increment"])
	}
}

func TestTokenCacheIdentities(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *config.Config, otherVault string)
		share  bool
	}{
		{name: "pod UID", mutate: func(c *config.Config, _ string) { c.Pod.UID = "uid-2" }},
		{name: "pod name", mutate: func(c *config.Config, _ string) { c.Pod.Name = "other-pod" }},
		{name: "pod namespace", mutate: func(c *config.Config, _ string) { c.Pod.Namespace = "other-ns" }},
		{name: "service account", mutate: func(c *config.Config, _ string) { c.Pod.ServiceAccountName = "other-sa" }},
		{name: "role", mutate: func(c *config.Config, _ string) { c.RoleName = "other-role" }},
		{name: "audience", mutate: func(c *config.Config, _ string) { c.Audience = "vault-prod" }},
		{name: "auth mount", mutate: func(c *config.Config, _ string) { c.AuthMountPath = "jwt-other" }},
		{name: "Vault namespace", mutate: func(c *config.Config, _ string) { c.VaultNamespace = "team-a" }},
		{name: "Vault address", mutate: func(c *config.Config, other string) { c.VaultAddress = other }},
		{name: "TLS settings", mutate: func(c *config.Config, _ string) { c.TLS.ServerName = "vault.internal" }},
		{name: "same identity with a rotated service account token", mutate: func(c *config.Config, _ string) { c.Token = "rotated-jwt" }, share: true},
		{name: "same Vault address with a trailing slash", mutate: func(c *config.Config, _ string) { c.VaultAddress += "/" }, share: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			other := newVault(t, h.clk)
			a := h.pod("uid-1")
			b := h.pod("uid-1")
			tt.mutate(b, other.URL())

			// Two fake Vaults name their tokens alike: tokens are told
			// apart as the answers of distinct logins (a hit hands back
			// the cached *vault.Token itself).
			tokA := h.token(a)
			tokB := h.token(b)
			logins := loginCount(h.fv) + loginCount(other)
			if tt.share {
				if tokB != tokA || logins != 1 {
					t.Fatalf("equal identities: tokens %q and %q after %d logins; want one shared token", tokA.Value, tokB.Value, logins)
				}
				return
			}
			if tokB == tokA {
				t.Fatalf("identities differing in %s share token %q", tt.name, tokA.Value)
			}
			if logins != 2 {
				t.Errorf("%d logins for two identities, want 2", logins)
			}
			// Each login went where the identity says.
			wantMount := "auth/" + b.AuthMountPath + "/login"
			bVault := h.fv
			if b.VaultAddress == other.URL() {
				bVault = other
			}
			if reqs := requests(bVault, wantMount); len(reqs) == 0 || reqs[len(reqs)-1].JSON()["role"] != b.RoleName {
				t.Errorf("no login as role %q at %s on %s", b.RoleName, wantMount, bVault.URL())
			}
			// And each identity keeps its own token.
			if got := h.token(a); got != tokA {
				t.Errorf("first identity now gets %q, want %q", got.Value, tokA.Value)
			}
			if got := h.token(b); got != tokB {
				t.Errorf("second identity now gets %q, want %q", got.Value, tokB.Value)
			}
			if n := loginCount(h.fv) + loginCount(other); n != 2 {
				t.Errorf("%d logins after asking both again, want 2", n)
			}
		})
	}
}

// Pods holding one token each share the cache as a plain LRU: the least
// recently used is evicted, and forgotten, never revoked.
func TestTokenCacheLRU(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		seq     []string // pod UIDs asking for a token, in order
		evicted []string // whose tokens end up evicted
	}{
		{name: "third identity evicts the first", size: 2, seq: []string{"a", "b", "c"}, evicted: []string{"a"}},
		{name: "a hit makes an identity recently used", size: 2, seq: []string{"a", "b", "a", "c"}, evicted: []string{"b"}},
		{name: "evictions follow use order", size: 2, seq: []string{"a", "b", "a", "c", "a", "d"}, evicted: []string{"b", "c"}},
		{name: "size 1", size: 1, seq: []string{"a", "b"}, evicted: []string{"a"}},
		{name: "size 0 holds one", size: 0, seq: []string{"a", "b"}, evicted: []string{"a"}},
		{name: "within size nothing is evicted", size: 3, seq: []string{"a", "b", "c", "a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: tt.size})
			evictions := evictionCount("tokens", evictCapacity)
			tokens := map[string]*vault.Token{} // by pod UID
			for _, uid := range tt.seq {
				tok := h.token(h.pod(uid))
				if prev, ok := tokens[uid]; ok && prev.Value != tok.Value {
					t.Fatalf("pod %s got a new token %q while cached (had %q)", uid, tok.Value, prev.Value)
				}
				tokens[uid] = tok
			}
			if n := loginCount(h.fv); n != len(tokens) {
				t.Errorf("%d logins for %d identities", n, len(tokens))
			}
			if n := evictionCount("tokens", evictCapacity) - evictions; n != float64(len(tt.evicted)) {
				t.Errorf("%v capacity evictions counted, want %d", n, len(tt.evicted))
			}
			// Evicted or not, every token stays valid in Vault.
			if n := count(h.fv, "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
			for uid, tok := range tokens {
				if !live(h.fv, tok) {
					t.Errorf("pod %s's token is not live in Vault", uid)
				}
			}
			evicted := map[string]bool{}
			for _, uid := range tt.evicted {
				evicted[uid] = true
			}
			// Survivors are still cached (hits do not evict anything).
			logins := loginCount(h.fv)
			for uid, tok := range tokens {
				if evicted[uid] {
					continue
				}
				if got := h.token(h.pod(uid)); got.Value != tok.Value {
					t.Errorf("pod %s: token %q, want the cached %q", uid, got.Value, tok.Value)
				}
			}
			if n := loginCount(h.fv); n != logins {
				t.Errorf("asking for the cached identities' tokens made %d logins", n-logins)
			}
			// An evicted identity logs in again, evicting another in turn.
			if len(tt.evicted) > 0 {
				uid := tt.evicted[0]
				if got := h.token(h.pod(uid)); got.Value == tokens[uid].Value {
					t.Errorf("evicted pod %s got its old token back", uid)
				}
				if n := loginCount(h.fv); n != logins+1 {
					t.Errorf("evicted pod %s: %d logins, want 1", uid, n-logins)
				}
				if n := count(h.fv, "auth/token/revoke-self"); n != 0 {
					t.Errorf("%d revoke-self calls, want none", n)
				}
			}
		})
	}
}

func TestTokenCacheInvalidate(t *testing.T) {
	tests := []struct {
		name string
		// invalidate is called with the cached tokens of pods a and b.
		invalidate func(h *harness, a, b *vault.Token)
		relogA     bool // whether a logs in again afterwards
	}{
		{name: "the cached token is dropped", relogA: true,
			invalidate: func(h *harness, a, _ *vault.Token) { h.c.tokens.invalidate(idOf(h.pod("a")), a) }},
		{name: "another token of the identity leaves the cached one",
			invalidate: func(h *harness, a, _ *vault.Token) {
				h.c.tokens.invalidate(idOf(h.pod("a")), &vault.Token{Value: "hvs.stale", Accessor: a.Accessor})
			}},
		{name: "another identity's token leaves it",
			invalidate: func(h *harness, a, b *vault.Token) { h.c.tokens.invalidate(idOf(h.pod("a")), b) }},
		{name: "the token under another identity leaves it",
			invalidate: func(h *harness, a, _ *vault.Token) { h.c.tokens.invalidate(idOf(h.pod("b")), a) }},
		{name: "an identity never cached",
			invalidate: func(h *harness, a, _ *vault.Token) { h.c.tokens.invalidate(idOf(h.pod("z")), a) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			a, b := h.token(h.pod("a")), h.token(h.pod("b"))
			tt.invalidate(h, a, b)
			gotA, gotB := h.token(h.pod("a")), h.token(h.pod("b"))
			if gotB.Value != b.Value {
				t.Errorf("pod b: token %q, want its cached %q", gotB.Value, b.Value)
			}
			if relog := gotA.Value != a.Value; relog != tt.relogA {
				t.Errorf("pod a logged in again = %v, want %v", relog, tt.relogA)
			}
			want := 2
			if tt.relogA {
				want = 3
			}
			if n := loginCount(h.fv); n != want {
				t.Errorf("%d logins, want %d", n, want)
			}
		})
	}
	t.Run("on an empty cache", func(t *testing.T) {
		h := newHarness(t, Options{TokenCacheSize: 10})
		h.c.tokens.invalidate(idOf(h.pod("a")), &vault.Token{Value: "hvs.x"})
		if h.c.tokens.lookup(idOf(h.pod("a")).Key()) != nil {
			t.Error("entry appeared")
		}
	})
}

func TestTokenCacheRelogin(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the token Vault refused.
		setup      func(h *harness, cfg *config.Config) *vault.Token
		wantLogins int // during relogin
		wantCached bool
	}{
		{name: "refused cached token: new login", wantLogins: 1,
			setup: func(h *harness, cfg *config.Config) *vault.Token { return h.token(cfg) }},
		{name: "refused token already replaced by a concurrent Mount: no login", wantLogins: 0, wantCached: true,
			setup: func(h *harness, cfg *config.Config) *vault.Token {
				old := h.token(cfg)
				if _, err := h.c.tokens.relogin(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg, old); err != nil {
					h.t.Fatal(err)
				}
				return old
			}},
		{name: "replacement is past its threshold: new login", wantLogins: 1,
			setup: func(h *harness, cfg *config.Config) *vault.Token {
				old := h.token(cfg)
				if _, err := h.c.tokens.relogin(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg, old); err != nil {
					h.t.Fatal(err)
				}
				h.clk.Advance(250 * time.Second)
				return old
			}},
		{name: "refused token never cached: new login", wantLogins: 1,
			setup: func(h *harness, cfg *config.Config) *vault.Token { return &vault.Token{Value: "hvs.elsewhere"} }},
		{name: "refused token without expiry: new login", wantLogins: 1,
			setup: func(h *harness, cfg *config.Config) *vault.Token {
				setLoginRole(h.fv, vaulttest.Role{NoExpiry: true})
				return h.token(cfg)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			cfg := h.pod("a")
			refused := tt.setup(h, cfg)
			before := loginCount(h.fv)
			cached := h.c.tokens.lookup(idOf(cfg).Key())
			tok, err := h.c.tokens.relogin(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg, refused)
			if err != nil {
				t.Fatal(err)
			}
			if n := loginCount(h.fv) - before; n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
			if tok.Value == refused.Value {
				t.Errorf("relogin returned the refused token")
			}
			if tt.wantCached && (cached == nil || tok.Value != cached.tok.Value) {
				t.Errorf("relogin returned %q, want the cached replacement", tok.Value)
			}
			if n := count(h.fv, "auth/token/renew-self"); n != 0 {
				t.Errorf("relogin renewed a token %d times", n)
			}
			// The new token is the cached one.
			calls := total(h.fv)
			if got := h.token(cfg); got.Value != tok.Value || total(h.fv) != calls {
				t.Errorf("Token after relogin: %q with %d Vault calls, want the cached %q", got.Value, total(h.fv)-calls, tok.Value)
			}
		})
	}
}

// Concurrent callers for one identity share one login, whether they ask
// for a token or report a refused one.
func TestTokenCacheConcurrentLogins(t *testing.T) {
	tests := []struct {
		name    string
		callers int
		frame   string // where callers wait in singleflight
		// call is what every caller does; cached is the token cached
		// before the callers start (nil for none).
		call   func(h *harness, cfg *config.Config, cached *vault.Token) (*vault.Token, error)
		cached bool
	}{
		{name: "20 Token calls for a new identity", callers: 20, frame: "(*tokenCache).token(",
			call: func(h *harness, cfg *config.Config, _ *vault.Token) (*vault.Token, error) {
				return h.c.tokens.token(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg)
			}},
		{name: "10 relogin calls for one refused token", callers: 10, frame: "(*tokenCache).relogin(", cached: true,
			call: func(h *harness, cfg *config.Config, refused *vault.Token) (*vault.Token, error) {
				return h.c.tokens.relogin(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg, refused)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			cfg := h.pod("a")
			var cached *vault.Token
			if tt.cached {
				cached = h.token(cfg)
			}
			before := loginCount(h.fv)
			release := h.fv.Hold("auth/jwt/login")

			results := make([]*vault.Token, tt.callers)
			errs := make([]error, tt.callers)
			var wg sync.WaitGroup
			for i := range tt.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = tt.call(h, cfg, cached)
				}()
			}
			// The first login is held until every other caller waits for
			// it (or a second login shows they do not).
			vaulttest.Eventually(t, "callers to wait for one login", func() bool {
				return singleflightWaiters(tt.frame) >= tt.callers-1 || loginCount(h.fv)-before > 1
			})
			release()
			wg.Wait()

			if n := loginCount(h.fv) - before; n != 1 {
				t.Errorf("%d logins for %d concurrent callers, want 1", n, tt.callers)
			}
			for i := range tt.callers {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if results[i].Value != results[0].Value {
					t.Errorf("caller %d got %q, caller 0 %q", i, results[i].Value, results[0].Value)
				}
				if cached != nil && results[i].Value == cached.Value {
					t.Errorf("caller %d got the refused token back", i)
				}
			}
		})
	}
}
