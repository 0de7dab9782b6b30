package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
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

const podJWT = "pod-jwt"

// newVault is the Vault these tests mount from: kubernetes login as role
// "app" with podJWT only, a KV v2 secret, a value that is not hex, and a
// path the role's policy denies. Database credentials are the fake's
// (v-r-1/p-r-1 for the first of database/creds/r).
func newVault(t *testing.T, opts ...vaulttest.Option) *vaulttest.Server {
	t.Helper()
	v := vaulttest.New(t, opts...)
	v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{podJWT}, TTL: 5 * time.Minute})
	v.PutKV2("secret/data/app", map[string]any{"username": "app-user", "port": 5432})
	v.PutKV("hexbad", map[string]any{"k": "s3cr3tZZ"})
	v.Deny("secret/data/other")
	return v
}

type failingKeys struct{}

func (failingKeys) Key(context.Context) ([]byte, error) { return nil, errors.New("no key today") }

func newProvider(v *vaulttest.Server) *Provider {
	return &Provider{
		Defaults: config.Defaults{VaultAddress: v.URL(), AuthMountPath: "kubernetes"},
		Vault:    vault.NewPool(vault.Options{MaxRetries: 0}),
		Auth:     &auth.Authenticator{},
		Keys:     objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
	}
}

func mountRequest(t testing.TB, objects string, withToken bool) *pb.MountRequest {
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
	v := newVault(t)
	p := newProvider(v)
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
		{"db/username", "v-r-1", 0o644},
		{"db/password", "p-r-1", 0o400},
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
	if n := v.Count("", "auth/kubernetes/login"); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
	if n := v.Count("GET", "database/creds/r"); n != 1 {
		t.Errorf("%d database credential reads, want 1", n)
	}
	if n := v.Count("GET", "secret/data/app"); n != 1 {
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
			v := newVault(t)
			p := newProvider(v)
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
			if n := len(v.Calls()); tt.wantNoCall && n != 0 {
				t.Errorf("Vault was called %d times, want none", n)
			}
		})
	}
}

// vault-helm's DaemonSet: -vault-addr (VAULT_ADDR) is a Vault Agent's
// Unix socket. Mounts go through it, with the operator's TLS settings
// unused; a class may not name a socket the operator does not trust; and
// a failover list may go from a socket to a URL.
func TestMountOverUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	agent := newVault(t, vaulttest.OnSocket(dir+"/agent.sock"))
	objects := "- objectName: user\n  secretPath: secret/data/app\n  secretKey: username\n"

	p := newProvider(agent)
	p.Defaults.TLS = config.TLS{CACert: dir + "/missing-ca.pem"} // would fail the Mount if read
	resp, err := p.Mount(context.Background(), mountRequest(t, objects, true))
	if err != nil {
		t.Fatalf("Mount through the socket: %v", err)
	}
	if len(resp.Files) != 1 || string(resp.Files[0].Contents) != "app-user" {
		t.Errorf("files = %v", resp.Files)
	}
	if n := agent.Count("", "auth/kubernetes/login"); n != 1 {
		t.Errorf("%d logins through the socket, want 1", n)
	}

	// A class naming another socket: refused before any Vault call.
	req := mountRequest(t, objects, true)
	var a map[string]string
	_ = json.Unmarshal([]byte(req.Attributes), &a)
	a[config.ParamVaultAddress] = "unix://" + dir + "/other.sock"
	ab, _ := json.Marshal(a)
	req.Attributes = string(ab)
	before := len(agent.Calls())
	_, err = p.Mount(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "unix://"+dir+"/other.sock is a Unix socket on the provider's node") {
		t.Errorf("class naming an untrusted socket: %v, want InvalidArgument naming it", err)
	}
	if n := len(agent.Calls()) - before; n != 0 {
		t.Errorf("%d Vault calls for a refused class", n)
	}

	// Failover: a socket nobody listens on, then a Vault URL.
	v := newVault(t)
	p2 := newProvider(v)
	p2.Defaults.VaultAddress = "unix://" + dir + "/gone.sock," + v.URL()
	if _, err := p2.Mount(context.Background(), mountRequest(t, objects, true)); err != nil {
		t.Fatalf("Mount failing over from a dead socket: %v", err)
	}
	if n := v.Count("GET", "secret/data/app"); n != 1 {
		t.Errorf("%d reads at the second address, want 1", n)
	}
}

