package integration

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// volume builds the request the driver sends for a pod whose volume uses an
// SPC with these parameters; the token is signed for audience.
func volume(t *testing.T, sa testenv.ServiceAccount, audience string, params map[string]string) driverclient.MountRequest {
	t.Helper()
	tok, exp, err := issuer.Token(sa, audience, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{
		"secretProviderClass":             "spc",
		config.AttrPodName:                sa.PodName,
		config.AttrPodNamespace:           sa.Namespace,
		config.AttrPodUID:                 sa.PodUID,
		config.AttrServiceAccountName:     sa.Name,
		config.AttrServiceAccountToks:     testenv.DriverTokens(audience, tok, exp),
		"csi.storage.k8s.io/ephemeral":    "true",
		"csi.storage.k8s.io/pod.nodeName": "node-1",
	}
	for k, v := range params {
		attrs[k] = v
	}
	return driverclient.MountRequest{Attributes: attrs, TargetPath: t.TempDir()}
}

func mount(t *testing.T, req driverclient.MountRequest) (map[string]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return prov.client.Mount(ctx, req)
}

func mustMount(t *testing.T, req driverclient.MountRequest) map[string]string {
	t.Helper()
	v, err := mount(t, req)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	return v
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileMode(t *testing.T, dir, name string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func wantCode(t *testing.T, err error, code codes.Code, msgParts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error, got success", code)
	}
	st, _ := status.FromError(err)
	t.Logf("%s: %s", st.Code(), st.Message())
	if st.Code() != code {
		t.Fatalf("want code %s, got %s: %s", code, st.Code(), st.Message())
	}
	for _, p := range msgParts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q does not mention %q", st.Message(), p)
		}
	}
}

func TestKVv2(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
- objectName: nested/dir/username
  secretPath: v1/secret/data/app
  secretKey: username
  filePermission: 0600
- objectName: old-password
  secretPath: secret/data/app?version=1
  secretKey: password
- objectName: old-via-args
  secretPath: secret/data/app
  secretKey: password
  secretArgs:
    version: 1
- objectName: port
  secretPath: secret/data/app
  secretKey: port
- objectName: tags.json
  secretPath: secret/data/app
  secretKey: tags
- objectName: whole.json
  secretPath: secret/data/app
- objectName: decoded-b64
  secretPath: secret/data/app
  secretKey: b64
  encoding: base64
- objectName: decoded-hex
  secretPath: secret/data/app
  secretKey: hex
  encoding: HEX
`,
	})
	audit := newAuditCursor(t)
	versions := mustMount(t, req)
	dir := req.TargetPath

	for name, want := range map[string]string{
		"password":            "s3cr3t-pw",
		"nested/dir/username": "app",
		"old-password":        "old-pw",
		"old-via-args":        "old-pw",
		"port":                "5432",
		"tags.json":           `["a","b"]`,
		"decoded-b64":         "hello world",
		"decoded-hex":         "hello",
	} {
		if got := readFile(t, dir, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if m := fileMode(t, dir, "nested/dir/username"); m != 0o600 {
		t.Errorf("nested/dir/username mode %o, want 600", m)
	}
	if m := fileMode(t, dir, "password"); m != 0o644 {
		t.Errorf("password mode %o, want the driver's 644", m)
	}

	var whole struct {
		RequestID string `json:"request_id"`
		Data      struct {
			Data     map[string]any `json:"data"`
			Metadata map[string]any `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(readFile(t, dir, "whole.json")), &whole); err != nil {
		t.Fatalf("whole.json: %v", err)
	}
	if whole.Data.Data["password"] != "s3cr3t-pw" || whole.Data.Metadata["version"] == nil {
		t.Errorf("whole.json lacks data.data / data.metadata: %+v", whole)
	}
	if whole.RequestID != "" {
		t.Errorf("whole.json keeps the per-request request_id %q: every poll would change it", whole.RequestID)
	}

	if len(versions) != 9 {
		t.Errorf("got %d object versions, want 9: %v", len(versions), versions)
	}
	for id, v := range versions {
		if v == "" || strings.Contains(v, "s3cr3t") {
			t.Errorf("version of %s = %q", id, v)
		}
	}
	// Nine objects, three distinct requests: latest, ?version=1 (from the
	// path and from secretArgs alike).
	if got := audit.count("secret/data/app"); got != 2 {
		t.Errorf("Vault saw %d reads of secret/data/app, want 2 (one per distinct request)", got)
	}
}

