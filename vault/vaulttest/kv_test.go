package vaulttest_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestKV(t *testing.T) {
	s := vaulttest.New(t)
	c := client(t, s)
	tok := login(t, s, vaulttest.Role{}).Value

	data := map[string]any{"user": "u", "port": 5432}
	s.PutKV("kv/app", data)
	data["user"] = "changed after Put"
	r1, err := c.Do(ctx, tok, get("kv/app"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Secret.Data["user"] != "u" || r1.Secret.Data["port"] != json.Number("5432") || r1.Secret.LeaseID != "" {
		t.Errorf("KV v1 answer %+v", r1.Secret)
	}
	r2, _ := c.Do(ctx, tok, get("kv/app"))
	if r1.Secret.RequestID == "" || r1.Secret.RequestID == r2.Secret.RequestID {
		t.Errorf("request ids %q, %q: want distinct", r1.Secret.RequestID, r2.Secret.RequestID)
	}

	if v := s.PutKV2("secret/data/app", map[string]any{"pw": "one"}); v != 1 {
		t.Errorf("first version %d", v)
	}
	if v := s.PutKV2("secret/data/app", map[string]any{"pw": "two"}); v != 2 {
		t.Errorf("second version %d", v)
	}
	read := func(version string) (string, json.Number, int) {
		t.Helper()
		req := get("secret/data/app")
		if version != "" {
			req.Query = url.Values{"version": {version}}
		}
		resp, err := c.Do(ctx, tok, req)
		if err != nil {
			return "", "", status(err)
		}
		d := resp.Secret.Data
		pw, _ := d["data"].(map[string]any)["pw"].(string)
		v, _ := d["metadata"].(map[string]any)["version"].(json.Number)
		return pw, v, 0
	}
	for _, tt := range []struct {
		version, pw string
		n           json.Number
		code        int
	}{
		{"", "two", "2", 0}, {"0", "two", "2", 0}, {"1", "one", "1", 0}, {"2", "two", "2", 0},
		{"3", "", "", 404}, {"x", "", "", 400},
	} {
		if pw, n, code := read(tt.version); pw != tt.pw || n != tt.n || code != tt.code {
			t.Errorf("version %q: %q %q %d, want %q %q %d", tt.version, pw, n, code, tt.pw, tt.n, tt.code)
		}
	}
	meta, err := c.Do(ctx, tok, get("secret/metadata/app"))
	if err != nil || meta.Secret.Data["current_version"] != json.Number("2") {
		t.Errorf("metadata %v, %v", meta, err)
	}

	for _, tt := range []struct {
		req  config.Request
		code int
	}{
		{get("secret/data/nope"), 404},
		{get("kv/nope"), 404},
		{get("secret/data"), 404},
		{put("kv/app", map[string]any{"a": "b"}), 405},
	} {
		if _, err := c.Do(ctx, tok, tt.req); status(err) != tt.code {
			t.Errorf("%s %s: %v, want %d", tt.req.Method, tt.req.Path, err, tt.code)
		}
	}
}
