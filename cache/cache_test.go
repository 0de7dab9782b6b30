package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// attackerVault is a pod author's own fake Vault: roles r0…r<roles-1> at
// jwt let anyone in, database/creds/* hands out long leases, and made-up
// tokens are accepted.
func attackerVault(t *testing.T, h *harness, roles int) *vaulttest.Server {
	t.Helper()
	fv := vaulttest.New(t, vaulttest.WithClock(h.clk), vaulttest.AnyToken())
	m := fv.EnableAuth("jwt")
	for i := range roles {
		m.Role(fmt.Sprintf("r%d", i), vaulttest.Role{TTL: time.Hour})
	}
	fv.SetDatabaseRole("x", vaulttest.DatabaseRole{TTL: 30 * 24 * time.Hour, MaxTTL: 30 * 24 * time.Hour})
	return fv
}

// attackerPod is the Mount configuration of attacker pod n logging in as
// role r<role> at av.
func attackerPod(av *vaulttest.Server, n, role int) *config.Config {
	uid := fmt.Sprintf("uid-evil-%d", n)
	return &config.Config{
		VaultAddress:  av.URL(),
		AuthMountPath: "jwt",
		RoleName:      fmt.Sprintf("r%d", role),
		Token:         "jwt-of-" + uid,
		Pod:           config.Pod{Name: fmt.Sprintf("evil-%d", n), Namespace: "evil", UID: uid, ServiceAccountName: "evil"},
	}
}

// Row 1 of the multi-tenancy audit: a pod author mounts volumes with 1,000
// distinct identities against their own Vault. The victim pod's token, on
// its own Vault, must stay cached and live (no revocation anywhere), and
// its credential must not be re-issued.
func TestTenancyTokenFlood(t *testing.T) {
	tests := []struct {
		name               string
		pods, rolesEachPod int
		wantReason         string // how the attacker's tokens are evicted
	}{
		{name: "one pod, 1,000 identities: over its own quota", pods: 1, rolesEachPod: 1000, wantReason: evictPodQuota},
		{name: "125 pods at their quota, 1,000 identities: the cache is full", pods: 125, rolesEachPod: DefaultMaxTokensPerPod, wantReason: evictCapacity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The provider's defaults: 1,000 tokens, 8 a pod.
			h := newHarness(t, Options{TokenCacheSize: 1000})
			victim := h.pod("victim")
			vTok := h.token(victim)
			vLease, _ := h.fetch(vTok, idOf(victim), dbReq("x"))
			av := attackerVault(t, h, tt.rolesEachPod)
			before := evictionCount("tokens", tt.wantReason)

			for p := range tt.pods {
				for r := range tt.rolesEachPod {
					h.token(attackerPod(av, p, r))
				}
			}
			h.clk.Advance(time.Minute)

			if n := loginCount(av); n != tt.pods*tt.rolesEachPod {
				t.Fatalf("attacker logged in %d times, want %d", n, tt.pods*tt.rolesEachPod)
			}
			if n := evictionCount("tokens", tt.wantReason) - before; n < 1 {
				t.Errorf("no %s evictions counted", tt.wantReason)
			}
			if n := h.c.tokens.lru.len(); n > 1000 {
				t.Errorf("%d tokens cached, over the cache size", n)
			}
			for p := range tt.pods {
				if n := h.c.tokens.lru.podLen(idOf(attackerPod(av, p, 0)).pod); n > DefaultMaxTokensPerPod {
					t.Fatalf("attacker pod %d holds %d tokens, over its quota", p, n)
				}
			}
			if info, ok := h.fv.Token(vTok.Value); !ok || !info.Live {
				t.Errorf("victim's token in its Vault: %+v, want it live", info)
			}
			if n := count(h.fv, "auth/token/revoke-self") + count(av, "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
			calls := total(h.fv)
			if got := h.token(victim); got != vTok {
				t.Errorf("victim's token is %q, want its cached %q", got.Value, vTok.Value)
			}
			if resp, o := h.fetch(vTok, idOf(victim), dbReq("x")); o != Hit || answer(resp) != answer(vLease) {
				t.Errorf("victim's lease: %s %s, want a hit on %s", o, answer(resp), answer(vLease))
			}
			if n := total(h.fv) - calls; n != 0 {
				t.Errorf("the victim's next Mount made %d calls to its Vault, want none", n)
			}
			if n := count(h.fv, "database/creds/x"); n != 1 {
				t.Errorf("victim's credential issued %d times, want once", n)
			}
		})
	}
}

