package cache

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestFetchLifecycle(t *testing.T) {
	type step struct {
		after time.Duration // clock advance before this Fetch
		want  Outcome
		same  bool // the answer is the previous Fetch's
	}
	tenHits := make([]step, 9)
	for i := range tenHits {
		tenHits[i] = step{after: 4 * time.Minute, want: Hit, same: true} // 36 min < 40 min
	}
	tests := []struct {
		name      string
		req       config.Request
		fraction  float64
		fake      func(*vaulttest.Server)
		first     Outcome
		steps     []step
		wantCalls map[string]int // by path, over the whole row
		increment float64        // expected increment of every lease renewal
	}{
		{
			name: "lease: ten fetches before the threshold, one Vault call", req: dbReq("x"),
			first: Issued, steps: tenHits,
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 0},
		},
		{
			name: "lease: hit just before the threshold", req: dbReq("x"),
			first: Issued, steps: []step{{2399 * s, Hit, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 0},
		},
		{
			name: "lease: renewed past the threshold, same answer, and counted from the renewal", req: dbReq("x"),
			first: Issued, increment: 3600,
			steps:     []step{{2401 * s, Renewed, true}, {2399 * s, Hit, true}, {2 * s, Renewed, true}, {time.Minute, Hit, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 2},
		},
		{
			name: "lease: renewal asks for the lease's own duration", req: dbReq("x"),
			fake:  func(v *vaulttest.Server) { v.SetDatabaseRole("x", vaulttest.DatabaseRole{TTL: 600 * s}) },
			first: Issued, increment: 600,
			steps:     []step{{399 * s, Hit, true}, {2 * s, Renewed, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 1},
		},
		{
			name: "lease: renewal granting less, but enough", req: dbReq("x"),
			fake:  func(v *vaulttest.Server) { v.SetDatabaseRole("x", vaulttest.DatabaseRole{RenewTTL: 1201 * s}) },
			first: Issued, increment: 3600,
			steps:     []step{{2401 * s, Renewed, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 1},
		},
		{
			name: "lease: after a shorter renewal, the next still asks for the original duration", req: dbReq("x"),
			fake:  func(v *vaulttest.Server) { v.SetDatabaseRole("x", vaulttest.DatabaseRole{RenewTTL: 2000 * s}) },
			first: Issued, increment: 3600,
			// Renewed at 2401 s for 2000 s: refreshed 1200 s before that ends.
			steps:     []step{{2401 * s, Renewed, true}, {799 * s, Hit, true}, {2 * s, Renewed, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 2},
		},
		{
			name: "lease: renewal granting too little, re-issued", req: dbReq("x"),
			fake:  func(v *vaulttest.Server) { v.SetDatabaseRole("x", vaulttest.DatabaseRole{RenewTTL: 1199 * s}) },
			first: Issued, increment: 3600,
			steps:     []step{{2401 * s, Issued, false}, {time.Minute, Hit, true}},
			wantCalls: map[string]int{"database/creds/x": 2, "sys/leases/renew": 1},
		},
		{
			name: "lease: renewal refused, re-issued", req: dbReq("x"),
			fake:  func(v *vaulttest.Server) { v.Fail("sys/leases/renew", http.StatusBadRequest) },
			first: Issued, increment: 3600,
			steps:     []step{{2401 * s, Issued, false}, {time.Minute, Hit, true}},
			wantCalls: map[string]int{"database/creds/x": 2, "sys/leases/renew": 1},
		},
		{
			name: "lease: non-renewable, re-issued past the threshold", req: dbReq("x"),
			fake:      func(v *vaulttest.Server) { v.SetDatabaseRole("x", vaulttest.DatabaseRole{NonRenewable: true}) },
			first:     Issued,
			steps:     []step{{2399 * s, Hit, true}, {2 * s, Issued, false}, {time.Minute, Hit, true}},
			wantCalls: map[string]int{"database/creds/x": 2, "sys/leases/renew": 0},
		},
		{
			name: "lease: custom fraction", req: dbReq("x"), fraction: 0.5,
			first: Issued, increment: 3600,
			steps:     []step{{1799 * s, Hit, true}, {2 * s, Renewed, true}},
			wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 1},
		},
		{
			name: "certificate: lifetime from data.expiration, hit before the threshold", req: pkiReq("a.example.com"),
			first: Issued, steps: []step{{1999 * s, Hit, true}},
			wantCalls: map[string]int{"pki/issue/x": 1, "sys/leases/renew": 0},
		},
		{
			name: "certificate: re-issued past the threshold, never renewed", req: pkiReq("a.example.com"),
			first: Issued, steps: []step{{2001 * s, Issued, false}, {time.Minute, Hit, true}},
			wantCalls: map[string]int{"pki/issue/x": 2, "sys/leases/renew": 0},
		},
		{
			name: "certificate: lifetime follows the expiration", req: pkiReq("a.example.com"),
			fake:  func(v *vaulttest.Server) { v.SetPKIRole("x", vaulttest.PKIRole{TTL: 600 * s}) },
			first: Issued, steps: []step{{399 * s, Hit, true}, {2 * s, Issued, false}},
			wantCalls: map[string]int{"pki/issue/x": 2},
		},
		{
			name: "certificate: already expired, not cached", req: pkiReq("a.example.com"),
			fake:  func(v *vaulttest.Server) { v.SetPKIRole("x", vaulttest.PKIRole{TTL: -10 * s}) },
			first: Read, steps: []step{{0, Read, false}},
			wantCalls: map[string]int{"pki/issue/x": 2},
		},
		{
			name: "KV: never cached", req: kvReq("x"),
			first: Read, steps: []step{{0, Read, false}, {time.Second, Read, false}, {time.Hour, Read, false}},
			wantCalls: map[string]int{"secret/data/x": 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{RefreshFraction: tt.fraction})
			if tt.fake != nil {
				tt.fake(h.fv)
			}
			tok := token("a", 0, epoch)
			first, outcome := h.fetch(tok, podID("pod-a"), tt.req)
			if outcome != tt.first {
				t.Fatalf("first Fetch: %s, want %s", outcome, tt.first)
			}
			prev := first
			for i, st := range tt.steps {
				h.clk.Advance(st.after)
				before := total(h.fv)
				resp, outcome := h.fetch(tok, podID("pod-a"), tt.req)
				if outcome != st.want {
					t.Errorf("Fetch %d (at +%v): %s, want %s", i+2, h.clk.Now().Sub(epoch), outcome, st.want)
				}
				if same := answer(resp) == answer(prev); same != st.same {
					t.Errorf("Fetch %d: answer %s, previous %s: same = %v, want %v", i+2, answer(resp), answer(prev), same, st.same)
				}
				if st.want == Hit && total(h.fv) != before {
					t.Errorf("Fetch %d: a hit made %d Vault calls", i+2, total(h.fv)-before)
				}
				prev = resp
			}
			for path, want := range tt.wantCalls {
				if n := count(h.fv, path); n != want {
					t.Errorf("%d requests to %s, want %d", n, path, want)
				}
			}
			for _, r := range requests(h.fv, "sys/leases/renew") {
				if r.Token != tok.Value {
					t.Errorf("lease renewed with token %q, want %q", r.Token, tok.Value)
				}
				body := r.JSON()
				if body["lease_id"] != first.Secret.LeaseID || first.Secret.LeaseID == "" {
					t.Errorf("renewed lease %v, want the cached %q", body["lease_id"], first.Secret.LeaseID)
				}
				if body["increment"] != tt.increment {
					t.Errorf("renewal asked for %v s, want the lease's original %v", body["increment"], tt.increment)
				}
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		name      string
		cacheWith bool          // fetch once with a good token first
		after     time.Duration // before the failing Fetch
		wantErr   bool
		want      Outcome
		wantLen   int
		wantCalls map[string]int
	}{
		{name: "refused: error, nothing cached", wantErr: true, wantLen: 0,
			wantCalls: map[string]int{"database/creds/x": 1}},
		{name: "token revoked, cached answer still fresh: served (the cache cannot know)", cacheWith: true, after: time.Minute,
			want: Hit, wantLen: 1, wantCalls: map[string]int{"database/creds/x": 1, "sys/leases/renew": 0}},
		{name: "token revoked, past the threshold: renewal and re-issue refused, the error surfaces", cacheWith: true, after: 2401 * s,
			wantErr: true, wantLen: 1, wantCalls: map[string]int{"database/creds/x": 2, "sys/leases/renew": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tok := token("a", 0, epoch)
			var first *vault.Response
			if tt.cacheWith {
				first, _ = h.fetch(tok, podID("pod-a"), dbReq("x"))
			}
			h.fv.Revoke(tok.Value)
			h.clk.Advance(tt.after)
			resp, outcome, err := h.c.Fetch(context.Background(), h.vc, tok, podID("pod-a"), dbReq("x"))
			if tt.wantErr {
				var se *vault.StatusError
				if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
					t.Fatalf("Fetch = %v, %v, want a 403 StatusError", outcome, err)
				}
				if resp != nil {
					t.Errorf("an answer came with the error")
				}
			} else {
				if err != nil || outcome != tt.want || answer(resp) != answer(first) {
					t.Fatalf("Fetch = %s %v, want %s of the cached answer", outcome, err, tt.want)
				}
			}
			if n := h.c.Leases(); n != tt.wantLen {
				t.Errorf("%d cached answers, want %d", n, tt.wantLen)
			}
			for path, want := range tt.wantCalls {
				if n := count(h.fv, path); n != want {
					t.Errorf("%d requests to %s, want %d", n, path, want)
				}
			}
		})
	}
}

func TestFetchNeverShared(t *testing.T) {
	tests := []struct {
		name       string
		id1, id2   Identity
		req1, req2 config.Request
		share      bool
	}{
		{name: "different identities, same lease request", id1: podID("pod-a"), id2: podID("pod-b"), req1: dbReq("x"), req2: dbReq("x")},
		{name: "different identities, same certificate request", id1: podID("pod-a"), id2: podID("pod-b"), req1: pkiReq("a.example.com"), req2: pkiReq("a.example.com")},
		{name: "different paths", id1: podID("pod-a"), id2: podID("pod-a"), req1: dbReq("x"), req2: dbReq("y")},
		{name: "different query", id1: podID("pod-a"), id2: podID("pod-a"), req1: dbReq("x"), req2: dbReq("x", "ttl", "3600")},
		{name: "different method", id1: podID("pod-a"), id2: podID("pod-a"), req1: pkiReq("a.example.com"),
			req2: config.Request{Method: http.MethodPost, Path: "pki/issue/x", Body: []byte(`{"common_name":"a.example.com"}`)}},
		{name: "different body", id1: podID("pod-a"), id2: podID("pod-a"), req1: pkiReq("a.example.com"), req2: pkiReq("b.example.com")},
		{name: "same identity and request", id1: podID("pod-a"), id2: podID("pod-a"), req1: dbReq("x"), req2: dbReq("x"), share: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tok := token("a", 0, epoch)
			a, _ := h.fetch(tok, tt.id1, tt.req1)
			b, outcome := h.fetch(tok, tt.id2, tt.req2)
			if tt.share {
				if outcome != Hit || answer(b) != answer(a) || total(h.fv) != 1 {
					t.Fatalf("equal keys: %s, answers %s and %s, %d Vault calls; want a shared hit", outcome, answer(a), answer(b), total(h.fv))
				}
				return
			}
			if outcome != Issued || answer(a) == answer(b) {
				t.Fatalf("second Fetch: %s with answer %s (first %s), want its own credential", outcome, answer(b), answer(a))
			}
			// Each key keeps its own answer.
			if a2, o := h.fetch(tok, tt.id1, tt.req1); o != Hit || answer(a2) != answer(a) {
				t.Errorf("first key now: %s %s, want a hit on %s", o, answer(a2), answer(a))
			}
			if b2, o := h.fetch(tok, tt.id2, tt.req2); o != Hit || answer(b2) != answer(b) {
				t.Errorf("second key now: %s %s, want a hit on %s", o, answer(b2), answer(b))
			}
			if n := total(h.fv); n != 2 {
				t.Errorf("%d Vault calls, want 2", n)
			}
			if h.c.Leases() != 2 {
				t.Errorf("%d cached answers, want 2", h.c.Leases())
			}
		})
	}
}

// Concurrent identical Fetches share one Vault call, for answers that are
// cached and for those that are not.
func TestFetchConcurrentCollapsed(t *testing.T) {
	tests := []struct {
		name    string
		req     config.Request
		want    Outcome
		cached  bool
		callers int
	}{
		{name: "KV read", req: kvReq("x"), want: Read, callers: 20},
		{name: "new lease", req: dbReq("x"), want: Issued, cached: true, callers: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tok := token("a", 0, epoch)
			release := h.fv.Hold(tt.req.Path)
			resps := make([]*vault.Response, tt.callers)
			outcomes := make([]Outcome, tt.callers)
			errs := make([]error, tt.callers)
			var wg sync.WaitGroup
			for i := range tt.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resps[i], outcomes[i], errs[i] = h.c.Fetch(context.Background(), h.vc, tok, podID("pod-a"), tt.req)
				}()
			}
			// Vault's first answer is held until every other caller waits
			// for it (or a second request shows they do not).
			vaulttest.Eventually(t, "callers to wait for one Vault call", func() bool {
				return singleflightWaiters("(*leaseCache).fetch(") >= tt.callers-1 || total(h.fv) > 1
			})
			release()
			wg.Wait()
			if n := count(h.fv, tt.req.Path); n != 1 {
				t.Errorf("%d Vault calls for %d concurrent Fetches, want 1", n, tt.callers)
			}
			for i := range tt.callers {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if outcomes[i] != tt.want || answer(resps[i]) != answer(resps[0]) {
					t.Errorf("caller %d: %s %s, want %s %s", i, outcomes[i], answer(resps[i]), tt.want, answer(resps[0]))
				}
			}
			// Afterwards, KV is read again; a lease is served from the cache.
			resp, outcome := h.fetch(tok, podID("pod-a"), tt.req)
			wantCalls := 2
			if tt.cached {
				wantCalls = 1
			}
			if n := count(h.fv, tt.req.Path); n != wantCalls {
				t.Errorf("next Fetch (%s): %d Vault calls in all, want %d", outcome, n, wantCalls)
			}
			if tt.cached != (answer(resp) == answer(resps[0])) {
				t.Errorf("next Fetch answered %s, concurrent ones %s", answer(resp), answer(resps[0]))
			}
		})
	}
}