func TestKVv1DoesNotHideTopLevelKeys(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: api-key
  secretPath: kv1/app
  secretKey: api-key
- objectName: data.json
  secretPath: kv1/app
  secretKey: data
`,
	})
	mustMount(t, req)
	if got := readFile(t, req.TargetPath, "api-key"); got != "k1-api" {
		t.Errorf("api-key = %q", got)
	}
	if got := readFile(t, req.TargetPath, "data.json"); got != `{"inner":"x"}` {
		t.Errorf("data.json = %q", got)
	}
}

func TestPKIIssueDistinctArgsAreDistinctCalls(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: a/cert.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: certificate
  secretArgs: {common_name: a.example.com, ttl: 1h}
- objectName: a/key.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: private_key
  secretArgs: {ttl: 1h, common_name: a.example.com}
- objectName: b/cert.pem
  secretPath: pki/issue/example-com
  method: POST
  secretKey: certificate
  secretArgs: {common_name: b.example.com, ttl: 1h}
`,
	})
	audit := newAuditCursor(t)
	mustMount(t, req)
	// PUT and POST are one Vault operation but distinct requests here.
	if got := audit.count("pki/issue/example-com"); got != 2 {
		t.Errorf("Vault issued %d certificates, want 2", got)
	}
	certA := parseCert(t, readFile(t, req.TargetPath, "a/cert.pem"))
	certB := parseCert(t, readFile(t, req.TargetPath, "b/cert.pem"))
	if certA.Subject.CommonName != "a.example.com" || certB.Subject.CommonName != "b.example.com" {
		t.Errorf("CNs %q, %q", certA.Subject.CommonName, certB.Subject.CommonName)
	}
	// The key must belong to the certificate issued in the same call.
	block, _ := pem.Decode([]byte(readFile(t, req.TargetPath, "a/key.pem")))
	if block == nil {
		t.Fatal("a/key.pem is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("a/key.pem: %v", err)
	}
	if !key.PublicKey.Equal(certA.PublicKey) {
		t.Error("a/key.pem does not match a/cert.pem: the two objects were served by different issue calls")
	}
}

func parseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatalf("not PEM: %.40q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDatabaseCredsShareOneLease(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: db-username
  secretPath: database/creds/app
  secretKey: username
- objectName: db-password
  secretPath: database/creds/app
  secretKey: password
`,
	})
	audit := newAuditCursor(t)
	mustMount(t, req)
	if got := audit.count("database/creds/app"); got != 1 {
		t.Errorf("Vault issued %d credentials, want 1", got)
	}
	user := readFile(t, req.TargetPath, "db-username")
	pass := readFile(t, req.TargetPath, "db-password")
	out, err := pg.Query(context.Background(), user, pass, "SELECT current_user")
	if err != nil {
		t.Fatalf("logging in to PostgreSQL with the mounted credentials: %v: %s", err, out)
	}
	if out != user {
		t.Errorf("current_user = %q, want %q", out, user)
	}
}

func TestAuthFailures(t *testing.T) {
	needWorld(t)
	objects := "- objectName: pw\n  secretPath: secret/data/app\n  secretKey: password\n"
	other := testenv.ServiceAccount{Namespace: "apps", Name: "intruder", PodName: "x", PodUID: "u-x"}
	for _, tc := range []struct {
		name     string
		sa       testenv.ServiceAccount
		audience string
		params   map[string]string
		code     codes.Code
		msg      []string
	}{
		{"wrong service account", other, "vault", map[string]string{"roleName": "app"}, codes.PermissionDenied, []string{`role "app"`}},
		{"unknown role", appSA, "vault", map[string]string{"roleName": "nope"}, codes.PermissionDenied, []string{`role "nope"`}},
		{"token for another audience", appSA, "other", map[string]string{"roleName": "app", "audience": "other"}, codes.PermissionDenied, []string{`role "app"`}},
		{"missing auth mount", appSA, "vault", map[string]string{"roleName": "app", "vaultAuthMountPath": "nosuch"}, codes.PermissionDenied, []string{"auth/nosuch"}},
		{"custom audience works", appSA, "custom-aud", map[string]string{"roleName": "app-custom-aud", "audience": "custom-aud"}, codes.OK, nil},
		{"auth/ prefix and slashes accepted", appSA, "vault", map[string]string{"roleName": "app", "vaultKubernetesMountPath": "/auth/jwt/"}, codes.OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]string{"objects": objects}
			for k, v := range tc.params {
				p[k] = v
			}
			_, err := mount(t, volume(t, tc.sa, tc.audience, p))
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.msg...)
		})
	}
}

func TestReadFailures(t *testing.T) {
	needWorld(t)
	for _, tc := range []struct {
		name    string
		objects string
		code    codes.Code
		msg     []string
	}{
		{"policy denies path", "- objectName: x\n  secretPath: secret/data/other\n  secretKey: k\n", codes.PermissionDenied, []string{`object "x"`, `role "app"`}},
		{"path does not exist", "- objectName: x\n  secretPath: secret/data/app-missing\n  secretKey: k\n", codes.NotFound, []string{`object "x"`}},
		{"key does not exist", "- objectName: x\n  secretPath: secret/data/app\n  secretKey: pasword\n", codes.NotFound, []string{`object "x"`, `"pasword"`, "secret/data/app", "password"}},
		{"value is not base64", "- objectName: x\n  secretPath: secret/data/app\n  secretKey: username\n  encoding: base64\n", codes.InvalidArgument, []string{`object "x"`, "base64"}},
		{"bad PKI args", "- objectName: x\n  secretPath: pki/issue/example-com\n  method: PUT\n  secretArgs: {common_name: evil.org}\n  secretKey: certificate\n", codes.InvalidArgument, []string{`object "x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := volume(t, appSA, "vault", map[string]string{"roleName": "app", "objects": tc.objects})
			_, err := mount(t, req)
			wantCode(t, err, tc.code, tc.msg...)
			if entries, _ := os.ReadDir(req.TargetPath); len(entries) != 0 {
				t.Errorf("a failed mount wrote %d entries", len(entries))
			}
		})
	}
}