// Row 7 of the multi-tenancy audit: one Mount of 10,000 objects answering
// with long leases. Every other pod's cached leases stay cached.
func TestTenancyLeaseFlood(t *testing.T) {
	tests := []struct {
		name         string
		cacheSize    int
		pods, leases int // attacker's pods, leases each
		wantReason   string
	}{
		{name: "one pod, 10,000 leases: over its own quota", cacheSize: DefaultMaxEntries, pods: 1, leases: 10000, wantReason: evictPodQuota},
		{name: "pods at their quota fill the cache", cacheSize: 300, pods: 4, leases: DefaultMaxLeasesPerPod, wantReason: evictCapacity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{LeaseCacheSize: tt.cacheSize})
			victim := token("victim", 0, epoch)
			v1, _ := h.fetch(victim, podID("victim"), dbReq("x"))
			v2, _ := h.fetch(victim, podID("victim"), pkiReq("victim.example.com"))
			av := attackerVault(t, h, 0)
			avc := h.client(av.URL())
			before := evictionCount("leases", tt.wantReason)

			// The attacker's fetches, 8 at a time as a Mount makes them.
			evil := token("evil", 0, epoch)
			work := make(chan int)
			errs := make(chan error, 8)
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range work {
						id := podID(fmt.Sprintf("evil-%d", n/tt.leases))
						req := dbReq("x", "object", strconv.Itoa(n))
						if _, _, err := h.c.Fetch(context.Background(), avc, evil, id, req); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			for n := range tt.pods * tt.leases {
				work <- n
			}
			close(work)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("attacker's Fetch: %v", err)
			}
			h.clk.Advance(time.Minute)

			if n := count(av, "database/creds/x"); n != tt.pods*tt.leases {
				t.Fatalf("attacker got %d leases, want %d", n, tt.pods*tt.leases)
			}
			if n := evictionCount("leases", tt.wantReason) - before; n < 1 {
				t.Errorf("no %s evictions counted", tt.wantReason)
			}
			if n := h.c.Leases(); n > tt.cacheSize {
				t.Errorf("%d leases cached, over the cache size %d", n, tt.cacheSize)
			}
			for p := range tt.pods {
				if n := h.c.leases.lru.podLen(podID(fmt.Sprintf("evil-%d", p)).pod); n > DefaultMaxLeasesPerPod {
					t.Errorf("attacker pod %d holds %d leases, over its quota", p, n)
				}
			}
			calls := total(h.fv)
			if resp, o := h.fetch(victim, podID("victim"), dbReq("x")); o != Hit || answer(resp) != answer(v1) {
				t.Errorf("victim's lease: %s %s, want a hit on %s", o, answer(resp), answer(v1))
			}
			if resp, o := h.fetch(victim, podID("victim"), pkiReq("victim.example.com")); o != Hit || answer(resp) != answer(v2) {
				t.Errorf("victim's certificate: %s %s, want a hit on %s", o, answer(resp), answer(v2))
			}
			if n := total(h.fv) - calls; n != 0 {
				t.Errorf("the victim's next Mount made %d Vault calls, want none", n)
			}
		})
	}
}