// A lease dies with the token that created it: under another token (a new
// login), the entry is refreshed once the creator token's end approaches,
// and never renewed with a token that did not create it.
func TestFetchCreatorToken(t *testing.T) {
	tests := []struct {
		name       string
		creatorTTL time.Duration
		after      time.Duration
		// current is the token of the later Fetch; creator is the first's.
		current    func(creator *vault.Token, now time.Time) *vault.Token
		want       Outcome
		wantRenews int
	}{
		{
			name: "other token, creator's end still far: hit", creatorTTL: 3000 * s, after: 1700 * s,
			current: func(_ *vault.Token, now time.Time) *vault.Token { return token("b", 3600*s, now) },
			want:    Hit,
		},
		{
			name: "other token, creator's end approaching though the lease is young: re-issued, not renewed", creatorTTL: 3000 * s, after: 2100 * s,
			current: func(_ *vault.Token, now time.Time) *vault.Token { return token("b", 3600*s, now) },
			want:    Issued,
		},
		{
			name: "other token, lease past its threshold: re-issued, not renewed", creatorTTL: 0, after: 2401 * s,
			current: func(_ *vault.Token, now time.Time) *vault.Token { return token("b", 3600*s, now) },
			want:    Issued,
		},
		{
			name: "other token without expiry, creator's end approaching: re-issued", creatorTTL: 3000 * s, after: 2100 * s,
			current: func(_ *vault.Token, now time.Time) *vault.Token { return token("b", 0, now) },
			want:    Issued,
		},
		{
			name: "creator token renewed since (same accessor, later issue): hit", creatorTTL: 3000 * s, after: 2100 * s,
			current: func(c *vault.Token, now time.Time) *vault.Token {
				r := *c
				r.IssuedAt = epoch.Add(2000 * s)
				return &r
			},
			want: Hit,
		},
		{
			name: "creator token near its end: renewed with the creator", creatorTTL: 3000 * s, after: 2100 * s,
			current: func(c *vault.Token, _ time.Time) *vault.Token { return c },
			want:    Renewed, wantRenews: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			creator := token("a", tt.creatorTTL, epoch)
			first, _ := h.fetch(creator, podID("pod-a"), dbReq("x"))
			h.clk.Advance(tt.after)
			cur := tt.current(creator, h.clk.Now())
			resp, outcome := h.fetch(cur, podID("pod-a"), dbReq("x"))
			if outcome != tt.want {
				t.Fatalf("Fetch at +%v: %s, want %s", tt.after, outcome, tt.want)
			}
			renews := requests(h.fv, "sys/leases/renew")
			if len(renews) != tt.wantRenews {
				t.Errorf("%d lease renewals, want %d", len(renews), tt.wantRenews)
			}
			for _, r := range renews {
				if r.Token != creator.Value {
					t.Errorf("lease renewed with token %q, not its creator %q", r.Token, creator.Value)
				}
			}
			if reissued := answer(resp) != answer(first); reissued != (tt.want == Issued) {
				t.Errorf("answer %s, first %s; want re-issued = %v", answer(resp), answer(first), tt.want == Issued)
			}
			// A re-issued lease belongs to the current token: served from
			// the cache again right away.
			if tt.want == Issued {
				if again, o := h.fetch(cur, podID("pod-a"), dbReq("x")); o != Hit || answer(again) != answer(resp) {
					t.Errorf("next Fetch with the new creator: %s %s, want a hit on %s", o, answer(again), answer(resp))
				}
			}
			for _, r := range requests(h.fv, "database/creds/x") {
				if r.Token != creator.Value && r.Token != cur.Value {
					t.Errorf("credential requested with unknown token %q", r.Token)
				}
			}
		})
	}
}

