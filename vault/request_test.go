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