// Bad input is refused before Vault sees anything: not even a login.
func TestInvalidInputNeverReachesVault(t *testing.T) {
	needWorld(t)
	for _, tc := range []struct {
		name   string
		params map[string]string
		msg    string
	}{
		{"no role", map[string]string{"objects": "- {objectName: a, secretPath: secret/data/app}"}, "roleName"},
		{"both mount params", map[string]string{"roleName": "app", "vaultAuthMountPath": "a", "vaultKubernetesMountPath": "b", "objects": "- {objectName: a, secretPath: p}"}, "vaultKubernetesMountPath"},
		{"unknown field", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: p, secretkey: x}"}, "secretkey"},
		{"duplicate objectName", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: p}\n- {objectName: a, secretPath: q}"}, `objectName "a"`},
		{"absolute name", map[string]string{"roleName": "app", "objects": "- {objectName: /etc/passwd, secretPath: p}"}, "/etc/passwd"},
		{"dot-dot name", map[string]string{"roleName": "app", "objects": "- {objectName: a/../../b, secretPath: p}"}, "a/../../b"},
		{"unclean name", map[string]string{"roleName": "app", "objects": "- {objectName: a//b, secretPath: p}"}, "a//b"},
		{"long element", map[string]string{"roleName": "app", "objects": "- {objectName: " + strings.Repeat("x", 256) + ", secretPath: p}"}, "255"},
		{"empty secretPath", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: ''}"}, "secretPath"},
		{"bad method", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: p, method: DELETE}"}, "DELETE"},
		{"bad encoding", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: p, encoding: rot13}"}, "rot13"},
		{"decimal permission", map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: p, filePermission: 600}"}, "0600"},
		{"bad skip verify", map[string]string{"roleName": "app", "vaultSkipTLSVerify": "maybe", "objects": "- {objectName: a, secretPath: p}"}, "vaultSkipTLSVerify"},
		{"bad address", map[string]string{"roleName": "app", "vaultAddress": "vault:8200", "objects": "- {objectName: a, secretPath: p}"}, "vault:8200"},
		{"no objects", map[string]string{"roleName": "app"}, "objects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audit := newAuditCursor(t)
			_, err := mount(t, volume(t, appSA, "vault", tc.params))
			wantCode(t, err, codes.InvalidArgument, tc.msg)
			if es := audit.next(); len(es) != 0 {
				t.Errorf("Vault saw %d requests for an invalid mount: %v", len(es), es)
			}
		})
	}
}

