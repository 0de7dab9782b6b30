package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// wantProbes checks every probe path answers code with a body containing
// each of subs.
func wantProbes(t *testing.T, h http.Handler, code int, subs ...string) {
	t.Helper()
	for _, p := range HealthPaths {
		got, body := get(t, h, p)
		if got != code {
			t.Errorf("%s = %d %q, want %d", p, got, body, code)
		}
		for _, s := range subs {
			if !strings.Contains(body, s) {
				t.Errorf("%s body %q does not contain %q", p, body, s)
			}
		}
	}
}

func TestHealthHandler(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)

	wantProbes(t, h, http.StatusOK, "vault-csi-provider", "1.2.3-test")

	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	if !strings.Contains(body, `vault_csi_provider_grpc_requests_total{code="OK",method="Version"}`) {
		t.Errorf("/metrics lacks the Version request counter:\n%s", body)
	}

	// Stop the gRPC server: the probes now fail.
	r.cancel()
	<-r.exited
	if r.err != nil {
		t.Fatalf("Serve = %v", r.err)
	}
	wantProbes(t, h, http.StatusServiceUnavailable, r.path)
}

// Profiles are served only when asked for (-pprof).
func TestHealthHandlerPprof(t *testing.T) {
	r := start(t, time.Minute)
	if code, _ := get(t, NewHealthHandler(r.lis), "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without WithPprof = %d, want 404", code)
	}
	h := NewHealthHandler(r.lis, WithPprof())
	if code, body := get(t, h, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d %.200q", code, body)
	}
	if code, body := get(t, h, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine = %d %.200q", code, body)
	}
	wantProbes(t, h, http.StatusOK, "vault-csi-provider")
}

func TestHealthHandlerVaultHelmPath(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)
	// vault-helm v0.34.1's liveness and readiness probes.
	if code, body := get(t, h, "/health/ready"); code != http.StatusOK || !strings.Contains(body, "ok vault-csi-provider") {
		t.Errorf("/health/ready = %d %q", code, body)
	}
	if code, _ := get(t, h, "/health/live"); code != http.StatusNotFound {
		t.Errorf("/health/live = %d, want 404 (not a probe path)", code)
	}
}

// The socket file removed while the server still listens (a cleaned
// hostPath): the driver can no longer connect, so the probes must fail,
// although a connection opened before the removal still works.
func TestHealthHandlerSocketRemoved(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)
	wantProbes(t, h, http.StatusOK)
	if _, err := r.client.Version(callCtx(t), &pb.VersionRequest{}); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(r.path); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("unix", r.path); err == nil {
		c.Close()
		t.Fatal("the removed socket still accepts connections by path")
	}
	if _, err := r.client.Version(callCtx(t), &pb.VersionRequest{}); err != nil {
		t.Fatalf("the connection opened before the removal failed (%v): the test no longer shows why probes must dial afresh", err)
	}
	wantProbes(t, h, http.StatusServiceUnavailable, r.path, "no longer exists", "driver cannot connect")
}

// Another provider took over the path: it answers Version, but not for us.
func TestHealthHandlerSocketReplaced(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)
	wantProbes(t, h, http.StatusOK)

	if err := os.Remove(r.path); err != nil {
		t.Fatal(err)
	}
	other, err := Listen(r.path)
	if err != nil {
		t.Fatal(err)
	}
	gs := NewGRPC(&mounter{}, "impostor", Options{})
	go func() { _ = gs.Serve(other) }()
	defer gs.Stop()

	// The path now answers, for the other server.
	conn, err := grpc.NewClient("unix:"+r.path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v, err := pb.NewCSIDriverProviderClient(conn).Version(callCtx(t), &pb.VersionRequest{})
	if err != nil || v.RuntimeVersion != "impostor" {
		t.Fatalf("the replacing server answered %v, %v", v, err)
	}

	wantProbes(t, h, http.StatusServiceUnavailable, r.path, "no longer the socket this provider listens on")

	// Stopping this provider must leave the other one's socket in place.
	r.cancel()
	<-r.exited
	if _, err := os.Lstat(r.path); err != nil {
		t.Fatalf("shutting down removed the other provider's socket: %v", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// Each probe dials the socket: the connections (both ends, as this process
// is client and server) and their goroutines must go away.
func TestHealthProbesDoNotLeak(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)
	wantProbes(t, h, http.StatusOK) // first use sets up what stays (metrics, pollers)
	time.Sleep(100 * time.Millisecond)
	fds, goroutines := openFDs(t), runtime.NumGoroutine()

	const probes = 300
	for i := 0; i < probes; i++ {
		if code, body := get(t, h, "/readyz"); code != http.StatusOK {
			t.Fatalf("probe %d = %d %q", i, code, body)
		}
	}

	// The server side of each connection closes when it sees EOF, shortly
	// after the probe returned.
	const slack = 3
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, g := openFDs(t), runtime.NumGoroutine()
		if f <= fds+slack && g <= goroutines+slack {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d probes: %d open file descriptors (was %d), %d goroutines (was %d)", probes, f, fds, g, goroutines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthProbeTimesOut(t *testing.T) {
	// A socket that accepts but never speaks gRPC: the probe gives up within
	// its timeout instead of hanging the kubelet's request.
	path := shortDir(t) + "/p.sock"
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := checkSocket(ctx, lis); err == nil {
		t.Fatal("a silent socket passed the probe")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("probe took %v", took)
	}
}

func TestMetricsCountCodes(t *testing.T) {
	r := start(t, time.Minute)
	h := NewHealthHandler(r.lis)
	_, _ = r.client.Mount(callCtx(t), &pb.MountRequest{Attributes: "panic"})
	_, body := get(t, h, "/metrics")
	if !strings.Contains(body, `vault_csi_provider_grpc_requests_total{code="Internal",method="Mount"}`) {
		t.Errorf("/metrics lacks the Internal Mount counter")
	}
	if !strings.Contains(body, `vault_csi_provider_grpc_request_duration_seconds_count{method="Mount"}`) {
		t.Errorf("/metrics lacks the Mount duration histogram")
	}
}