// A pod keeps up to its quota of tokens; one more evicts its own least
// recently used, forgotten with its leases but not revoked, and no other
// pod's.
func TestTokenPodQuota(t *testing.T) {
	const quota = 3
	tests := []struct {
		name       string
		identities int  // of pod p, logged in in order r0, r1, ...
		touchFirst bool // r0 is used again before the last login
		evicted    []int
	}{
		{name: "at the quota", identities: quota},
		{name: "one over: the least recently used goes", identities: quota + 1, evicted: []int{0}},
		{name: "one over, first one used since: the next goes", identities: quota + 1, touchFirst: true, evicted: []int{1}},
		{name: "far over: only the last quota stay", identities: 3 * quota, evicted: []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 100, MaxTokensPerPod: quota})
			other := h.pod("other")
			otherTok := h.token(other)
			roles := h.fv.EnableAuth("jwt")
			cfgs := make([]*config.Config, tt.identities)
			toks := make([]*vault.Token, tt.identities)
			leases := make([]*vault.Response, tt.identities)
			before := evictionCount("tokens", evictPodQuota)
			for i := range cfgs {
				roles.Role(fmt.Sprintf("r%d", i), vaulttest.Role{TTL: loginTTL})
				cfgs[i] = h.pod("p")
				cfgs[i].RoleName = fmt.Sprintf("r%d", i)
				if tt.touchFirst && i == tt.identities-1 {
					h.token(cfgs[0])
				}
				toks[i] = h.token(cfgs[i])
				leases[i], _ = h.fetch(toks[i], idOf(cfgs[i]), dbReq("x"))
			}
			if n := evictionCount("tokens", evictPodQuota) - before; n != float64(len(tt.evicted)) {
				t.Errorf("%v pod_quota evictions counted, want %d", n, len(tt.evicted))
			}
			if n := h.c.tokens.lru.podLen(idOf(cfgs[0]).pod); n != min(tt.identities, quota) {
				t.Errorf("pod holds %d tokens, want %d", n, min(tt.identities, quota))
			}
			if n := count(h.fv, "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
			evicted := map[int]bool{}
			for _, i := range tt.evicted {
				evicted[i] = true
			}
			// The kept first: re-logins of the evicted evict again.
			order := make([]int, 0, tt.identities)
			for i := range tt.identities {
				if !evicted[i] {
					order = append(order, i)
				}
			}
			order = append(order, tt.evicted...)
			for _, i := range order {
				if !live(h.fv, toks[i]) {
					t.Errorf("r%d's token is not live in Vault", i)
				}
				tok := h.token(cfgs[i])
				if kept := tok == toks[i]; kept == evicted[i] {
					t.Errorf("r%d's token kept = %v, want %v", i, kept, !evicted[i])
				}
				resp, o := h.fetch(tok, idOf(cfgs[i]), dbReq("x"))
				if hit := o == Hit && answer(resp) == answer(leases[i]); hit == evicted[i] {
					t.Errorf("r%d's lease: %s, want a hit = %v", i, o, !evicted[i])
				}
			}
			if got := h.token(other); got != otherTok {
				t.Errorf("the other pod lost its token")
			}
		})
	}
}

// A pod keeps up to its quota of leased answers; one more evicts its own
// least recently used, and no other pod's.
func TestLeasePodQuota(t *testing.T) {
	const quota = 3
	tests := []struct {
		name    string
		fetches []string // of pod p, in order
		kept    []string
		evicted []string
	}{
		{name: "at the quota", fetches: []string{"a", "b", "c"}, kept: []string{"a", "b", "c"}},
		{name: "one over: the least recently used goes", fetches: []string{"a", "b", "c", "d"}, kept: []string{"b", "c", "d"}, evicted: []string{"a"}},
		{name: "a hit keeps it", fetches: []string{"a", "b", "c", "a", "d"}, kept: []string{"a", "c", "d"}, evicted: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{LeaseCacheSize: 100, MaxLeasesPerPod: quota})
			tok := token("a", 0, epoch)
			otherLease, _ := h.fetch(tok, podID("other"), dbReq("x"))
			before := evictionCount("leases", evictPodQuota)
			for _, name := range tt.fetches {
				h.fetch(tok, podID("p"), dbReq(name))
			}
			if n := evictionCount("leases", evictPodQuota) - before; n != float64(len(tt.evicted)) {
				t.Errorf("%v pod_quota evictions counted, want %d", n, len(tt.evicted))
			}
			if n := h.c.Leases(); n != len(tt.kept)+1 {
				t.Errorf("%d answers cached, want %d", n, len(tt.kept)+1)
			}
			checkIndex(t, h.c.leases)
			for _, name := range tt.kept {
				if _, o := h.fetch(tok, podID("p"), dbReq(name)); o != Hit {
					t.Errorf("%s: %s, want a hit (kept)", name, o)
				}
			}
			for _, name := range tt.evicted {
				if _, o := h.fetch(tok, podID("p"), dbReq(name)); o == Hit {
					t.Errorf("%s: still cached, want it evicted", name)
				}
			}
			if resp, o := h.fetch(tok, podID("other"), dbReq("x")); o != Hit || answer(resp) != answer(otherLease) {
				t.Errorf("the other pod's lease: %s, want a hit", o)
			}
		})
	}
}

