// Package vaulttest is a fake Vault for unit tests, in the spirit of
// net/http/httptest: an HTTP server that speaks Vault's JSON API for what
// the provider uses — kubernetes/jwt login, token renew/revoke/lookup-self,
// KV v1 and v2, database credentials, PKI certificates, lease renewal and
// lookup — plus switches for what a real Vault cannot be made to do on
// demand: answer 500 or 429, hang, drop the connection, redirect (see
// Fail, Hold, Delay, CloseConn, Redirect, Handle), and a log of every call.
//
// Integration and end-to-end tests run against the real Vault; this package
// is for unit tests of faults and counts. It imports nothing of this module,
// so the tests of any package can use it.
//
// Paths in this package are Vault API paths below /v1/ ("secret/data/app").
// A path prefix matches whole segments: "secret/data/app" matches itself and
// "secret/data/app/x" but not "secret/data/app2"; a prefix ending in "/"
// matches anything below it, and "" matches every path.
package vaulttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake Vault listening on 127.0.0.1 (or a Unix socket, see
// OnSocket). Its methods are safe for concurrent use.
type Server struct {
	t        testing.TB
	srv      *httptest.Server
	clock    *Clock
	anyToken bool
	socket   string        // Unix socket path, or "" for 127.0.0.1
	done     chan struct{} // closed by Close: ends holds and delays
	close    sync.Once

	mu          sync.Mutex
	seq         int // request ids, tokens, leases and serials
	calls       []Call
	inFlight    int
	maxInFlight int
	gates       []*Gate
	auth        map[string]*AuthMount
	tokens      map[string]*token
	logins      []*token
	deny        []string
	kv1         map[string]json.RawMessage
	kv2         map[string][]kvVersion // by API path mount/data/name
	kv2Mounts   map[string]bool
	dbRoles     map[string]DatabaseRole
	pkiRoles    map[string]PKIRole
	leases      map[string]*lease
	leaseOrder  []string
	creds       int
}

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server measure lifetimes on c (default: a new Clock
// of its own, see Server.Clock).
func WithClock(c *Clock) Option { return func(s *Server) { s.clock = c } }

// AnyToken makes the server accept any non-empty token it did not issue, as
// a live token that never expires (until revoked with Revoke): for tests
// that make tokens up instead of logging in.
func AnyToken() Option { return func(s *Server) { s.anyToken = true } }

// OnSocket makes the server listen on the Unix socket path instead of
// 127.0.0.1, as a Vault Agent's listener "unix" does; its URL is then
// "unix://" + path. The socket file is removed when the server closes.
func OnSocket(path string) Option { return func(s *Server) { s.socket = path } }

// New starts a fake Vault; it is closed when the test ends. It has no auth
// mount and no secrets until the test adds them.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		clock:     &Clock{},
		done:      make(chan struct{}),
		auth:      map[string]*AuthMount{},
		tokens:    map[string]*token{},
		kv1:       map[string]json.RawMessage{},
		kv2:       map[string][]kvVersion{},
		kv2Mounts: map[string]bool{},
		dbRoles:   map[string]DatabaseRole{},
		pkiRoles:  map[string]PKIRole{},
		leases:    map[string]*lease{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.socket == "" {
		s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	} else {
		l, err := net.Listen("unix", s.socket)
		if err != nil {
			t.Fatalf("vaulttest: listening on %s: %v", s.socket, err)
		}
		s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
		s.srv.Listener.Close()
		s.srv.Listener = l
		s.srv.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// URL is the server's address for clients, "http://127.0.0.1:port", or
// "unix:///path" on a socket.
func (s *Server) URL() string {
	if s.socket != "" {
		return "unix://" + s.socket
	}
	return s.srv.URL
}

// Addr is the server's host:port, or its socket path.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Clock is the clock the server measures lifetimes on.
func (s *Server) Clock() *Clock { return s.clock }

// Close ends held and delayed requests and stops the server: later calls
// cannot connect. Tests need not call it; it runs when the test ends.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body)) // for Handle's handlers
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	c := Call{
		Method:    r.Method,
		Path:      path,
		Query:     r.URL.Query(),
		Token:     r.Header.Get("X-Vault-Token"),
		Namespace: r.Header.Get("X-Vault-Namespace"),
		Header:    r.Header.Clone(),
		Body:      body,
		Time:      s.clock.Now(),
	}
	if !ok {
		c.Path = r.URL.Path
	}
	gates, reqID := s.enter(c)
	defer s.leave()
	rw := &replier{w: w, reqID: reqID}
	for _, g := range gates {
		if g.apply(w, r, rw) {
			return
		}
	}
	if !ok {
		rw.fail(http.StatusNotFound, "vaulttest: not an API path: "+r.URL.Path)
		return
	}
	s.route(rw, r, path, body)
}

// route answers an API request that no gate took.
func (s *Server) route(w *replier, r *http.Request, path string, body []byte) {
	if mount, ok := loginMount(path); ok {
		s.login(w, r, mount, body)
		return
	}
	tok, ok := s.authorize(path, r.Header.Get("X-Vault-Token"))
	if !ok {
		w.fail(http.StatusForbidden, "permission denied")
		return
	}
	var fields map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &fields); err != nil {
			w.fail(http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}
	write := r.Method == http.MethodPut || r.Method == http.MethodPost
	switch {
	case path == "auth/token/lookup-self" && r.Method == http.MethodGet:
		s.lookupSelf(w, tok)
	case path == "auth/token/renew-self" && write:
		s.renewSelf(w, tok, fields)
	case path == "auth/token/revoke-self" && write:
		s.revoke(tok.value)
		w.noContent()
	case path == "sys/leases/renew" && write:
		s.renewLease(w, fields)
	case path == "sys/leases/lookup" && write:
		s.lookupLease(w, fields)
	case strings.HasPrefix(path, "database/creds/"):
		if r.Method != http.MethodGet {
			w.fail(http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.databaseCreds(w, tok, strings.TrimPrefix(path, "database/creds/"))
	case strings.HasPrefix(path, "pki/issue/"):
		if !write {
			w.fail(http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.issue(w, strings.TrimPrefix(path, "pki/issue/"), fields)
	default:
		if !s.readKV(w, r, path) {
			s.t.Logf("vaulttest: no secret or handler at %s %s", r.Method, path)
			w.fail(http.StatusNotFound)
		}
	}
}

// replier writes Vault's JSON answers.
type replier struct {
	w     http.ResponseWriter
	reqID string
}

// secret answers 200 with Vault's response envelope around fields.
func (rw *replier) secret(fields map[string]any) {
	out := map[string]any{
		"request_id": rw.reqID, "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "wrap_info": nil, "warnings": nil, "auth": nil,
	}
	for k, v := range fields {
		out[k] = v
	}
	rw.json(http.StatusOK, out)
}

// fail answers code with Vault's error body.
func (rw *replier) fail(code int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	rw.json(code, map[string]any{"errors": errs})
}

func (rw *replier) noContent() { rw.w.WriteHeader(http.StatusNoContent) }

func (rw *replier) json(code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("vaulttest: encoding an answer: %v", err))
	}
	rw.w.Header().Set("Content-Type", "application/json")
	rw.w.Header().Set("Cache-Control", "no-store")
	rw.w.WriteHeader(code)
	_, _ = rw.w.Write(append(b, '\n'))
}

// matches reports whether path is below prefix, by whole segments.
func matches(prefix, path string) bool {
	switch {
	case prefix == "" || path == prefix:
		return true
	case strings.HasSuffix(prefix, "/"):
		return strings.HasPrefix(path, prefix)
	default:
		return strings.HasPrefix(path, prefix+"/")
	}
}

// duration reads a Vault duration parameter: a number of seconds, or a
// string such as "90", "90s" or "1h".
func duration(v any) (time.Duration, bool) {
	switch x := v.(type) {
	case float64:
		return time.Duration(x * float64(time.Second)), true
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Duration(n) * time.Second, true
		}
		d, err := time.ParseDuration(x)
		return d, err == nil
	}
	return 0, false
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// grant is the lifetime a renewal gives: the increment asked for, else
// def, at most cap (if set) and at most until maxExpires (if set). warn
// says when the max TTL cut it, as Vault does.
func grant(now time.Time, inc, def, cap time.Duration, maxExpires time.Time) (d time.Duration, warn []string) {
	d = inc
	if d <= 0 {
		d = def
	}
	asked := d
	if cap > 0 && d > cap {
		d = cap
	}
	if !maxExpires.IsZero() {
		if rest := maxExpires.Sub(now); d > rest {
			d = max(rest, 0)
			warn = []string{fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", asked, d)}
		}
	}
	return d, warn
}