func TestTokenInNodePublishSecrets(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects":  "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	})
	// A driver that opts in passes the tokens in the secrets field instead.
	req.Secrets = map[string]string{config.AttrServiceAccountToks: req.Attributes[config.AttrServiceAccountToks]}
	delete(req.Attributes, config.AttrServiceAccountToks)
	mustMount(t, req)
	if got := readFile(t, req.TargetPath, "pw"); got != "s3cr3t-pw" {
		t.Errorf("pw = %q", got)
	}
}

func TestNoTokenWithoutKubernetesIsFailedPrecondition(t *testing.T) {
	needWorld(t)
	// A pod never seen before: no cached Vault token can stand in.
	fresh := appSA
	fresh.PodName, fresh.PodUID = "app-new", "uid-never-mounted"
	req := volume(t, fresh, "vault", map[string]string{
		"roleName": "app",
		"objects":  "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	})
	delete(req.Attributes, config.AttrServiceAccountToks)
	_, err := mount(t, req)
	wantCode(t, err, codes.FailedPrecondition, "tokenRequests")
}

func TestVersions(t *testing.T) {
	needWorld(t)
	objects := `
- {objectName: pw, secretPath: secret/data/app, secretKey: password}
- {objectName: user, secretPath: secret/data/app, secretKey: username}
`
	params := map[string]string{"roleName": "app", "objects": objects}
	v1 := mustMount(t, volume(t, appSA, "vault", params))
	v2 := mustMount(t, volume(t, appSA, "vault", params))
	if v1["pw"] != v2["pw"] || v1["user"] != v2["user"] {
		t.Errorf("versions differ across mounts of unchanged secrets: %v vs %v", v1, v2)
	}
	if v1["pw"] == v1["user"] {
		t.Error("different objects share a version")
	}

	// A second provider (another node) with the same key agrees.
	other, err := startProvider(vlt.Addr, hmac)
	if err != nil {
		t.Fatal(err)
	}
	defer other.stop()
	ctx := context.Background()
	v3, err := other.client.Mount(ctx, volume(t, appSA, "vault", params))
	if err != nil {
		t.Fatal(err)
	}
	if v3["pw"] != v1["pw"] {
		t.Error("two providers with one HMAC key disagree on a version")
	}

	// Changing the secret changes its version only.
	if _, err := vlt.Write("kv1/rotating", map[string]any{"a": "1", "b": "1"}); err != nil {
		t.Fatal(err)
	}
	rot := map[string]string{"roleName": "app", "objects": "- {objectName: a, secretPath: kv1/rotating, secretKey: a}\n- {objectName: b, secretPath: kv1/rotating, secretKey: b}"}
	r1 := mustMount(t, volume(t, appSA, "vault", rot))
	if _, err := vlt.Write("kv1/rotating", map[string]any{"a": "2", "b": "1"}); err != nil {
		t.Fatal(err)
	}
	r2 := mustMount(t, volume(t, appSA, "vault", rot))
	if r1["a"] == r2["a"] {
		t.Error("version of a did not change with its value")
	}
	if r1["b"] != r2["b"] {
		t.Error("version of b changed though its value did not")
	}
}

func TestVaultUnavailable(t *testing.T) {
	needWorld(t)
	bin := os.Getenv(testenv.VaultBinaryEnv)
	ctx := context.Background()
	down, err := testenv.StartVault(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	addr := down.Addr
	down.Stop()
	req := volume(t, appSA, "vault", map[string]string{
		"roleName":     "app",
		"vaultAddress": addr,
		"objects":      "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	})
	start := time.Now()
	_, err = mount(t, req)
	wantCode(t, err, codes.Unavailable, addr)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s to report an unreachable Vault", took)
	}
}

// A Vault that accepts connections and never answers (a fault a real Vault
// cannot be made to show) must not hold the Mount past its deadline.
func TestHangingVaultHitsDeadline(t *testing.T) {
	needWorld(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	req := volume(t, appSA, "vault", map[string]string{
		"roleName":     "app",
		"vaultAddress": "http://" + lis.Addr().String(),
		"objects":      "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	})
	wire, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Call the provider itself: over gRPC the client would give up at the
	// deadline whatever the provider did, and prove nothing.
	p := &provider.Provider{
		Defaults: config.Defaults{AuthMountPath: jwtMount},
		Vault:    vault.NewPool(vault.Options{MaxRetries: 2}),
		Auth:     &auth.Authenticator{},
		Keys:     hmac,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = p.Mount(ctx, wire)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Mount returned after %s with a 2s deadline", took)
	}
	wantCode(t, err, codes.DeadlineExceeded)
}
