// Package driverclient calls a provider exactly as secrets-store-csi-driver
// v1.6.0 does (pkg/secrets-store: PluginClientBuilder and MountContent): the
// same dial options, service config and message limit, the same JSON encoding
// of attributes, secrets and permission, the same checks of the answer, and
// the driver's own fileutil.WritePayloads to write the files. The driver's
// package itself cannot be imported (it pulls in a logging module that is not
// published), so its client half is restated here; keep it in step.
package driverclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// serviceConfig is the driver's provider-client service config.
const serviceConfig = `{
	"methodConfig": [{
		"name": [{"service": "v1alpha1.CSIDriverProvider"}],
		"waitForReady": true,
		"retryPolicy": {
			"MaxAttempts": 3,
			"InitialBackoff": "1s",
			"MaxBackoff": "10s",
			"BackoffMultiplier": 1.1,
			"RetryableStatusCodes": ["UNAVAILABLE"]
		}
	}]
}`

// DefaultMaxRecvMsgSize is the driver's --max-call-recv-msg-size default.
const DefaultMaxRecvMsgSize = 4 << 20

// DefaultPermission is the file mode the driver sends (0644).
const DefaultPermission os.FileMode = 0o644

// Client is a connection to one provider socket.
type Client struct {
	conn *grpc.ClientConn
	pb.CSIDriverProviderClient
}

// Dial connects to the provider's Unix socket the way the driver does.
func Dial(socketPath string) (*Client, error) {
	conn, err := grpc.NewClient("unix:"+socketPath,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(DefaultMaxRecvMsgSize)),
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, CSIDriverProviderClient: pb.NewCSIDriverProviderClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// MountRequest is what the driver's node server assembles for one volume.
type MountRequest struct {
	// Attributes are the SecretProviderClass parameters merged with the
	// pod's volume attributes (and the driver's csi.storage.k8s.io/* keys).
	Attributes map[string]string
	// Secrets are the nodePublishSecretRef contents; nil marshals to null.
	Secrets    map[string]string
	TargetPath string
	Permission os.FileMode
}

// Encode produces the wire request as the driver does.
func (r MountRequest) Encode() (*pb.MountRequest, error) {
	attrs, err := json.Marshal(r.Attributes)
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(r.Secrets)
	if err != nil {
		return nil, err
	}
	perm := r.Permission
	if perm == 0 {
		perm = DefaultPermission
	}
	permission, err := json.Marshal(perm)
	if err != nil {
		return nil, err
	}
	return &pb.MountRequest{
		Attributes: string(attrs),
		Secrets:    string(secrets),
		Permission: string(permission),
		TargetPath: r.TargetPath,
	}, nil
}

// ErrMissingObjectVersions is the driver's refusal of an answer without
// object versions.
var ErrMissingObjectVersions = errors.New("missing object versions")

// Mount calls Mount, checks the answer like the driver and, when it carries
// files, writes them into r.TargetPath with the driver's atomic writer. It
// returns the object versions by ID.
func (c *Client) Mount(ctx context.Context, r MountRequest) (map[string]string, error) {
	req, err := r.Encode()
	if err != nil {
		return nil, err
	}
	resp, err := c.CSIDriverProviderClient.Mount(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.GetError() != nil && len(resp.GetError().Code) > 0 {
		return nil, fmt.Errorf("mount request failed with provider error code %s", resp.GetError().Code)
	}
	ov := resp.GetObjectVersion()
	if ov == nil {
		return nil, ErrMissingObjectVersions
	}
	versions := make(map[string]string, len(ov))
	for _, v := range ov {
		versions[v.Id] = v.Version
	}
	if len(resp.GetFiles()) == 0 {
		return versions, nil
	}
	if err := fileutil.WritePayloads(r.TargetPath, resp.GetFiles()); err != nil {
		return nil, fmt.Errorf("writing files: %w", err)
	}
	return versions, nil
}
