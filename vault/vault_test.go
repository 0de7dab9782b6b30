package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestCleanErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"multierror of one", []string{"1 error occurred:\n\t* permission denied\n\n"}, []string{"permission denied"}},
		{"multierror of two", []string{"2 errors occurred:\n\t* missing client token\n\t* permission denied\n\n"}, []string{"missing client token", "permission denied"}},
		{"plain", []string{"permission denied"}, []string{"permission denied"}},
		{"several plain", []string{"a", "b"}, []string{"a", "b"}},
		{"blank entries dropped", []string{"", "  ", "\n"}, nil},
		{"multiline without header kept", []string{"line one\nline two"}, []string{"line one", "line two"}},
		{"bullet without header", []string{"* x"}, []string{"x"}},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanErrors(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("cleanErrors(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	e := &StatusError{Op: "GET secret/data/app", Addr: "https://vault:8200", StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}
	want := "GET secret/data/app at https://vault:8200: Vault answered 403: permission denied"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	e = &StatusError{Op: "GET x", Addr: "a", StatusCode: 502}
	if !strings.HasSuffix(e.Error(), "Vault answered 502: Bad Gateway") {
		t.Errorf("Error() without errors = %q", e.Error())
	}

	sealed := []struct {
		code int
		errs []string
		want bool
	}{
		{503, []string{"Vault is sealed"}, true},
		{503, []string{"1 error occurred:\n\t* Vault is Sealed\n\n"}, true},
		{503, []string{"standby node"}, false},
		{503, nil, false},
		{500, []string{"Vault is sealed"}, false},
		{400, []string{"sealed"}, false},
	}
	for _, tt := range sealed {
		e := &StatusError{StatusCode: tt.code, Errors: tt.errs}
		if got := e.Sealed(); got != tt.want {
			t.Errorf("Sealed(%d, %q) = %v, want %v", tt.code, tt.errs, got, tt.want)
		}
	}
}

func TestTokenStringHidesValue(t *testing.T) {
	tok := &Token{Value: "hvs.secret-token", Accessor: "acc-1"}
	if s := tok.String(); strings.Contains(s, "hvs.secret-token") || !strings.Contains(s, "acc-1") {
		t.Errorf("String() = %q", s)
	}
}

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

func TestPoolBadTLSIsInputError(t *testing.T) {
	p := NewPool(Options{})
	_, err := p.Client(Target{Address: "https://vault:8200", TLS: config.TLS{CACert: "/nonexistent/ca.pem"}})
	if err == nil || !config.IsInputError(err) {
		t.Fatalf("err = %v, want an input error", err)
	}
}

// last is the latest request v received.
func last(t *testing.T, v *vaulttest.Server) vaulttest.Call {
	t.Helper()
	calls := v.Calls()
	if len(calls) == 0 {
		t.Fatal("Vault received no request")
	}
	return calls[len(calls)-1]
}

func newClient(t *testing.T, opts Options, tg Target) *Client {
	t.Helper()
	c, err := NewPool(opts).Client(tg)
	if err != nil {
		t.Fatal(err)
	}
	return c
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

func TestDo(t *testing.T) {
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.PutKV("kv/app", map[string]any{"password": "p", "port": 5432})
	c := newClient(t, Options{}, Target{Address: v.URL()})

	resp, err := c.Do(context.Background(), "tok", config.Request{
		Method: "GET", Path: "kv/app",
		Query: url.Values{"alt_names": {"a", "b"}, "ttl": {"1h"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := last(t, v)
	if got.Method != "GET" || got.Path != "kv/app" || len(got.Body) != 0 {
		t.Errorf("sent %s %s body %q", got.Method, got.Path, got.Body)
	}
	if !reflect.DeepEqual(got.Query, url.Values{"alt_names": {"a", "b"}, "ttl": {"1h"}}) {
		t.Errorf("query = %q", got.Query)
	}
	if resp.Secret.Data["password"] != "p" || resp.Secret.Data["port"] != json.Number("5432") {
		t.Errorf("data = %#v (numbers must stay json.Number)", resp.Secret.Data)
	}
	if resp.Secret.RequestID == "" {
		t.Error("RequestID is empty")
	}

	body := []byte(`{"common_name":"x.example","ttl":"1h"}`)
	if _, err := c.Do(context.Background(), "tok", config.Request{Method: "PUT", Path: "pki/issue/r", Body: body}); err != nil {
		t.Fatal(err)
	}
	got = last(t, v)
	if got.Method != "PUT" || string(got.Body) != string(body) {
		t.Errorf("sent %s body %q, want PUT %s", got.Method, got.Body, body)
	}
	if _, err := c.Do(context.Background(), "tok", config.Request{Method: "POST", Path: "pki/issue/r", Body: body}); err != nil {
		t.Fatal(err)
	}
	if got := last(t, v); got.Method != "POST" {
		t.Errorf("sent %s, want POST", got.Method)
	}
}

func TestDoErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(v *vaulttest.Server) // makes secret/x answer
		check func(t *testing.T, err error)
	}{
		{
			name:  "204 No Content",
			setup: handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
			check: func(t *testing.T, err error) {
				var ee *EmptyResponseError
				if !errors.As(err, &ee) || ee.StatusCode != 204 || ee.Op != "GET secret/x" {
					t.Errorf("err = %v (%T), want *EmptyResponseError 204", err, err)
				}
			},
		},
		{
			name:  "200 with blank body",
			setup: handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(" \n")) }),
			check: func(t *testing.T, err error) {
				var ee *EmptyResponseError
				if !errors.As(err, &ee) || ee.StatusCode != 200 {
					t.Errorf("err = %v (%T), want *EmptyResponseError 200", err, err)
				}
			},
		},
		{
			name:  "200 not JSON",
			setup: handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hunter2</html>")) }),
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "not JSON") {
					t.Errorf("err = %v, want a not-JSON error", err)
				}
			},
		},
		{
			name:  "500",
			setup: func(v *vaulttest.Server) { v.Fail("secret/x", 500, "internal error") },
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != 500 || !reflect.DeepEqual(se.Errors, []string{"internal error"}) {
					t.Errorf("err = %v (%T), want *StatusError 500", err, err)
				}
			},
		},
		{
			name:  "403 multierror",
			setup: func(v *vaulttest.Server) { v.Fail("secret/x", 403, "1 error occurred:\n\t* permission denied\n\n") },
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != 403 {
					t.Fatalf("err = %v (%T), want *StatusError 403", err, err)
				}
				if !strings.HasSuffix(err.Error(), ": permission denied") || strings.Contains(err.Error(), "occurred") {
					t.Errorf("message %q is not flattened", err)
				}
				if se.Op != "GET secret/x" || !strings.HasPrefix(se.Addr, "http://127.0.0.1") {
					t.Errorf("Op/Addr = %q/%q", se.Op, se.Addr)
				}
			},
		},
		{
			name:  "503 sealed",
			setup: func(v *vaulttest.Server) { v.Fail("", 503, "Vault is sealed") },
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || !se.Sealed() {
					t.Errorf("err = %v, want a sealed StatusError", err)
				}
			},
		},
		{
			name:  "404 without body",
			setup: handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }),
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != 404 {
					t.Errorf("err = %v (%T), want *StatusError 404", err, err)
				}
			},
		},
		{
			name: "response too large",
			setup: handle(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"data":{"k":"`))
				w.Write([]byte(strings.Repeat("a", maxResponseBytes)))
				w.Write([]byte(`"}}`))
			}),
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "larger than 8 MiB") {
					t.Errorf("err = %v, want a too-large error", err)
				}
			},
		},
		{
			name:  "429",
			setup: func(v *vaulttest.Server) { v.Fail("secret/", 429, "request rate limit exceeded") },
			check: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != 429 {
					t.Errorf("err = %v (%T), want *StatusError 429", err, err)
				}
			},
		},
		{
			name:  "connection dropped",
			setup: func(v *vaulttest.Server) { v.CloseConn("secret/x") },
			check: func(t *testing.T, err error) {
				var ue *UnreachableError
				if !errors.As(err, &ue) || ue.Op != "GET secret/x" {
					t.Errorf("err = %v (%T), want *UnreachableError", err, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vaulttest.New(t)
			tt.setup(v)
			c := newClient(t, Options{MaxRetries: 0}, Target{Address: v.URL()})
			resp, err := c.Do(context.Background(), "hvs.tok-7f3a", config.Request{Method: "GET", Path: "secret/x", Query: url.Values{"secret": {"hunter2"}}})
			if err == nil {
				t.Fatalf("Do succeeded with %+v", resp.Secret)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q carries a query value", err)
			}
			if strings.Contains(err.Error(), "hvs.tok-7f3a") {
				t.Errorf("error %q carries the token", err)
			}
			tt.check(t, err)
		})
	}
}