// Within one pod, a full lease cache evicts the least recently used answer.
func TestFetchMaxEntries(t *testing.T) {
	type step struct {
		after time.Duration
		name  string
		want  Outcome
	}
	tests := []struct {
		name    string
		max     int
		roles   map[string]vaulttest.DatabaseRole
		steps   []step
		wantLen int
		kept    []string // served from the cache afterwards
		dropped []string // evicted
	}{
		{
			name: "the least recently used goes", max: 2,
			steps:   []step{{0, "a", Issued}, {0, "b", Issued}, {0, "c", Issued}},
			wantLen: 2, kept: []string{"b", "c"}, dropped: []string{"a"},
		},
		{
			name: "a hit makes an answer recently used", max: 2,
			steps:   []step{{0, "a", Issued}, {0, "b", Issued}, {s, "a", Hit}, {0, "c", Issued}},
			wantLen: 2, kept: []string{"a", "c"}, dropped: []string{"b"},
		},
		{
			name: "by use, not by lifetime", max: 2,
			roles:   map[string]vaulttest.DatabaseRole{"a": {TTL: 100 * s}, "c": {TTL: 7200 * s}},
			steps:   []step{{0, "a", Issued}, {0, "b", Issued}, {s, "a", Hit}, {0, "c", Issued}},
			wantLen: 2, kept: []string{"a", "c"}, dropped: []string{"b"},
		},
		{
			name: "re-issuing a cached key evicts nothing", max: 2,
			roles: map[string]vaulttest.DatabaseRole{"a": {TTL: 300 * s, NonRenewable: true}},
			steps: []step{{0, "a", Issued}, {100 * s, "b", Issued}, {101 * s, "a", Issued}},
			// a, re-issued, is the most recently used now.
			wantLen: 2, kept: []string{"a", "b"},
		},
		{
			name: "renewing a cached key evicts nothing", max: 2,
			roles:   map[string]vaulttest.DatabaseRole{"a": {TTL: 300 * s}},
			steps:   []step{{0, "a", Issued}, {100 * s, "b", Issued}, {101 * s, "a", Renewed}},
			wantLen: 2, kept: []string{"a", "b"},
		},
		{
			name: "zero means the default bound", max: 0,
			steps:   []step{{0, "a", Issued}, {0, "b", Issued}, {0, "c", Issued}},
			wantLen: 3, kept: []string{"a", "b", "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{LeaseCacheSize: tt.max})
			for name, r := range tt.roles {
				h.fv.SetDatabaseRole(name, r)
			}
			tok := token("a", 0, epoch)
			for _, st := range tt.steps {
				h.clk.Advance(st.after)
				if _, o := h.fetch(tok, podID("pod-a"), dbReq(st.name)); o != st.want {
					t.Fatalf("fetching %s: %s, want %s", st.name, o, st.want)
				}
			}
			if n := h.c.Leases(); n != tt.wantLen {
				t.Errorf("%d cached answers, want %d", n, tt.wantLen)
			}
			checkIndex(t, h.c.leases)
			for _, name := range tt.kept {
				if _, o := h.fetch(tok, podID("pod-a"), dbReq(name)); o != Hit {
					t.Errorf("%s: %s, want a hit (kept)", name, o)
				}
			}
			for _, name := range tt.dropped {
				if _, o := h.fetch(tok, podID("pod-a"), dbReq(name)); o == Hit {
					t.Errorf("%s: still cached, want it evicted", name)
				}
			}
		})
	}
}