// A full cache evicts from the pod holding the most entries, never from a
// pod holding fewer, however long unused their entries are.
func TestTokenBiggestHolderEvicted(t *testing.T) {
	h := newHarness(t, Options{TokenCacheSize: 6, MaxTokensPerPod: 4})
	roles := h.fv.EnableAuth("jwt")
	for i := range 4 {
		roles.Role(fmt.Sprintf("r%d", i), vaulttest.Role{TTL: loginTTL})
	}
	as := func(uid string, role int) *config.Config {
		c := h.pod(uid)
		c.RoleName = fmt.Sprintf("r%d", role)
		return c
	}
	// The small pods' tokens are the oldest.
	small1, small2a, small2b := h.token(as("s1", 0)), h.token(as("s2", 0)), h.token(as("s2", 1))
	var big []*vault.Token
	before := evictionCount("tokens", evictCapacity)
	for i := range 4 {
		big = append(big, h.token(as("big", i)))
	}
	// 7 tokens for 6 places: big (4) loses its least recently used, r0.
	if n := evictionCount("tokens", evictCapacity) - before; n != 1 {
		t.Errorf("%v capacity evictions, want 1", n)
	}
	logins := loginCount(h.fv)
	for _, c := range []struct {
		cfg  *config.Config
		want *vault.Token
	}{{as("s1", 0), small1}, {as("s2", 0), small2a}, {as("s2", 1), small2b}, {as("big", 1), big[1]}, {as("big", 2), big[2]}, {as("big", 3), big[3]}} {
		if got := h.token(c.cfg); got != c.want {
			t.Errorf("pod %s as %s lost its token", c.cfg.Pod.UID, c.cfg.RoleName)
		}
	}
	if n := loginCount(h.fv) - logins; n != 0 {
		t.Errorf("%d logins for the kept tokens", n)
	}
	if got := h.token(as("big", 0)); got == big[0] {
		t.Errorf("big pod's least recently used token still cached")
	}
	if n := count(h.fv, "auth/token/revoke-self"); n != 0 {
		t.Errorf("%d revoke-self calls, want none", n)
	}
}

// Hits at the scale of a busy node: 10,000 tokens and 10,000 leases of
// 1,000 pods (10 identities each), every one cached.
func BenchmarkCacheHits(b *testing.B) {
	const pods, perPod = 1000, 10
	// A harness for its pod configurations only: its helpers need a *testing.T.
	h := &harness{clk: &vaulttest.Clock{}, pool: vault.NewPool(vault.Options{MaxRetries: 0})}
	h.fv = vaulttest.New(b, vaulttest.WithClock(h.clk), vaulttest.AnyToken())
	roles := h.fv.EnableAuth("jwt")
	for r := range perPod {
		roles.Role(fmt.Sprintf("r%d", r), vaulttest.Role{TTL: time.Hour})
	}
	vc, err := h.pool.Client(vault.Target{Address: h.fv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	h.vc = vc
	h.c = New(&auth.Authenticator{}, Options{
		TokenCacheSize: pods * perPod, LeaseCacheSize: pods * perPod,
		MaxTokensPerPod: perPod, MaxLeasesPerPod: perPod, Now: h.clk.Now,
	})
	ctx := context.Background()
	cfgs := make([]*config.Config, 0, pods*perPod)
	ids := make([]Identity, 0, pods*perPod)
	toks := make([]*vault.Token, 0, pods*perPod)
	for p := range pods {
		for r := range perPod {
			c := h.pod(fmt.Sprintf("uid-%d", p))
			c.RoleName = fmt.Sprintf("r%d", r)
			tok, err := h.c.Token(ctx, vc, idOf(c), c)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := h.c.Fetch(ctx, vc, tok, idOf(c), dbReq("x")); err != nil {
				b.Fatal(err)
			}
			cfgs, ids, toks = append(cfgs, c), append(ids, idOf(c)), append(toks, tok)
		}
	}
	if h.c.tokens.lru.len() != pods*perPod || h.c.Leases() != pods*perPod {
		b.Fatalf("%d tokens and %d leases cached", h.c.tokens.lru.len(), h.c.Leases())
	}
	calls := total(h.fv)
	b.Run("Token", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			n := i % len(cfgs)
			if _, err := h.c.Token(ctx, vc, ids[n], cfgs[n]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Fetch", func(b *testing.B) {
		req := dbReq("x")
		for i := 0; b.Loop(); i++ {
			n := i % len(cfgs)
			if _, o, err := h.c.Fetch(ctx, vc, toks[n], ids[n], req); err != nil || o != Hit {
				b.Fatal(o, err)
			}
		}
	})
	b.Run("Token+Fetch parallel", func(b *testing.B) {
		req := dbReq("x")
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := int(next.Add(1)) % len(cfgs)
				tok, err := h.c.Token(ctx, vc, ids[n], cfgs[n])
				if err != nil {
					b.Fatal(err)
				}
				if _, o, err := h.c.Fetch(ctx, vc, tok, ids[n], req); err != nil || o != Hit {
					b.Fatal(o, err)
				}
			}
		})
	})
	if n := total(h.fv) - calls; n != 0 {
		b.Fatalf("hits made %d Vault calls", n)
	}
}
