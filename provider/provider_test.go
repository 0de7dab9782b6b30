package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

func TestCheckSize(t *testing.T) {
	files := func(sizes ...int) *pb.MountResponse {
		r := &pb.MountResponse{}
		for i, n := range sizes {
			name := fmt.Sprintf("f%d", i)
			r.Files = append(r.Files, &pb.File{Path: name, Contents: make([]byte, n)})
			r.ObjectVersion = append(r.ObjectVersion, &pb.ObjectVersion{Id: name, Version: "v"})
		}
		return r
	}
	total := func(r *pb.MountResponse) int {
		n := 0
		for _, f := range r.Files {
			n += len(f.Contents)
		}
		return n
	}
	tests := []struct {
		name    string
		limit   int
		resp    *pb.MountResponse
		wantErr bool
		wantMsg []string
	}{
		{name: "under limit", limit: 1000, resp: files(100, 200)},
		{name: "over limit names files and sizes", limit: 100, resp: files(60, 50), wantErr: true, wantMsg: []string{"f0=60", "f1=50", "100-byte"}},
		{name: "contents alone under, with framing over", limit: 110, resp: files(60, 50), wantErr: true},
		{name: "default limit accepts small", limit: 0, resp: files(1000)},
		{name: "default limit refuses over 4 MiB", limit: 0, resp: files(MaxResponseBytes), wantErr: true, wantMsg: []string{fmt.Sprintf("%d-byte", MaxResponseBytes), fmt.Sprintf("f0=%d", MaxResponseBytes)}},
		{name: "many files are summarized", limit: 10, resp: files(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), wantErr: true, wantMsg: []string{"f7=1", "and 2 more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Provider{MaxResponseBytes: tt.limit}
			err := p.checkSize(context.Background(), tt.resp, total(tt.resp))
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("checkSize = %v, want nil", err)
				}
				return
			}
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("checkSize = %v, want ResourceExhausted", err)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "f8=") {
				t.Errorf("message %q lists more than 8 files", err)
			}
		})
	}
}

// fakeVault is a minimal Vault: kubernetes login, a KV v2 secret, a
// dynamic credential, a forbidden path and a value that is not hex.
type fakeVault struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
	creds int
	// kv are further KV v1 secrets by API path ("/v1/kv/x"), set by tests.
	kv map[string]map[string]any
}

// setKV stores a KV v1 secret the fake serves at /v1/<path>.
func (fv *fakeVault) setKV(path string, data map[string]any) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	if fv.kv == nil {
		fv.kv = map[string]map[string]any{}
	}
	fv.kv["/v1/"+path] = data
}

const (
	podJWT     = "pod-jwt"
	vaultToken = "hvs.pod-token"
)

func newFakeVault(t *testing.T) *fakeVault {
	t.Helper()
	fv := &fakeVault{calls: map[string]int{}}
	fv.Server = httptest.NewServer(http.HandlerFunc(fv.serve))
	t.Cleanup(fv.Close)
	return fv
}

func (fv *fakeVault) count(key string) int {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	return fv.calls[key]
}

func (fv *fakeVault) total() int {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	n := 0
	for _, c := range fv.calls {
		n += c
	}
	return n
}

