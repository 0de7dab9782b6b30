package server

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// shortDir returns a temporary directory with a short path: Unix socket
// paths are limited to about 108 bytes, which t.TempDir() can exceed.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vcp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestSocketPath(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "unix:///var/run/vault.sock", want: "/var/run/vault.sock"},
		{in: "unix:/var/run/vault.sock", want: "/var/run/vault.sock"},
		{in: "/var/run/vault.sock", want: "/var/run/vault.sock"},
		{in: "/var/run//x/../vault.sock", want: "/var/run/vault.sock"},
		{in: "unix:///var/run/dir/", want: "/var/run/dir"},
		{in: "", wantErr: true},
		{in: "unix://", wantErr: true},
		{in: "unix:", wantErr: true},
		{in: "vault.sock", wantErr: true},
		{in: "unix://vault.sock", wantErr: true},
		{in: "./vault.sock", wantErr: true},
		{in: "tcp://127.0.0.1:80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SocketPath(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("SocketPath(%q) = %q, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SocketPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func currentUmask() int {
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	return old
}

func TestListenMode(t *testing.T) {
	path := filepath.Join(shortDir(t), "sub", "p.sock")
	umask := currentUmask()
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if got := currentUmask(); got != umask {
		t.Errorf("Listen left the umask at %#o, was %#o", got, umask)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %#o, want 0600", perm)
	}
	// It accepts connections.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the socket: %v", err)
	}
	c.Close()
}

func TestListenRemovesStaleSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("stale socket still answers")
	}
	lis, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer lis.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the new socket: %v", err)
	}
	c.Close()
}

func TestListenRefusesRegularFile(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o640); err != nil {
		t.Fatal(err)
	}
	lis, err := Listen(path)
	if err == nil {
		lis.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("error %q does not say the file is not a socket", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "precious" {
		t.Errorf("file now holds %q (%v), want it intact", b, err)
	}
}

func TestListenRefusesDirectory(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if lis, err := Listen(path); err == nil {
		lis.Close()
		t.Fatal("Listen replaced a directory")
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("directory gone: %v", err)
	}
}

// mounter is a test Mounter: it panics when asked to, and can block until
// released.
type mounter struct {
	started chan struct{} // receives once per blocking Mount
	release chan struct{}
}

func (m *mounter) Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error) {
	switch req.GetAttributes() {
	case "panic":
		panic("boom")
	case "block":
		m.started <- struct{}{}
		select {
		case <-m.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &pb.MountResponse{Files: []*pb.File{{Path: "f", Contents: []byte(req.GetAttributes())}}}, nil
}

type running struct {
	path   string
	lis    *Listener
	cancel context.CancelFunc
	exited chan struct{} // closed when Serve has returned
	err    error         // what Serve returned; read after exited
	client pb.CSIDriverProviderClient
	m      *mounter
}

func start(t *testing.T, grace time.Duration) *running {
	t.Helper()
	path := filepath.Join(shortDir(t), "p.sock")
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &mounter{started: make(chan struct{}, 1), release: make(chan struct{})}
	gs := NewGRPC(m, "1.2.3-test", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{path: path, lis: lis, cancel: cancel, exited: make(chan struct{}), m: m}
	go func() {
		r.err = Serve(ctx, gs, lis, grace)
		close(r.exited)
	}()
	conn, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.client = pb.NewCSIDriverProviderClient(conn)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return r
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestVersion(t *testing.T) {
	r := start(t, time.Minute)
	v, err := r.client.Version(callCtx(t), &pb.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "vault-csi-provider" || v.RuntimeVersion != "1.2.3-test" || v.Version != "v1alpha1" {
		t.Errorf("Version = %+v", v)
	}
}

func TestPanicIsInternalAndServerSurvives(t *testing.T) {
	r := start(t, time.Minute)
	_, err := r.client.Mount(callCtx(t), &pb.MountRequest{Attributes: "panic"})
	if status.Code(err) != codes.Internal {
		t.Fatalf("Mount with a panicking Mounter = %v, want Internal", err)
	}
	if !strings.Contains(status.Convert(err).Message(), "boom") {
		t.Errorf("message %q does not carry the panic value", status.Convert(err).Message())
	}
	resp, err := r.client.Mount(callCtx(t), &pb.MountRequest{Attributes: "ok"})
	if err != nil {
		t.Fatalf("Mount after a panic: %v", err)
	}
	if len(resp.Files) != 1 || string(resp.Files[0].Contents) != "ok" {
		t.Errorf("Mount after a panic = %+v", resp)
	}
}

// waitGone waits until the socket file is removed, which GracefulStop does
// first when it closes the listener.
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s still exists after shutdown began", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGracefulShutdownFinishesInFlightMount(t *testing.T) {
	r := start(t, 5*time.Minute)
	type result struct {
		resp *pb.MountResponse
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := r.client.Mount(callCtx(t), &pb.MountRequest{Attributes: "block"})
		res <- result{resp, err}
	}()
	<-r.m.started
	r.cancel()
	// Shutdown has begun (the listener is closed) while the Mount is in
	// flight; neither Serve nor the Mount may have returned yet.
	waitGone(t, r.path)
	select {
	case <-r.exited:
		t.Fatalf("Serve returned (%v) with a Mount in flight", r.err)
	case got := <-res:
		t.Fatalf("in-flight Mount returned early: %+v, %v", got.resp, got.err)
	default:
	}
	close(r.m.release)
	got := <-res
	if got.err != nil {
		t.Fatalf("in-flight Mount failed: %v", got.err)
	}
	if len(got.resp.Files) != 1 || string(got.resp.Files[0].Contents) != "block" {
		t.Errorf("in-flight Mount = %+v", got.resp)
	}
	<-r.exited
	if r.err != nil {
		t.Errorf("Serve = %v, want nil", r.err)
	}
}

func TestShutdownGraceCutsOff(t *testing.T) {
	r := start(t, 10*time.Millisecond)
	res := make(chan error, 1)
	go func() {
		_, err := r.client.Mount(callCtx(t), &pb.MountRequest{Attributes: "block"})
		res <- err
	}()
	<-r.m.started
	r.cancel()
	// The Mounter is never released: Serve must return after the grace
	// period by cutting the Mount off.
	<-r.exited
	if r.err != nil {
		t.Errorf("Serve = %v, want nil", r.err)
	}
	if err := <-res; err == nil {
		t.Error("cut-off Mount succeeded")
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
	gs := NewGRPC(&mounter{}, "x", Options{})
	if err := Serve(context.Background(), gs, lis, time.Second); err == nil {
		t.Error("Serve on a closed listener returned nil")
	}
}