func TestMountLoginRefused(t *testing.T) {
	v := newVault(t)
	p := newProvider(v)
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
	if n := v.Count("GET", "secret/data/app"); n != 0 {
		t.Errorf("secret read %d times after a refused login", n)
	}
}

// One Mount never has more than FetchConcurrency Vault calls in flight.
func TestMountFetchConcurrency(t *testing.T) {
	for _, tt := range []struct{ set, want int }{{0, DefaultFetchConcurrency}, {3, 3}} {
		t.Run(fmt.Sprint(tt.set), func(t *testing.T) {
			v := newVault(t)
			var objects strings.Builder
			for i := range 10 {
				v.PutKV(fmt.Sprintf("kv/s%d", i), map[string]any{"k": "v"})
				fmt.Fprintf(&objects, "- {objectName: s%d, secretPath: kv/s%d, secretKey: k}\n", i, i)
			}
			p := newProvider(v)
			p.FetchConcurrency = tt.set
			release := v.Hold("kv/")
			done := make(chan error, 1)
			go func() {
				_, err := p.Mount(context.Background(), mountRequest(t, objects.String(), true))
				done <- err
			}()
			vaulttest.Eventually(t, "the reads to arrive", func() bool { return v.InFlight() >= tt.want })
			time.Sleep(20 * time.Millisecond) // room for reads over the limit to arrive
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := v.MaxInFlight(); got != tt.want {
				t.Errorf("%d Vault calls in flight at once, want %d", got, tt.want)
			}
			if n := v.Count("GET", "kv/"); n != 10 {
				t.Errorf("%d reads, want 10", n)
			}
		})
	}
}

// With every cache on (tokens, certificates, parsed classes), a rotation
// poll still reads KV: a changed secret shows on the next poll, with a new
// version for its object only.
func TestMountRotationSeesKVChange(t *testing.T) {
	v := newVault(t)
	v.SetPKIRole("r", vaulttest.PKIRole{})
	authn := &auth.Authenticator{}
	p := newProvider(v)
	p.Credentials = cache.New(authn, cache.Options{TokenCacheSize: 10})
	p.Classes = config.NewClasses(0, 0)
	req := mountRequest(t, `
- {objectName: user, secretPath: secret/data/app, secretKey: username}
- {objectName: port, secretPath: secret/data/app, secretKey: port}
- {objectName: tls.crt, secretPath: pki/issue/r, method: PUT, secretArgs: {common_name: a.example}, secretKey: certificate}
`, true)
	first, err := p.Mount(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	same, err := p.Mount(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(versions(same), versions(first)) {
		t.Fatalf("versions changed without a change: %v, then %v", versions(first), versions(same))
	}
	v.PutKV2("secret/data/app", map[string]any{"username": "new-user", "port": 5432})
	next, err := p.Mount(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileContents(next, "user"); got != "new-user" {
		t.Errorf("user = %q after the secret changed, want new-user", got)
	}
	was, now := versions(first), versions(next)
	if now["user"] == was["user"] || now["port"] != was["port"] || now["tls.crt"] != was["tls.crt"] {
		t.Errorf("versions %v, then %v: want only user's changed", was, now)
	}
	if n := v.Count(http.MethodGet, "secret/data/app"); n != 3 {
		t.Errorf("%d KV reads for 3 polls, want 3", n)
	}
	if n := v.Count(http.MethodPut, "pki/issue/r"); n != 1 {
		t.Errorf("%d certificates for 3 polls, want 1 (cached)", n)
	}
	if p.Classes.Len() != 1 {
		t.Errorf("%d classes cached, want 1", p.Classes.Len())
	}
}