// A token shorter-lived than the credential caps the credential's useful
// life, but Fetches within the token's own fresh window should still be
// hits: the token cache renews the token before it ends.
func TestFetchShortLivedCreator(t *testing.T) {
	tests := []struct {
		name     string
		req      config.Request
		certTTL  time.Duration
		tokenTTL time.Duration
		every    time.Duration
		fetches  int
	}{
		{name: "1h lease under a 5 min token", req: dbReq("x"), tokenTTL: 300 * s, every: 10 * s, fetches: 20},
		{name: "24h certificate under a 1h token", req: pkiReq("a.example.com"), certTTL: 24 * time.Hour, tokenTTL: time.Hour, every: 2 * time.Minute, fetches: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			if tt.certTTL != 0 {
				h.fv.SetPKIRole("x", vaulttest.PKIRole{TTL: tt.certTTL})
			}
			// Within 2/3 of its TTL the token cache hands out this token as is.
			if time.Duration(tt.fetches-1)*tt.every >= tt.tokenTTL*2/3 {
				t.Fatal("test fetches past the token's own threshold")
			}
			tok := token("a", tt.tokenTTL, epoch)
			var outcomes []Outcome
			for i := range tt.fetches {
				if i > 0 {
					h.clk.Advance(tt.every)
				}
				_, o := h.fetch(tok, podID("pod-a"), tt.req)
				outcomes = append(outcomes, o)
			}
			if n := total(h.fv); n != 1 {
				t.Errorf("%d Vault calls for %d Fetches within the token's fresh window, want 1 (outcomes %v)", n, tt.fetches, outcomes)
			}
		})
	}
}

