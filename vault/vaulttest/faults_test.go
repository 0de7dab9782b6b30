package vaulttest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// seeded is a server with a login and two KV secrets, and a token.
func seeded(t *testing.T) (*vaulttest.Server, *vault.Client, string) {
	t.Helper()
	s := vaulttest.New(t)
	tok := login(t, s, vaulttest.Role{}).Value
	s.PutKV("kv/a", map[string]any{"k": "a"})
	s.PutKV("kv/b", map[string]any{"k": "b"})
	return s, client(t, s), tok
}

func TestFail(t *testing.T) {
	s, c, tok := seeded(t)
	sealed := s.Fail("", 503, "Vault is sealed")
	_, err := c.Do(ctx, tok, get("kv/a"))
	var se *vault.StatusError
	if !errors.As(err, &se) || !se.Sealed() {
		t.Errorf("sealed server: %v", err)
	}
	if _, err := c.Login(ctx, "jwt", "app", "x"); status(err) != 503 {
		t.Errorf("login at a sealed server: %v, want 503", err)
	}
	sealed.Remove()

	s.Fail("kv/a", 429, "rate limited")
	if _, err := c.Do(ctx, tok, get("kv/a")); status(err) != 429 || !strings.Contains(err.Error(), "rate limited") {
		t.Errorf("kv/a: %v, want 429", err)
	}
	if _, err := c.Do(ctx, tok, get("kv/b")); err != nil {
		t.Errorf("kv/b, outside the gate: %v", err)
	}
	if n := s.Count("GET", "kv/a"); n != 2 {
		t.Errorf("%d calls to kv/a logged, want 2 (failed ones count)", n)
	}
}

// Times(1) fails once: the client's retry then succeeds.
func TestFailTimes(t *testing.T) {
	s, _, tok := seeded(t)
	s.Fail("kv/a", 502).Times(1)
	c := clientWith(t, s, vault.Options{MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
	if _, err := c.Do(ctx, tok, get("kv/a")); err != nil {
		t.Fatalf("after one 502 and a retry: %v", err)
	}
	if n := s.Count("GET", "kv/a"); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
	s.Fail("kv/", 500).Times(0)
	if _, err := c.Do(ctx, tok, get("kv/b")); err != nil {
		t.Errorf("Times(0) gate answered: %v", err)
	}
}

func TestHold(t *testing.T) {
	s, c, tok := seeded(t)
	release := s.Hold("kv/a")
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, tok, get("kv/a"))
		done <- err
	}()
	vaulttest.Eventually(t, "the read to arrive", func() bool { return s.InFlight() == 1 })
	if _, err := c.Do(ctx, tok, get("kv/b")); err != nil {
		t.Errorf("kv/b, outside the hold: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("held read returned before release: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	release()
	if err := <-done; err != nil {
		t.Errorf("released read: %v", err)
	}
	if _, err := c.Do(ctx, tok, get("kv/a")); err != nil {
		t.Errorf("read after release: %v", err)
	}
}

// A held request ends with the client's context; nothing is left in flight.
func TestHoldClientGivesUp(t *testing.T) {
	s, c, tok := seeded(t)
	s.Hold("kv/a")
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(cctx, tok, get("kv/a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held read with a deadline: %v, want DeadlineExceeded", err)
	}
	vaulttest.Eventually(t, "the held request to end", func() bool { return s.InFlight() == 0 })
}

// Closing the server ends held requests (so a forgotten release does not
// hang the test's cleanup).
func TestHoldEndsOnClose(t *testing.T) {
	s, c, tok := seeded(t)
	s.Hold("")
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, tok, get("kv/a"))
		done <- err
	}()
	vaulttest.Eventually(t, "the read to arrive", func() bool { return s.InFlight() == 1 })
	s.Close()
	if err := <-done; err == nil {
		t.Error("held read succeeded after Close")
	}
	var ue *vault.UnreachableError
	if _, err := c.Do(ctx, tok, get("kv/a")); !errors.As(err, &ue) {
		t.Errorf("read after Close: %v, want UnreachableError", err)
	}
}

func TestDelay(t *testing.T) {
	s, c, tok := seeded(t)
	g := s.Delay("kv/", time.Hour)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(cctx, tok, get("kv/a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read delayed an hour: %v, want DeadlineExceeded", err)
	}
	g.Remove()
	s.Delay("kv/", 30*time.Millisecond)
	start := time.Now()
	if _, err := c.Do(ctx, tok, get("kv/a")); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("read delayed 30ms: %v after %v", err, time.Since(start))
	}
}

func TestCloseConn(t *testing.T) {
	s, c, tok := seeded(t)
	s.CloseConn("kv/a")
	_, err := c.Do(ctx, tok, get("kv/a"))
	var ue *vault.UnreachableError
	if !errors.As(err, &ue) {
		t.Errorf("dropped connection: %v (%T), want UnreachableError", err, err)
	}
	if _, err := c.Do(ctx, tok, get("kv/b")); err != nil {
		t.Errorf("kv/b: %v", err)
	}
}

// A standby redirects to the active node; the client follows where its
// policy allows.
func TestRedirect(t *testing.T) {
	active := vaulttest.New(t, vaulttest.AnyToken())
	active.PutKV("kv/a", map[string]any{"k": "from active"})
	standby := vaulttest.New(t)
	standby.Redirect("", active.URL())
	toActive := vault.WithPolicy(ctx, vault.Policy{Redirect: func(_, origin string) (config.TLS, bool) {
		return config.TLS{}, origin == config.Origin(active.URL())
	}})
	resp, err := client(t, standby).Do(toActive, "hvs.x", get("kv/a"))
	if err != nil || resp.Secret.Data["k"] != "from active" {
		t.Fatalf("read through the standby: %v, %v", resp, err)
	}
	if standby.Count("GET", "kv/a") != 1 || active.Count("GET", "kv/a") != 1 {
		t.Errorf("standby saw %d, active %d; want 1 each", standby.Count("GET", "kv/a"), active.Count("GET", "kv/a"))
	}
	if got := active.Calls()[0].Token; got != "hvs.x" {
		t.Errorf("active got token %q", got)
	}
}

func TestHandle(t *testing.T) {
	s, c, tok := seeded(t)
	s.Handle("kv/a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>not vault</html>"))
	})
	if _, err := c.Do(ctx, tok, get("kv/a")); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("HTML answer: %v, want a not-JSON error", err)
	}
	// Gates apply in order: a delay, then the handler.
	s.Delay("pki/", time.Millisecond)
	s.Handle("pki/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	var ee *vault.EmptyResponseError
	if _, err := c.Do(ctx, tok, put("pki/issue/x", map[string]any{"common_name": "a"})); !errors.As(err, &ee) {
		t.Errorf("204: %v, want EmptyResponseError", err)
	}
}
