package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

const s = time.Second

// fakeClock is the caches' clock, and the fake Vault's for certificate
// expirations: the test decides when "later" is.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vaultCall is one request the fake Vault received.
type vaultCall struct {
	Method string
	Path   string // below /v1/
	Query  url.Values
	Token  string
	Body   map[string]any
}

// fakeVaultConfig is how the fake Vault answers.
type fakeVaultConfig struct {
	loginTTL         int           // seconds; 0: a token without expiry
	loginRenewable   bool          // of tokens from a login
	renewTTL         int           // seconds renew-self grants; 0: the increment asked for
	renewStatus      int           // non-zero: renew-self fails with this status
	leaseRenewTTL    int           // seconds sys/leases/renew grants; 0: the increment asked for
	leaseRenewStatus int           // non-zero: sys/leases/renew fails with this status
	certTTL          time.Duration // lifetime of issued certificates
	loginStatus      int           // non-zero: logins fail with this status
	lookupStatus     int           // non-zero: lookup-self of a live token fails with this status
}

// fakeVault is a Vault that logs in at any auth/<mount>/login (a new token
// "hvs.<name>-N", accessor "acc-<name>-N", per login), renews, looks up and
// revokes tokens, and refuses revoked tokens with 403. It has a database
// secrets engine (a new lease and user per read of database/creds/*; ?ttl=N
// and ?renewable=false shape the lease), a PKI engine (pki/issue/*: a
// certificate with an expiration, no lease), a KV v2 engine (secret/data/*,
// no lease) and lease renewal. Every answer carries a unique request_id. It
// records every request, and can hold answers to a path until released.
type fakeVault struct {
	*httptest.Server
	name string
	now  func() time.Time

	mu      sync.Mutex
	cfg     fakeVaultConfig
	calls   []vaultCall
	seq     int // requests
	logins  int
	revoked map[string]bool
	gates   map[string]chan struct{}
}

func newFakeVault(t *testing.T, name string, now func() time.Time) *fakeVault {
	t.Helper()
	fv := &fakeVault{
		name:    name,
		now:     now,
		cfg:     fakeVaultConfig{loginTTL: 300, loginRenewable: true, certTTL: 3000 * s},
		revoked: map[string]bool{},
		gates:   map[string]chan struct{}{},
	}
	fv.Server = httptest.NewServer(fv)
	t.Cleanup(fv.Close)
	return fv
}

func (fv *fakeVault) configure(f func(*fakeVaultConfig)) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	f(&fv.cfg)
}

// hold makes requests to path wait until the returned release is called
// (release is idempotent, and runs at the end of the test anyway).
func (fv *fakeVault) hold(t *testing.T, path string) (release func()) {
	ch := make(chan struct{})
	fv.mu.Lock()
	fv.gates[path] = ch
	fv.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

// revoke makes Vault refuse tok from now on.
func (fv *fakeVault) revoke(tok string) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	fv.revoked[tok] = true
}

