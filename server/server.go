// Package server exposes a provider on the driver's Unix socket: socket set-up,
// gRPC registration, interceptors (panic recovery, logging, metrics), the
// health and metrics HTTP endpoints, and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// Mounter is the provider behind the socket.
type Mounter interface {
	Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error)
}

// RuntimeName is reported by Version.
const RuntimeName = "vault-csi-provider"

// SocketPath accepts "unix:///path/vault.sock", "unix:/path" or a plain path.
func SocketPath(endpoint string) (string, error) {
	p := strings.TrimPrefix(endpoint, "unix://")
	p = strings.TrimPrefix(p, "unix:")
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("endpoint %q must be an absolute Unix socket path", endpoint)
	}
	return filepath.Clean(p), nil
}

// Listen creates the Unix socket at path, readable and writable by the owner
// only (the driver runs as root). A stale socket from a previous run is
// removed; any other file at path is left alone and is an error. The
// Listener remembers the file it created (see Listener.Check).
func Listen(path string) (*Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 from birth: there is no window in
	// which another user could connect before a chmod.
	old := syscall.Umask(0o177)
	lis, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return newListener(lis.(*net.UnixListener), path)
}

// Options tune the gRPC server. A field below 1 takes its default.
type Options struct {
	MaxConcurrentMounts       int // -max-concurrent-mounts
	MaxConcurrentMountsPerPod int // -max-concurrent-mounts-per-pod
	MaxQueuedMounts           int // -max-queued-mounts
}

func orDefault(v, def int) int {
	if v < 1 {
		return def
	}
	return v
}

// NewGRPC returns a gRPC server serving m as the v1alpha1 provider, with
// Mounts admitted as o bounds them.
func NewGRPC(m Mounter, runtimeVersion string, o Options) *grpc.Server {
	s, _ := newGRPC(m, runtimeVersion, o)
	return s
}

// newGRPC also returns the admission state, for tests.
func newGRPC(m Mounter, runtimeVersion string, o Options) (*grpc.Server, *admission) {
	adm := newAdmission(
		orDefault(o.MaxConcurrentMounts, DefaultMaxConcurrentMounts),
		orDefault(o.MaxConcurrentMountsPerPod, DefaultMaxConcurrentMountsPerPod),
		orDefault(o.MaxQueuedMounts, DefaultMaxQueuedMounts))
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(observe, recoverPanics))
	pb.RegisterCSIDriverProviderServer(s, &service{m: m, version: runtimeVersion, adm: adm})
	return s, adm
}

type service struct {
	pb.UnimplementedCSIDriverProviderServer
	m       Mounter
	version string
	adm     *admission // Mounts only: Version (the health probes) never waits
}

func (s *service) Version(context.Context, *pb.VersionRequest) (*pb.VersionResponse, error) {
	return &pb.VersionResponse{Version: "v1alpha1", RuntimeName: RuntimeName, RuntimeVersion: s.version}, nil
}

func (s *service) Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error) {
	release, err := s.adm.acquire(ctx, podUID(req.GetAttributes()))
	if err != nil {
		return nil, err
	}
	defer release()
	return s.m.Mount(ctx, req)
}

// recoverPanics turns a panic in a handler into Internal, so one bad request
// cannot take the node's provider (and every pod mount on it) down.
func recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			klog.FromContext(ctx).Error(fmt.Errorf("panic: %v", r), "Recovered from a panic in a handler", "method", info.FullMethod, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "internal error in the vault provider (see its logs): %v", r)
		}
	}()
	return handler(ctx, req)
}

// observe logs and measures each call. It logs the error message (which
// never holds secret values) and nothing of the request.
func observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	start := time.Now()
	logger := klog.FromContext(ctx).WithValues("method", method)
	resp, err := handler(klog.NewContext(ctx, logger), req)
	took := time.Since(start)
	code := status.Code(err)
	metrics.GRPCRequests.WithLabelValues(method, code.String()).Inc()
	metrics.GRPCDuration.WithLabelValues(method).Observe(took.Seconds())
	if err != nil {
		logger.Error(err, "Request failed", "code", code.String(), "took", took)
	} else if v := logger.V(3); v.Enabled() { // guarded: took would be boxed on every call
		v.Info("Request served", "took", took)
	}
	return resp, err
}

// Serve serves s on lis until ctx is done, then stops gracefully: in-flight
// Mounts get up to grace to finish before they are cut off. The socket file
// is removed on return.
func Serve(ctx context.Context, s *grpc.Server, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	klog.InfoS("Shutting down: finishing in-flight requests", "grace", grace)
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		klog.InfoS("Grace period over: cutting off remaining requests")
		s.Stop()
	}
	<-errc
	return nil
}
