package vaulttest_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestDatabaseCreds(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	tok := login(t, s, vaulttest.Role{}).Value

	r1, err := c.Do(ctx, tok, get("database/creds/app"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Do(ctx, tok, get("database/creds/app"))
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := r1.Secret, r2.Secret
	if s1.Data["username"] != "v-app-1" || s1.Data["password"] != "p-app-1" || s2.Data["username"] != "v-app-2" {
		t.Errorf("credentials %v then %v", s1.Data, s2.Data)
	}
	if s1.LeaseID == "" || s1.LeaseID == s2.LeaseID || s1.LeaseDuration != 3600 || !s1.Renewable {
		t.Errorf("lease %q %d %v, then %q", s1.LeaseID, s1.LeaseDuration, s1.Renewable, s2.LeaseID)
	}
	l, ok := s.Lease(s1.LeaseID)
	if !ok || !l.Live || l.Token != tok || l.Path != "database/creds/app" || l.Data["username"] != "v-app-1" {
		t.Errorf("Lease() = %+v, %v", l, ok)
	}
	if ls := s.Leases(); len(ls) != 2 || ls[1].ID != s2.LeaseID {
		t.Errorf("Leases() = %+v", ls)
	}
	if _, err := c.Do(ctx, tok, config.Request{Method: "POST", Path: "database/creds/app"}); status(err) != 405 {
		t.Errorf("POST database/creds: %v, want 405", err)
	}
}

// sys/leases/renew grants what is asked (or the role's TTL) up to the max
// TTL, on the server's clock; sys/leases/lookup shows it.
func TestLeaseRenewal(t *testing.T) {
	s := vaulttest.New(t)
	c, clk := client(t, s), s.Clock()
	tok := login(t, s, vaulttest.Role{}).Value
	s.SetDatabaseRole("short", vaulttest.DatabaseRole{TTL: 100 * time.Second, MaxTTL: 250 * time.Second})
	resp, err := c.Do(ctx, tok, get("database/creds/short"))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Secret.LeaseID
	if resp.Secret.LeaseDuration != 100 {
		t.Errorf("lease_duration %d, want 100", resp.Secret.LeaseDuration)
	}

	clk.Advance(90 * time.Second)
	l, err := c.RenewLease(ctx, tok, id, 0)
	if err != nil || l.ID != id || l.Duration != 100*time.Second || !l.Renewable {
		t.Fatalf("renewal at 90s: %+v, %v; want the role's 100s", l, err)
	}
	lookup, err := c.Do(ctx, tok, put("sys/leases/lookup", map[string]any{"lease_id": id}))
	if err != nil {
		t.Fatal(err)
	}
	if d := lookup.Secret.Data; d["ttl"] != json.Number("100") || d["last_renewal"] == nil || d["id"] != id {
		t.Errorf("lookup %v", d)
	}
	clk.Advance(90 * time.Second)
	if l, err := c.RenewLease(ctx, tok, id, time.Hour); err != nil || l.Duration != 70*time.Second {
		t.Fatalf("renewal at 180s: %+v, %v; want the 70s left to the max TTL", l, err)
	}
	clk.Advance(69 * time.Second)
	if info, _ := s.Lease(id); !info.Live {
		t.Errorf("lease dead before its max TTL: %+v", info)
	}
	clk.Advance(time.Second)
	if info, _ := s.Lease(id); info.Live {
		t.Errorf("lease alive past its max TTL: %+v", info)
	}
	if _, err := c.RenewLease(ctx, tok, id, time.Hour); status(err) != 400 {
		t.Errorf("renewing an expired lease: %v, want 400", err)
	}
	if _, err := c.Do(ctx, tok, put("sys/leases/lookup", map[string]any{"lease_id": id})); status(err) != 400 {
		t.Errorf("looking up an expired lease: %v, want 400", err)
	}
}

func TestLeaseRenewalRefused(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	tok := login(t, s, vaulttest.Role{}).Value
	s.SetDatabaseRole("fixed", vaulttest.DatabaseRole{NonRenewable: true})
	s.SetDatabaseRole("capped", vaulttest.DatabaseRole{RenewTTL: 10 * time.Second})
	lease := func(role string) string {
		t.Helper()
		resp, err := c.Do(ctx, tok, get("database/creds/"+role))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Secret.LeaseID
	}
	if _, err := c.RenewLease(ctx, tok, lease("fixed"), time.Hour); status(err) != 400 {
		t.Errorf("renewing a non-renewable lease: %v, want 400", err)
	}
	if l, err := c.RenewLease(ctx, tok, lease("capped"), time.Hour); err != nil || l.Duration != 10*time.Second {
		t.Errorf("renewal with RenewTTL 10s: %+v, %v", l, err)
	}
	revoked := lease("app")
	s.RevokeLease(revoked)
	if _, err := c.RenewLease(ctx, tok, revoked, time.Hour); status(err) != 400 {
		t.Errorf("renewing a revoked lease: %v, want 400", err)
	}
	if l, _ := s.Lease(revoked); !l.Revoked || l.Live {
		t.Errorf("revoked lease %+v", l)
	}
	if _, err := c.RenewLease(ctx, tok, "database/creds/app/nope", time.Hour); status(err) != 400 {
		t.Errorf("renewing an unknown lease: %v, want 400", err)
	}
}
