package cache

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

const s = time.Second

// epoch is where the harness's clock starts.
var epoch = vaulttest.Epoch

// Roles of the harness's Vaults: pods log in as role app (or, to differ in
// role only, other-role) at jwt (or jwt-other), with any JWT.
const loginTTL = 300 * s

// newVault is a fake Vault for the harness: the login roles above with
// 300 s renewable tokens, a PKI role x issuing 3000 s certificates, a
// database engine (every read of database/creds/<role> a new lease, an
// hour by default) and a KV v2 secret at secret/data/x. It accepts made-up
// tokens (AnyToken), so the lease cache's tests need not log in. It
// measures lifetimes on clk.
func newVault(t *testing.T, clk *vaulttest.Clock) *vaulttest.Server {
	t.Helper()
	fv := vaulttest.New(t, vaulttest.WithClock(clk), vaulttest.AnyToken())
	setLoginRole(fv, vaulttest.Role{TTL: loginTTL})
	fv.SetPKIRole("x", vaulttest.PKIRole{TTL: 3000 * s})
	fv.PutKV2("secret/data/x", map[string]any{"value": "kv"})
	return fv
}

// setLoginRole makes r every login role of fv.
func setLoginRole(fv *vaulttest.Server, r vaulttest.Role) {
	for _, mount := range []string{"jwt", "jwt-other"} {
		fv.EnableAuth(mount).Role("app", r).Role("other-role", r)
	}
}

// harness is a Cache in front of a fake Vault, on the fake Vault's clock,
// logging in as auth does.
type harness struct {
	t    *testing.T
	fv   *vaulttest.Server
	clk  *vaulttest.Clock
	pool *vault.Pool
	vc   *vault.Client // to fv
	c    *Cache
}

// newHarness returns a harness whose Cache has options o with the fake clock.
func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	clk := &vaulttest.Clock{}
	h := &harness{
		t:    t,
		fv:   newVault(t, clk),
		clk:  clk,
		pool: vault.NewPool(vault.Options{MaxRetries: 0}),
	}
	h.vc = h.client(h.fv.URL())
	o.Now = clk.Now
	h.c = New(&auth.Authenticator{}, o)
	return h
}

func (h *harness) client(addr string) *vault.Client {
	h.t.Helper()
	vc, err := h.pool.Client(vault.Target{Address: addr})
	if err != nil {
		h.t.Fatal(err)
	}
	return vc
}

// pod is a pod's Mount configuration for the harness's Vault; the driver
// supplies the JWT, so no Kubernetes access is needed.
func (h *harness) pod(podUID string) *config.Config {
	return &config.Config{
		VaultAddress:  h.fv.URL(),
		AuthMountPath: "jwt",
		RoleName:      "app",
		Token:         "jwt-of-" + podUID,
		Pod:           config.Pod{Name: "pod-" + podUID, Namespace: "apps", UID: podUID, ServiceAccountName: "app"},
	}
}

// idOf is the identity of cfg at its Vault address.
func idOf(cfg *config.Config) Identity { return IdentityOf(cfg, cfg.VaultAddress) }

// token asks the token cache for cfg's token, at cfg.VaultAddress.
func (h *harness) token(cfg *config.Config) *vault.Token {
	h.t.Helper()
	tok, err := h.c.Token(context.Background(), h.client(cfg.VaultAddress), idOf(cfg), cfg)
	if err != nil {
		h.t.Fatalf("Token: %v", err)
	}
	return tok
}

// fetch fetches req for id with tok and fails the test on errors.
func (h *harness) fetch(tok *vault.Token, id Identity, req config.Request) (*vault.Response, Outcome) {
	h.t.Helper()
	resp, outcome, err := h.c.Fetch(context.Background(), h.vc, tok, id, req)
	if err != nil {
		h.t.Fatalf("Fetch %s %s: %v", req.Method, req.Path, err)
	}
	return resp, outcome
}

// requests returns the requests fv received at exactly path.
func requests(fv *vaulttest.Server, path string) []vaulttest.Call {
	var out []vaulttest.Call
	for _, c := range fv.Calls() {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// count counts the requests fv received at exactly path.
func count(fv *vaulttest.Server, path string) int { return len(requests(fv, path)) }

// loginCount counts login requests (refused ones too) at any auth mount.
func loginCount(fv *vaulttest.Server) int {
	n := 0
	for _, c := range fv.Calls() {
		if strings.HasPrefix(c.Path, "auth/") && strings.HasSuffix(c.Path, "/login") && c.Path != "auth/token/login" {
			n++
		}
	}
	return n
}

func total(fv *vaulttest.Server) int { return len(fv.Calls()) }

// live reports whether fv holds tok as a live token.
func live(fv *vaulttest.Server, tok *vault.Token) bool {
	info, ok := fv.Token(tok.Value)
	return ok && info.Live
}

// podID is the identity of the pod named name; leases are cached per
// identity, and counted against the pod's quota.
func podID(name string) Identity {
	return IdentityOf(&config.Config{AuthMountPath: "jwt", RoleName: "app", Pod: config.Pod{Namespace: "apps", Name: name}}, "https://vault.example")
}

// token is a token the token cache would hand out; ttl 0 never expires.
func token(name string, ttl time.Duration, issued time.Time) *vault.Token {
	return &vault.Token{Value: "hvs." + name, Accessor: "acc-" + name, TTL: ttl, Renewable: true, IssuedAt: issued}
}

// dbReq reads database credentials of role name; the query makes a
// distinct request (the fake Vault ignores it).
func dbReq(name string, query ...string) config.Request {
	r := config.Request{Method: http.MethodGet, Path: "database/creds/" + name}
	if len(query) > 0 {
		r.Query = map[string][]string{}
		for i := 0; i+1 < len(query); i += 2 {
			r.Query.Set(query[i], query[i+1])
		}
	}
	return r
}

func pkiReq(cn string) config.Request {
	return config.Request{Method: http.MethodPut, Path: "pki/issue/x", Body: []byte(`{"common_name":"` + cn + `"}`)}
}

func kvReq(name string) config.Request {
	return config.Request{Method: http.MethodGet, Path: "secret/data/" + name}
}

// answer names a Vault answer: each one the fake gives has its own
// request_id.
func answer(r *vault.Response) string { return r.Secret.RequestID }

// evictionCount reads vault_csi_provider_cache_evictions_total for cache
// and reason. The cache's tests do not run in parallel, so a difference
// of two readings is one test's.
func evictionCount(cache, reason string) float64 {
	return testutil.ToFloat64(metrics.CacheEvictions.WithLabelValues(cache, reason))
}

// singleflightWaiters counts goroutines inside fn (as it appears in stack
// traces, e.g. "(*tokenCache).token(") that are parked in singleflight
// behind another caller's call.
func singleflightWaiters(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*WaitGroup).Wait(") &&
			strings.Contains(g, "singleflight.(*Group).Do(") &&
			strings.Contains(g, fn) {
			count++
		}
	}
	return count
}
