package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// HealthCheckTimeout bounds one probe's call to the socket.
const HealthCheckTimeout = 2 * time.Second

// NewHealthHandler serves /healthz and /readyz, which call Version over the
// provider's own socket (so they fail when the socket is gone or the server
// is wedged, which a static 200 would hide), and /metrics.
func NewHealthHandler(socketPath string) (http.Handler, func() error, error) {
	conn, err := grpc.NewClient("unix:"+socketPath,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	client := pb.NewCSIDriverProviderClient(conn)
	probe := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HealthCheckTimeout)
		defer cancel()
		v, err := client.Version(ctx, &pb.VersionRequest{Version: "v1alpha1"})
		if err != nil {
			http.Error(w, fmt.Sprintf("provider socket %s does not answer: %v", socketPath, err), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s %s\n", v.RuntimeName, v.RuntimeVersion)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", probe)
	mux.HandleFunc("/readyz", probe)
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	return mux, conn.Close, nil
}