// requests returns the recorded requests to path.
func (fv *fakeVault) requests(path string) []vaultCall {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	var out []vaultCall
	for _, c := range fv.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func (fv *fakeVault) count(path string) int { return len(fv.requests(path)) }

// loginCount counts logins at any auth mount.
func (fv *fakeVault) loginCount() int {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	n := 0
	for _, c := range fv.calls {
		if isLogin(c.Path) {
			n++
		}
	}
	return n
}

func (fv *fakeVault) total() int {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	return len(fv.calls)
}

func isLogin(path string) bool {
	return strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login") && path != "auth/token/login"
}

func (fv *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &body)
	}
	tok := r.Header.Get("X-Vault-Token")
	fv.mu.Lock()
	fv.calls = append(fv.calls, vaultCall{Method: r.Method, Path: path, Query: r.URL.Query(), Token: tok, Body: body})
	fv.seq++
	n := fv.seq
	gate := fv.gates[path]
	cfg := fv.cfg
	fv.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}

	reply := func(code int, v map[string]any) {
		v["request_id"] = fmt.Sprintf("req-%d", n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, msg string) { reply(code, map[string]any{"errors": []string{msg}}) }

	if isLogin(path) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut || body["jwt"] == "" || body["role"] == "" {
			fail(http.StatusBadRequest, "missing role or jwt")
			return
		}
		if cfg.loginStatus != 0 {
			fail(cfg.loginStatus, "login refused")
			return
		}
		fv.mu.Lock()
		fv.logins++
		l := fv.logins
		fv.mu.Unlock()
		reply(200, map[string]any{"auth": map[string]any{
			"client_token":   fmt.Sprintf("hvs.%s-%d", fv.name, l),
			"accessor":       fmt.Sprintf("acc-%s-%d", fv.name, l),
			"lease_duration": cfg.loginTTL,
			"renewable":      cfg.loginRenewable,
		}})
		return
	}
	fv.mu.Lock()
	refused := tok == "" || fv.revoked[tok]
	fv.mu.Unlock()
	if refused {
		fail(http.StatusForbidden, "permission denied")
		return
	}
	switch {
	case path == "auth/token/renew-self":
		if cfg.renewStatus != 0 {
			fail(cfg.renewStatus, "renewal refused")
			return
		}
		ttl := cfg.renewTTL
		if ttl == 0 {
			inc, _ := body["increment"].(float64)
			ttl = int(inc)
		}
		reply(200, map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": ttl, "renewable": true}})
	case path == "auth/token/revoke-self":
		fv.revoke(tok)
		w.WriteHeader(http.StatusNoContent)
	case path == "auth/token/lookup-self" && r.Method == http.MethodGet:
		if cfg.lookupStatus != 0 {
			fail(cfg.lookupStatus, "lookup failed")
			return
		}
		reply(200, map[string]any{"data": map[string]any{"policies": []string{"default"}}})
	case path == "sys/leases/renew" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		if cfg.leaseRenewStatus != 0 {
			fail(cfg.leaseRenewStatus, "lease not renewable")
			return
		}
		ttl := cfg.leaseRenewTTL
		if ttl == 0 {
			inc, _ := body["increment"].(float64)
			ttl = int(inc)
		}
		reply(200, map[string]any{"lease_id": body["lease_id"], "lease_duration": ttl, "renewable": true, "data": nil})
	case strings.HasPrefix(path, "database/creds/") && r.Method == http.MethodGet:
		ttl := 3600
		if q := r.URL.Query().Get("ttl"); q != "" {
			ttl, _ = strconv.Atoi(q)
		}
		reply(200, map[string]any{
			"lease_id":       fmt.Sprintf("%s/lease-%d", path, n),
			"lease_duration": ttl,
			"renewable":      r.URL.Query().Get("renewable") != "false",
			"data":           map[string]any{"username": fmt.Sprintf("v-%d", n), "password": fmt.Sprintf("p-%d", n)},
		})
	case strings.HasPrefix(path, "pki/issue/") && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		reply(200, map[string]any{
			"lease_id":       "",
			"lease_duration": 0,
			"renewable":      false,
			"data": map[string]any{
				"certificate":   fmt.Sprintf("CERT-%d", n),
				"private_key":   fmt.Sprintf("KEY-%d", n),
				"serial_number": strconv.Itoa(n),
				"expiration":    fv.now().Add(cfg.certTTL).Unix(),
			},
		})
	case strings.HasPrefix(path, "secret/data/") && r.Method == http.MethodGet:
		reply(200, map[string]any{"data": map[string]any{
			"data":     map[string]any{"value": fmt.Sprintf("kv-%d", n)},
			"metadata": map[string]any{"version": n},
		}})
	default:
		fail(http.StatusNotFound, "no handler for "+r.Method+" "+path)
	}
}

// harness is a Cache in front of a fake Vault, on a fake clock, logging in
// as auth does.
type harness struct {
	t    *testing.T
	fv   *fakeVault
	clk  *fakeClock
	pool *vault.Pool
	vc   *vault.Client // to fv
	c    *Cache
}

// newHarness returns a harness whose Cache has options o with the fake clock.
func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	clk := &fakeClock{t: epoch}
	h := &harness{
		t:    t,
		fv:   newFakeVault(t, "v1", clk.Now),
		clk:  clk,
		pool: vault.NewPool(vault.Options{MaxRetries: 0}),
	}
	h.vc = h.client(h.fv.URL)
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
		VaultAddress:  h.fv.URL,
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

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
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
