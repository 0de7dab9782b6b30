package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// HealthCheckTimeout bounds one probe's call to the socket.
const HealthCheckTimeout = 2 * time.Second

// HealthPaths are the probe endpoints: /healthz and /readyz, and
// /health/ready, which hashicorp/vault-csi-provider serves and vault-helm's
// liveness and readiness probes call.
var HealthPaths = []string{"/healthz", "/readyz", "/health/ready"}

// HealthOption adds to what NewHealthHandler serves.
type HealthOption func(*http.ServeMux)

// WithPprof serves net/http/pprof's profiles under /debug/pprof/ (-pprof):
// for profiling a provider under load. Off by default: profiles show
// code paths and timings, and a CPU profile costs CPU while it runs.
func WithPprof() HealthOption {
	return func(mux *http.ServeMux) {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

// NewHealthHandler serves the probes (HealthPaths) and /metrics. A probe
// succeeds only when the driver could reach this provider right now: the
// socket path must still be lis's own file, and a fresh connection to it
// must answer Version. A connection kept open across probes would go on
// answering after the file was removed or taken over, while the driver,
// which dials the path, could no longer reach this provider.
func NewHealthHandler(lis *Listener, opts ...HealthOption) http.Handler {
	probe := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HealthCheckTimeout)
		defer cancel()
		v, err := checkSocket(ctx, lis)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s %s\n", v.RuntimeName, v.RuntimeVersion)
	}
	mux := http.NewServeMux()
	for _, p := range HealthPaths {
		mux.HandleFunc(p, probe)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	for _, o := range opts {
		o(mux)
	}
	return mux
}

// checkSocket calls Version over a new connection to lis's path, as the
// driver would, and makes sure the path led to lis before and after the call.
func checkSocket(ctx context.Context, lis *Listener) (*pb.VersionResponse, error) {
	if err := lis.Check(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix:"+lis.Path(),
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("provider socket %s: %w", lis.Path(), err)
	}
	defer conn.Close()
	v, err := pb.NewCSIDriverProviderClient(conn).Version(ctx, &pb.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		return nil, fmt.Errorf("provider socket %s does not answer: %w", lis.Path(), err)
	}
	if err := lis.Check(); err != nil {
		return nil, err
	}
	return v, nil
}