func (fv *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	fv.mu.Lock()
	fv.calls[r.Method+" "+r.URL.Path]++
	fv.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	denied := map[string]any{"errors": []string{"1 error occurred:\n\t* permission denied\n\n"}}
	if r.URL.Path == "/v1/auth/kubernetes/login" {
		var body struct{ Role, JWT string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.JWT != podJWT || body.Role != "app" {
			reply(http.StatusForbidden, denied)
			return
		}
		reply(200, map[string]any{"auth": map[string]any{"client_token": vaultToken, "accessor": "acc", "lease_duration": 300, "renewable": true}})
		return
	}
	if r.Header.Get("X-Vault-Token") != vaultToken {
		reply(http.StatusForbidden, denied)
		return
	}
	switch r.URL.Path {
	case "/v1/secret/data/app":
		reply(200, map[string]any{
			"request_id": fmt.Sprintf("req-%d", fv.count("GET /v1/secret/data/app")),
			"data": map[string]any{
				"data":     map[string]any{"username": "app-user", "port": 5432},
				"metadata": map[string]any{"version": 1, "created_time": "2024-01-01T00:00:00Z"},
			},
		})
	case "/v1/database/creds/r":
		fv.mu.Lock()
		fv.creds++
		n := fv.creds
		fv.mu.Unlock()
		reply(200, map[string]any{
			"lease_id":       fmt.Sprintf("database/creds/r/%d", n),
			"lease_duration": 3600,
			"data":           map[string]any{"username": fmt.Sprintf("v-%d", n), "password": fmt.Sprintf("p-%d", n)},
		})
	case "/v1/hexbad":
		reply(200, map[string]any{"data": map[string]any{"k": "s3cr3tZZ"}})
	default:
		fv.mu.Lock()
		data, ok := fv.kv[r.URL.Path]
		fv.mu.Unlock()
		if ok {
			reply(200, map[string]any{"request_id": "r", "data": data})
			return
		}
		reply(http.StatusForbidden, denied)
	}
}

type failingKeys struct{}

func (failingKeys) Key(context.Context) ([]byte, error) { return nil, errors.New("no key today") }

func newProvider(fv *fakeVault) *Provider {
	return &Provider{
		Defaults: config.Defaults{VaultAddress: fv.URL, AuthMountPath: "kubernetes"},
		Vault:    vault.NewPool(vault.Options{MaxRetries: 0}),
		Auth:     &auth.Authenticator{},
		Keys:     objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
	}
}

func mountRequest(t *testing.T, objects string, withToken bool) *pb.MountRequest {
	t.Helper()
	a := map[string]string{
		config.ParamRoleName:          "app",
		config.ParamObjects:           objects,
		config.AttrPodName:            "app-0",
		config.AttrPodNamespace:       "apps",
		config.AttrPodUID:             "uid",
		config.AttrServiceAccountName: "app",
	}
	if withToken {
		b, _ := json.Marshal(map[string]config.ServiceAccountToken{"vault": {Token: podJWT}})
		a[config.AttrServiceAccountToks] = string(b)
	}
	ab, _ := json.Marshal(a)
	return &pb.MountRequest{Attributes: string(ab), Secrets: "null", Permission: "420", TargetPath: "/target"}
}

func TestMount(t *testing.T) {
	fv := newFakeVault(t)
	p := newProvider(fv)
	req := mountRequest(t, `
- objectName: user
  secretPath: secret/data/app
  secretKey: username
- objectName: port
  secretPath: /v1/secret/data/app
  secretKey: port
- objectName: db/username
  secretPath: database/creds/r
  secretKey: username
- objectName: db/password
  secretPath: database/creds/r
  secretKey: password
  filePermission: 0400
`, true)
	resp, err := p.Mount(context.Background(), req)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	want := []struct {
		path     string
		contents string
		mode     os.FileMode
	}{
		{"user", "app-user", 0o644},
		{"port", "5432", 0o644},
		{"db/username", "v-1", 0o644},
		{"db/password", "p-1", 0o400},
	}
	if len(resp.Files) != len(want) || len(resp.ObjectVersion) != len(want) {
		t.Fatalf("got %d files and %d versions, want %d", len(resp.Files), len(resp.ObjectVersion), len(want))
	}
	for i, w := range want {
		f := resp.Files[i]
		if f.Path != w.path || string(f.Contents) != w.contents || os.FileMode(f.Mode) != w.mode {
			t.Errorf("file %d = %s %q %o, want %s %q %o", i, f.Path, f.Contents, f.Mode, w.path, w.contents, w.mode)
		}
		v := resp.ObjectVersion[i]
		if v.Id != w.path || v.Version == "" || strings.Contains(v.Version, w.contents) {
			t.Errorf("version %d = %+v", i, v)
		}
	}
	// One login, one read per distinct request: the two database objects
	// share one credential, and both spellings of the KV path one read.
	if n := fv.count("PUT /v1/auth/kubernetes/login") + fv.count("POST /v1/auth/kubernetes/login"); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
	if n := fv.count("GET /v1/database/creds/r"); n != 1 {
		t.Errorf("%d database credential reads, want 1", n)
	}
	if n := fv.count("GET /v1/secret/data/app"); n != 1 {
		t.Errorf("%d KV reads, want 1", n)
	}

	// A second Mount of an unchanged KV secret reports the same versions.
	req2 := mountRequest(t, "- objectName: user\n  secretPath: secret/data/app\n  secretKey: username\n- objectName: whole\n  secretPath: secret/data/app\n", true)
	r1, err := p.Mount(context.Background(), req2)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Mount(context.Background(), req2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r1.ObjectVersion {
		if r1.ObjectVersion[i].Version != r2.ObjectVersion[i].Version {
			t.Errorf("version of %s changed between mounts of an unchanged secret (request_id differs): %s vs %s",
				r1.ObjectVersion[i].Id, r1.ObjectVersion[i].Version, r2.ObjectVersion[i].Version)
		}
	}
	if r1.ObjectVersion[0].Version != resp.ObjectVersion[0].Version {
		t.Errorf("same object and contents got different versions across mounts")
	}
}

func TestMountErrors(t *testing.T) {
	tests := []struct {
		name       string
		objects    string
		noToken    bool
		keys       objversion.KeySource
		maxResp    int
		want       codes.Code
		wantMsg    []string
		noMsg      []string
		wantNoCall bool
	}{
		{
			name:       "invalid objects: no Vault call",
			objects:    "- objectName: ../etc/passwd\n  secretPath: secret/data/app\n",
			want:       codes.InvalidArgument,
			wantNoCall: true,
		},
		{
			name:       "key source fails: no Vault call",
			objects:    "- objectName: a\n  secretPath: secret/data/app\n",
			keys:       failingKeys{},
			want:       codes.Internal,
			wantMsg:    []string{"no key today"},
			wantNoCall: true,
		},
		{
			name:       "no token and no Kubernetes",
			objects:    "- objectName: a\n  secretPath: secret/data/app\n",
			noToken:    true,
			want:       codes.FailedPrecondition,
			wantMsg:    []string{"tokenRequests"},
			wantNoCall: true,
		},
		{
			name:    "forbidden path",
			objects: "- objectName: a\n  secretPath: secret/data/app\n- objectName: b\n  secretPath: secret/data/other\n",
			want:    codes.PermissionDenied,
			wantMsg: []string{`object "b"`, "permission denied", `Vault role "app"`},
			noMsg:   []string{"error occurred"},
		},
		{
			name:    "missing key",
			objects: "- objectName: a\n  secretPath: secret/data/app\n  secretKey: nope\n",
			want:    codes.NotFound,
			wantMsg: []string{`key "nope"`, "keys present: port, username"},
		},
		{
			name:    "bad hex",
			objects: "- objectName: a\n  secretPath: hexbad\n  secretKey: k\n  encoding: hex\n",
			want:    codes.InvalidArgument,
			noMsg:   []string{"s3cr3t", "'s'"},
		},
		{
			name:    "response too large",
			objects: "- objectName: a\n  secretPath: secret/data/app\n",
			maxResp: 10,
			want:    codes.ResourceExhausted,
			wantMsg: []string{"a="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := newFakeVault(t)
			p := newProvider(fv)
			if tt.keys != nil {
				p.Keys = tt.keys
			}
			p.MaxResponseBytes = tt.maxResp
			_, err := p.Mount(context.Background(), mountRequest(t, tt.objects, !tt.noToken))
			if got := status.Code(err); got != tt.want {
				t.Fatalf("Mount = %v (code %v), want code %v", err, got, tt.want)
			}
			msg := status.Convert(err).Message()
			for _, w := range tt.wantMsg {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			for _, w := range tt.noMsg {
				if strings.Contains(msg, w) {
					t.Errorf("message %q contains %q", msg, w)
				}
			}
			if tt.wantNoCall && fv.total() != 0 {
				t.Errorf("Vault was called %d times, want none", fv.total())
			}
		})
	}
}

func TestMountLoginRefused(t *testing.T) {
	fv := newFakeVault(t)
	p := newProvider(fv)
	req := mountRequest(t, "- objectName: a\n  secretPath: secret/data/app\n", false)
	var a map[string]string
	_ = json.Unmarshal([]byte(req.Attributes), &a)
	b, _ := json.Marshal(map[string]config.ServiceAccountToken{"vault": {Token: "wrong-jwt"}})
	a[config.AttrServiceAccountToks] = string(b)
	ab, _ := json.Marshal(a)
	req.Attributes = string(ab)
	_, err := p.Mount(context.Background(), req)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Mount = %v, want PermissionDenied", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `role "app"`) || strings.Contains(msg, "wrong-jwt") {
		t.Errorf("message %q should name the role and not the JWT", msg)
	}
	if n := fv.count("GET /v1/secret/data/app"); n != 0 {
		t.Errorf("secret read %d times after a refused login", n)
	}
}
