package provider

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// MaxResponseBytes is the driver's default limit on a Mount response
// (--max-call-recv-msg-size, 4 MiB). Larger answers are refused here with a
// message naming the objects, instead of by gRPC with one naming nothing.
const MaxResponseBytes = 4 << 20

// secretSyncWarnBytes is the Kubernetes Secret size limit: above it, syncing
// the objects as a Secret will fail.
const secretSyncWarnBytes = 1 << 20

// maxResponseBytes is the driver's limit on a Mount response.
func (p *Provider) maxResponseBytes() int {
	if p.MaxResponseBytes > 0 {
		return p.MaxResponseBytes
	}
	return MaxResponseBytes
}

func (p *Provider) checkSize(ctx context.Context, resp *pb.MountResponse, total int) error {
	limit := p.maxResponseBytes()
	// Protobuf framing adds a few bytes per file on top of contents and
	// names; estimate generously rather than marshal the response twice.
	size := total
	for _, f := range resp.Files {
		size += len(f.Path) + 16
	}
	for _, v := range resp.ObjectVersion {
		size += len(v.Id) + len(v.Version) + 8
	}
	if size > limit {
		return status.Errorf(codes.ResourceExhausted, "the objects add up to %d bytes, over the driver's %d-byte gRPC limit (%s): mount fewer or smaller objects, or raise the driver's --max-call-recv-msg-size", size, limit, sizes(resp.Files))
	}
	if size > secretSyncWarnBytes {
		klog.FromContext(ctx).Info("Mount response is over 1 MiB: syncing these objects as a Kubernetes Secret will fail", "bytes", size)
	}
	return nil
}

func sizes(files []*pb.File) string {
	s := ""
	for i, f := range files {
		if i == 8 {
			s += fmt.Sprintf(", and %d more", len(files)-i)
			break
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s=%d", f.Path, len(f.Contents))
	}
	return s
}
