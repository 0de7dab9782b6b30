package vaulttest_test

import (
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestPKIIssue(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	tok := login(t, s, vaulttest.Role{}).Value
	s.SetPKIRole("web", vaulttest.PKIRole{TTL: time.Hour, MaxTTL: 2 * time.Hour, Allow: func(cn string) bool { return strings.HasSuffix(cn, ".example.com") }})
	s.Clock().Advance(time.Minute)
	issue := func(method string, body map[string]any) (map[string]any, error) {
		req := put("pki/issue/web", body)
		req.Method = method
		resp, err := c.Do(ctx, tok, req)
		if err != nil {
			return nil, err
		}
		if resp.Secret.LeaseID != "" || resp.Secret.LeaseDuration != 0 {
			t.Errorf("a certificate with a lease: %+v", resp.Secret)
		}
		return resp.Secret.Data, nil
	}
	expiration := func(d map[string]any) time.Time {
		n, _ := d["expiration"].(json.Number).Int64()
		return time.Unix(n, 0)
	}
	start := vaulttest.Epoch.Add(time.Minute)

	d1, err := issue("PUT", map[string]any{"common_name": "a.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"certificate", "private_key", "issuing_ca"} {
		if b, _ := pem.Decode([]byte(d1[k].(string))); b == nil {
			t.Errorf("%s is no PEM: %q", k, d1[k])
		}
	}
	if !expiration(d1).Equal(start.Add(time.Hour)) || d1["serial_number"] == "" {
		t.Errorf("expiration %v, serial %v", expiration(d1), d1["serial_number"])
	}
	d2, err := issue("POST", map[string]any{"common_name": "a.example.com", "ttl": "90m"})
	if err != nil || !expiration(d2).Equal(start.Add(90*time.Minute)) || d2["serial_number"] == d1["serial_number"] {
		t.Errorf("second certificate %v, %v", d2, err)
	}
	if d, err := issue("PUT", map[string]any{"common_name": "a.example.com", "ttl": 86400}); err != nil || !expiration(d).Equal(start.Add(2*time.Hour)) {
		t.Errorf("ttl over the max: %v, %v", d, err)
	}

	_, err = issue("PUT", map[string]any{"common_name": "evil.example.org"})
	if status(err) != 400 || !strings.Contains(err.Error(), "common name <redacted> not allowed by this role") {
		t.Errorf("refused name: %v, want 400 with the name redacted by the client", err)
	}
	if _, err := issue("PUT", map[string]any{}); status(err) != 400 {
		t.Errorf("no common_name: %v, want 400", err)
	}
	if _, err := c.Do(ctx, tok, config.Request{Method: "GET", Path: "pki/issue/web"}); status(err) != 405 {
		t.Errorf("GET pki/issue: %v, want 405", err)
	}
}
