package vault

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Lease is the state of a renewed lease.
type Lease struct {
	ID        string
	Duration  time.Duration
	Renewable bool
}

// RenewLease extends a secret's lease by increment (Vault may grant less).
func (c *Client) RenewLease(ctx context.Context, token, leaseID string, increment time.Duration) (*Lease, error) {
	body, _ := json.Marshal(map[string]any{"lease_id": leaseID, "increment": int64(increment / time.Second)})
	req := c.api.NewRequest(http.MethodPut, "/v1/sys/leases/renew")
	req.ClientToken = token
	req.BodyBytes = body
	resp, err := c.send(ctx, "renew-lease", "renew lease", req)
	if err != nil {
		return nil, err
	}
	return &Lease{
		ID:        resp.Secret.LeaseID,
		Duration:  time.Duration(resp.Secret.LeaseDuration) * time.Second,
		Renewable: resp.Secret.Renewable,
	}, nil
}