// handle is a setup that lets h answer secret/x.
func handle(h http.HandlerFunc) func(v *vaulttest.Server) {
	return func(v *vaulttest.Server) { v.Handle("secret/x", h) }
}

func TestDoRetries5xx(t *testing.T) {
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.PutKV("secret/x", map[string]any{"k": "v"})
	v.Fail("secret/x", 502).Times(1)
	c := newClient(t, Options{MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond}, Target{Address: v.URL()})
	resp, err := c.Do(context.Background(), "tok", config.Request{Method: "GET", Path: "secret/x"})
	if err != nil {
		t.Fatalf("Do after one 502: %v", err)
	}
	if n := len(v.Calls()); resp.Secret.Data["k"] != "v" || n != 2 {
		t.Errorf("data %v after %d requests, want v after 2", resp.Secret.Data, n)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	return addr
}

func TestDoUnreachable(t *testing.T) {
	addr := closedAddr(t)
	c := newClient(t, Options{MaxRetries: 0}, Target{Address: addr})
	_, err := c.Do(context.Background(), "hvs.tok", config.Request{Method: "GET", Path: "secret/data/app", Query: url.Values{"secret": {"hunter2"}}})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UnreachableError", err, err)
	}
	msg := err.Error()
	for _, leak := range []string{"hunter2", "secret=", "hvs.tok"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q contains %q", msg, leak)
		}
	}
	if ue.Op != "GET secret/data/app" || ue.Addr != addr || !strings.Contains(msg, "cannot reach Vault at "+addr) {
		t.Errorf("UnreachableError = %+v (%q)", ue, msg)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("UnreachableError does not unwrap to the network error: %v", ue.Err)
	}
}

