package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// $VAULT_WRAP_TTL would have Vault answer with a wrapping token instead of
// the secret.
func TestClientIgnoresWrapTTL(t *testing.T) {
	t.Setenv("VAULT_WRAP_TTL", "5m")
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.PutKV2("secret/data/app", map[string]any{"k": "v"})
	c := newClient(t, Options{}, Target{Address: v.URL()})
	resp, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/data/app"})
	if err != nil {
		t.Fatal(err)
	}
	if w := last(t, v).Header.Get("X-Vault-Wrap-TTL"); w != "" {
		t.Errorf("Do sent X-Vault-Wrap-TTL %q from the environment", w)
	}
	if resp.Secret.Data == nil {
		t.Error("no data in the answer")
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

func TestPoolBounded(t *testing.T) {
	const bound = 50
	p := NewPool(Options{MaxClients: bound})
	keep := Target{Address: "https://keep:8200"}
	kept, err := p.Client(keep)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		tg := Target{Address: fmt.Sprintf("https://vault-%d:8200", i%700), Namespace: fmt.Sprintf("ns-%d", i%3)}
		if i%2 == 1 {
			tg.TLS.ServerName = fmt.Sprintf("name-%d", i)
		}
		if _, err := p.Client(tg); err != nil {
			t.Fatal(err)
		}
		if n := p.Len(); n > bound {
			t.Fatalf("after %d targets the pool holds %d clients, bound %d", i+1, n, bound)
		}
		if i%10 == 0 { // used recently: never the one dropped
			if c, _ := p.Client(keep); c != kept {
				t.Fatalf("a recently used client was dropped after %d targets", i+1)
			}
		}
	}
	p.mu.Lock()
	nt, nb := len(p.transports), len(p.building)
	p.mu.Unlock()
	if nt > bound || nb != 0 {
		t.Errorf("pool keeps %d transports and %d builds, want at most %d and 0", nt, nb, bound)
	}
	// DefaultOptions bound the pool too.
	if NewPool(Options{}).opts.MaxClients != DefaultOptions.MaxClients || DefaultOptions.MaxClients < 1 {
		t.Errorf("default MaxClients = %d", NewPool(Options{}).opts.MaxClients)
	}
}

// TestPoolDropClosesIdleConnections: a dropped client's kept-alive
// connections are closed, once no pooled client shares its transport.
func TestPoolDropClosesIdleConnections(t *testing.T) {
	var (
		mu     sync.Mutex
		closed int
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":{"k":"v"}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	closedConns := func() int {
		mu.Lock()
		defer mu.Unlock()
		return closed
	}

	p := NewPool(Options{MaxClients: 2})
	root, err := p.Client(Target{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := p.Client(Target{Address: srv.URL, Namespace: "team"})
	if err != nil {
		t.Fatal(err)
	}
	if root.t != ns.t {
		t.Fatal("namespaced clients of one address and TLS setting do not share the transport")
	}
	if _, err := root.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Client(Target{Address: "https://other-1:8200"}); err != nil { // drops root; ns still shares the transport
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := closedConns(); n != 0 {
		t.Fatalf("%d connections closed while a pooled client still shares them", n)
	}
	if _, err := p.Client(Target{Address: "https://other-2:8200"}); err != nil { // drops ns: the last one
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for closedConns() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection of a dropped client was not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A Mount still holding a dropped client can go on using it.
	if _, err := root.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
		t.Errorf("dropped client: %v", err)
	}
}

// TestPoolSlowTLSFileBlocksOnlyItsTarget: reading one target's TLS files
// happens outside the pool's lock; others are served meanwhile, and callers
// for the same target wait for the one read.
func TestPoolSlowTLSFileBlocksOnlyItsTarget(t *testing.T) {
	pk := newPKI(t)
	release := make(chan struct{})
	var reads atomic.Int32
	beforeOpen = func(path string) {
		if path == pk.clientCert {
			reads.Add(1)
			<-release
		}
	}
	t.Cleanup(func() { beforeOpen = func(string) {} })

	p := NewPool(Options{})
	slow := config.TLS{CACert: pk.caFile, ClientCert: pk.clientCert, ClientKey: pk.clientKey}
	type result struct {
		c   *Client
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		c, err := p.Client(Target{Address: "https://slow:8200", TLS: slow})
		first <- result{c, err}
	}()
	for reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		c, err := p.Client(Target{Address: "https://slow:8200", Namespace: "team", TLS: slow})
		second <- result{c, err}
	}()

	// Other targets, with TLS files of their own, do not wait.
	for i, tg := range []Target{
		{Address: "https://fast:8200", TLS: config.TLS{CACert: pk.caFile}},
		{Address: "https://slow:8200"},
	} {
		if _, err := clientWithin(t, p, tg, 2*time.Second); err != nil {
			t.Fatalf("target %d: %v", i, err)
		}
	}
	select {
	case r := <-first:
		t.Fatalf("the slow target returned before its file was read: %v", r.err)
	case r := <-second:
		t.Fatalf("the second caller for the slow target returned before its file was read: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	r1, r2 := <-first, <-second
	if r1.err != nil || r2.err != nil {
		t.Fatal(r1.err, r2.err)
	}
	if r1.c.t != r2.c.t {
		t.Error("concurrent callers for one address and TLS setting got different transports")
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("the client certificate was read %d times, want once", n)
	}
}

func TestPoolRefusesUserinfo(t *testing.T) {
	_, err := NewPool(Options{}).Client(Target{Address: "https://admin:hunter2@vault:8200"})
	if err == nil {
		t.Fatal("a client for an address with user information")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "admin") {
		t.Errorf("message %q echoes the credentials", err)
	}
}

// TestPoolKeepsConnectionsForConcurrentRequests: the next round of
// concurrent requests reuses the connections of the last instead of
// dialing (go-cleanhttp's pool kept GOMAXPROCS+1 and dialed the rest every
// time).
func TestPoolKeepsConnectionsForConcurrentRequests(t *testing.T) {
	const inFlight = 24
	var (
		mu       sync.Mutex
		dialed   int
		arrived  int
		released = make(chan struct{})
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold each round until all its requests are in flight at once.
		mu.Lock()
		arrived++
		if arrived%inFlight == 0 {
			close(released)
		}
		ch := released
		mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
		}
		w.Write([]byte(`{"data":{"k":"v"}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			dialed++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, Options{MaxRetries: 0}, Target{Address: srv.URL})

	round := func() {
		mu.Lock()
		released = make(chan struct{})
		mu.Unlock()
		var wg sync.WaitGroup
		for range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	round()
	mu.Lock()
	first := dialed
	mu.Unlock()
	if first != inFlight {
		t.Fatalf("%d connections for %d concurrent requests", first, inFlight)
	}
	round()
	mu.Lock()
	defer mu.Unlock()
	if dialed != first {
		t.Errorf("the second round of %d concurrent requests dialed %d new connections, want 0 (kept alive)", inFlight, dialed-first)
	}
}

// TestPoolBoundsConnections: more concurrent requests than MaxConnections
// wait for a connection; none fails, and Vault never sees more at once.
func TestPoolBoundsConnections(t *testing.T) {
	const limit, requests = 5, 40
	var (
		mu                sync.Mutex
		dialed, now, most int
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now++
		most = max(most, now)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		now--
		mu.Unlock()
		w.Write([]byte(`{"data":{"k":"v"}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			dialed++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, Options{MaxRetries: 0, MaxConnections: limit}, Target{Address: srv.URL})
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if most > limit || dialed > limit {
		t.Errorf("%d requests at once over %d connections, want at most %d", most, dialed, limit)
	}
	if most < 2 {
		t.Errorf("at most %d request at once: the requests did not run concurrently", most)
	}
}

func TestPoolCloseIdleConnections(t *testing.T) {
	var (
		mu     sync.Mutex
		closed int
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":{"k":"v"}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := NewPool(Options{})
	c, err := p.Client(Target{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
		t.Fatal(err)
	}
	p.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := closed
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections closed, want the idle one", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The client still works: it dials again.
	if _, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
		t.Fatal(err)
	}
}

// A Vault Agent on a Unix socket (vault-helm's VAULT_ADDR=unix:///...):
// logins and reads go over the socket in plain HTTP, TLS settings are
// neither read nor used, and the namespace and token arrive as over TCP.
func TestPoolUnixSocket(t *testing.T) {
	// The provider's own environment names a socket too; it must not
	// matter to the targets it is given.
	t.Setenv("VAULT_ADDR", "unix:///nonexistent/agent.sock")
	sock := socketPath(t)
	agent := vaulttest.New(t, vaulttest.OnSocket(sock))
	agent.EnableAuth("kubernetes").Role("app", vaulttest.Role{})
	agent.PutKV2("secret/data/app", map[string]any{"k": "v"})

	// Files that do not exist: reading any of them would fail the client.
	operatorTLS := config.TLS{CACert: "/nonexistent/ca.pem", ClientCert: "/nonexistent/tls.crt", ClientKey: "/nonexistent/tls.key", ServerName: "vault.internal"}
	p := NewPool(Options{MaxRetries: 0})
	c, err := p.Client(Target{Address: "unix://" + sock, Namespace: "team", TLS: operatorTLS})
	if err != nil {
		t.Fatalf("client for the socket with TLS settings: %v", err)
	}
	if c.Address() != "unix://"+sock {
		t.Errorf("Address() = %q", c.Address())
	}
	if other, err := p.Client(Target{Address: "unix://" + sock, Namespace: "team"}); err != nil || other != c {
		t.Errorf("the same socket with other TLS settings gave another client (err %v)", err)
	}

	tok, err := c.Login(context.Background(), "kubernetes", "app", "jwt-of-the-pod")
	if err != nil {
		t.Fatalf("Login over the socket: %v", err)
	}
	login := last(t, agent)
	if login.Method != "POST" || login.Path != "auth/kubernetes/login" || login.Namespace != "team" || login.Token != "" {
		t.Errorf("login arrived as %s %s namespace %q token %q", login.Method, login.Path, login.Namespace, login.Token)
	}
	resp, err := c.Do(context.Background(), tok.Value, config.Request{Method: "GET", Path: "secret/data/app", Query: map[string][]string{"version": {"1"}}})
	if err != nil {
		t.Fatalf("Do over the socket: %v", err)
	}
	if data, _ := resp.Secret.Data["data"].(map[string]any); data["k"] != "v" {
		t.Errorf("data = %v", resp.Secret.Data)
	}
	read := last(t, agent)
	if read.Path != "secret/data/app" || read.Token != tok.Value || read.Namespace != "team" || read.Query.Get("version") != "1" {
		t.Errorf("read arrived as %s token ok %v namespace %q query %v", read.Path, read.Token == tok.Value, read.Namespace, read.Query)
	}
	if n := len(agent.Calls()); n != 2 {
		t.Errorf("the agent got %d calls, want 2", n)
	}
}

// An absent socket is Vault unreachable (so failover moves on), and the
// message names the socket.
func TestPoolUnixSocketUnreachable(t *testing.T) {
	sock := socketPath(t)
	c := newClient(t, Options{MaxRetries: 0}, Target{Address: "unix://" + sock})
	_, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want an *UnreachableError", err, err)
	}
	for _, want := range []string{"GET secret/x: cannot reach Vault at unix://" + sock + ": ", "dial unix " + sock} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
}

func TestPoolRefusesMalformedSocketAddress(t *testing.T) {
	for _, addr := range []string{"unix://agent.sock", "unix:///run/../agent.sock", "unix://"} {
		if _, err := NewPool(Options{}).Client(Target{Address: addr}); err == nil || !strings.Contains(err.Error(), "not a unix:// address of an absolute, clean socket path") {
			t.Errorf("%s: err = %v", addr, err)
		}
	}
}