// checkIndex fails the test unless the token index lists exactly the cached
// leases, each under its creator.
func checkIndex(t *testing.T, c *leaseCache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	indexed := 0
	for tk, keys := range c.byToken {
		if len(keys) == 0 {
			t.Errorf("token %q indexed with no leases", tk)
		}
		for k := range keys {
			indexed++
			if e, ok := c.lru.peek(k); !ok || e.creator != tk {
				t.Errorf("index lists %q under %q, not a lease of that token", k, tk)
			}
		}
	}
	leases := 0
	for _, e := range c.lru.items {
		if e.val.creator != "" {
			leases++
		}
	}
	if indexed != leases {
		t.Errorf("%d leases indexed, %d cached", indexed, leases)
	}
}

// Forgetting a token drops exactly the leases it created, by identity and
// accessor: leases since re-issued under another token, certificates, and
// other identities' leases stay.
func TestForgetToken(t *testing.T) {
	a := token("a", 0, epoch)
	b := token("b", 0, epoch)
	tests := []struct {
		name string
		// steps run before forget(podID("pod-a"), a); they return what
		// should be a hit afterwards and what should not.
		steps  func(h *harness) (kept, gone []config.Request)
		forget Identity
	}{
		{name: "the token's leases go", forget: podID("pod-a"), steps: func(h *harness) (kept, gone []config.Request) {
			h.fetch(a, podID("pod-a"), dbReq("x"))
			h.fetch(a, podID("pod-a"), dbReq("y"))
			return nil, []config.Request{dbReq("x"), dbReq("y")}
		}},
		{name: "a renewed lease still belongs to its creator", forget: podID("pod-a"), steps: func(h *harness) (kept, gone []config.Request) {
			h.fetch(a, podID("pod-a"), dbReq("x"))
			h.clk.Advance(2401 * s)
			if _, o := h.fetch(a, podID("pod-a"), dbReq("x")); o != Renewed {
				h.t.Fatalf("second fetch %s, want renewed", o)
			}
			return nil, []config.Request{dbReq("x")}
		}},
		{name: "a lease re-issued under another token stays", forget: podID("pod-a"), steps: func(h *harness) (kept, gone []config.Request) {
			h.fetch(a, podID("pod-a"), dbReq("x"))
			h.fetch(a, podID("pod-a"), dbReq("y"))
			h.clk.Advance(2401 * s)
			if _, o := h.fetch(b, podID("pod-a"), dbReq("x")); o != Issued {
				h.t.Fatalf("fetch under b: %s, want issued", o)
			}
			return []config.Request{dbReq("x")}, []config.Request{dbReq("y")}
		}},
		{name: "certificates do not die with the token", forget: podID("pod-a"), steps: func(h *harness) (kept, gone []config.Request) {
			h.fetch(a, podID("pod-a"), pkiReq("a.example.com"))
			h.fetch(a, podID("pod-a"), dbReq("x"))
			return []config.Request{pkiReq("a.example.com")}, []config.Request{dbReq("x")}
		}},
		{name: "another identity's token with the same accessor keeps its leases", forget: podID("pod-b"), steps: func(h *harness) (kept, gone []config.Request) {
			h.fetch(a, podID("pod-a"), dbReq("x"))
			return []config.Request{dbReq("x")}, nil
		}},
		{name: "a lease evicted for room leaves the index", forget: podID("pod-a"), steps: func(h *harness) (kept, gone []config.Request) {
			// The cache holds two; x, the least recently used, makes room
			// for z.
			h.fetch(a, podID("pod-a"), dbReq("x"))
			h.fetch(a, podID("pod-a"), dbReq("y"))
			h.fetch(a, podID("pod-a"), dbReq("z"))
			return nil, []config.Request{dbReq("x"), dbReq("y"), dbReq("z")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{LeaseCacheSize: 2})
			kept, gone := tt.steps(h)
			checkIndex(t, h.c.leases)
			h.c.leases.forgetToken(tt.forget.Key(), a.Accessor)
			checkIndex(t, h.c.leases)
			if n := h.c.Leases(); n != len(kept) {
				t.Errorf("%d answers cached, want %d", n, len(kept))
			}
			for _, r := range kept {
				if _, o := h.fetch(b, podID("pod-a"), r); o != Hit {
					t.Errorf("%s: %s, want a hit (kept)", r.Path, o)
				}
			}
			for _, r := range gone {
				if _, o := h.fetch(b, podID("pod-a"), r); o == Hit {
					t.Errorf("%s: still cached, want it forgotten", r.Path)
				}
			}
		})
	}
	t.Run("an empty accessor forgets nothing", func(t *testing.T) {
		h := newHarness(t, Options{})
		anon := &vault.Token{Value: "hvs.anon"}
		h.fetch(anon, podID("pod-a"), dbReq("x"))
		h.c.leases.forgetToken(podID("pod-a").Key(), "")
		checkIndex(t, h.c.leases)
		if _, o := h.fetch(anon, podID("pod-a"), dbReq("x")); o != Hit {
			t.Errorf("%s, want a hit", o)
		}
	})
}