func TestDoUnreachableWithRetries(t *testing.T) {
	addr := closedAddr(t)
	c := newClient(t, Options{MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond}, Target{Address: addr})
	_, err := c.Do(context.Background(), "", config.Request{Method: "GET", Path: "s", Query: url.Values{"secret": {"hunter2"}}})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UnreachableError", err, err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("message %q contains the query", err)
	}
}

func TestDoContextCanceled(t *testing.T) {
	v := vaulttest.New(t)
	c := newClient(t, Options{}, Target{Address: v.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, "", config.Request{Method: "GET", Path: "s", Query: url.Values{"secret": {"hunter2"}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		t.Errorf("a canceled call is reported as unreachable: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("message %q contains the query", err)
	}
}

func TestLogin(t *testing.T) {
	v := vaulttest.New(t)
	v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{"the-jwt"}, TTL: 120 * time.Second})
	c := newClient(t, Options{}, Target{Address: v.URL()})
	tok, err := c.Login(context.Background(), "kubernetes", "app", "the-jwt")
	if err != nil {
		t.Fatal(err)
	}
	issued := v.Logins()
	if len(issued) != 1 || tok.Value != issued[0].Value || tok.Accessor != issued[0].Accessor ||
		tok.TTL != 120*time.Second || !tok.Renewable || tok.IssuedAt.IsZero() {
		t.Errorf("Token = %+v, Vault issued %+v", tok, issued)
	}
	got := last(t, v)
	if got.Method != "POST" || got.Path != "auth/kubernetes/login" {
		t.Errorf("login sent %s %s", got.Method, got.Path)
	}
	if body := got.JSON(); body["role"] != "app" || body["jwt"] != "the-jwt" {
		t.Errorf("login body = %q", got.Body)
	}
	if _, has := got.Header["X-Vault-Token"]; has {
		t.Errorf("login sent a Vault token %q", got.Token)
	}
}

func TestLoginErrors(t *testing.T) {
	v := vaulttest.New(t)
	v.EnableAuth("jwt") // without role "app"
	c := newClient(t, Options{}, Target{Address: v.URL()})

	_, err := c.Login(context.Background(), "jwt", "app", "the-jwt")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || se.Op != "login to auth/jwt" {
		t.Fatalf("err = %v, want StatusError 400 for login to auth/jwt", err)
	}
	if strings.Contains(err.Error(), "the-jwt") {
		t.Errorf("error %q contains the JWT", err)
	}

	v.Handle("auth/jwt/login", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"data":{}}`)) })
	_, err = c.Login(context.Background(), "jwt", "app", "the-jwt")
	if err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Fatalf("err = %v, want a no-token error", err)
	}
}
