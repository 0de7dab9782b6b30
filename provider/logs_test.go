package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// logCapture collects everything klog writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	klog.Flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// captureLogs sends all klog output, at verbosity 10, to a buffer until the
// test ends. The provider logs through klog.FromContext, which without a
// logger in the context is klog's own: contexts need not carry one.
func captureLogs(t *testing.T) *logCapture {
	t.Helper()
	state := klog.CaptureState()
	t.Cleanup(state.Restore)
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{"v": "10", "logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := fs.Set(name, value); err != nil {
			t.Fatalf("klog flag -%s: %v", name, err)
		}
	}
	c := &logCapture{}
	klog.SetOutput(c)
	if !klog.V(10).Enabled() {
		t.Fatal("klog -v=10 did not take effect")
	}
	return c
}

// secretSet holds the values that must appear in no log line and no error
// message, each with what it is.
type secretSet map[string]string

func (s secretSet) add(what string, vals ...string) {
	for _, v := range vals {
		if v != "" {
			s[v] = what
		}
	}
}

// logsRequest is mountRequest with the service account token jwt, and
// vaultAddress addrs unless empty.
func logsRequest(t *testing.T, objects, jwt string, addrs ...string) *pb.MountRequest {
	t.Helper()
	req := mountRequest(t, objects, false)
	b, err := json.Marshal(map[string]config.ServiceAccountToken{"vault": {Token: jwt}})
	if err != nil {
		t.Fatal(err)
	}
	setAttr(t, req, config.AttrServiceAccountToks, string(b))
	if len(addrs) > 0 {
		setAttr(t, req, config.ParamVaultAddress, strings.Join(addrs, ","))
	}
	return req
}

// Secret values, the pod's JWT and Vault tokens reach neither the logs, at
// the highest verbosity, nor the error messages (which the server logs and
// the driver puts in the pod's events), whatever the Mount's outcome.
func TestMountLogsHoldNoSecrets(t *testing.T) {
	logs := captureLogs(t)
	mark := fmt.Sprintf("LOGSECRET%x", time.Now().UnixNano())
	must := secretSet{}
	secret := func(what string) string {
		v := mark + "-" + what
		must.add(what, v)
		return v
	}
	jwt, wrongJWT := secret("pod-jwt"), secret("wrong-jwt")
	kv2Password, kv2Other, kv2Hex, kv1Value := secret("kv2-password"), secret("kv2-other"), secret("kv2-not-hex"), secret("kv1-value")
	tmplIn := secret("template-input")
	getArg, queryArg, deniedArg := secret("get-arg"), secret("query-arg"), secret("denied-arg")
	failoverArg, redirectArg := secret("failover-arg"), secret("redirect-arg")
	refusedCN := strings.ToLower(mark) + ".refused.example.org"
	must.add("refused common name", refusedCN)

	// setUp makes a Vault like every other this test uses: the same
	// secrets, a role accepting jwt, a denied path, PKI and database.
	var vaults []*vaulttest.Server
	setUp := func(opts ...vaulttest.Option) *vaulttest.Server {
		v := vaulttest.New(t, opts...)
		v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{jwt}, TTL: time.Hour})
		v.PutKV2("secret/data/logs", map[string]any{"password": kv2Password, "other": kv2Other, "not-hex": kv2Hex, "in": tmplIn})
		v.PutKV("kv/logs", map[string]any{"value": kv1Value})
		v.Deny("secret/data/denied")
		v.SetDatabaseRole("logs-db", vaulttest.DatabaseRole{})
		v.SetPKIRole("example-com", vaulttest.PKIRole{Allow: func(cn string) bool { return strings.HasSuffix(cn, ".example.com") }})
		vaults = append(vaults, v)
		return v
	}
	v := setUp()
	// standby redirects reads to active, which knows v's tokens (AnyToken)
	// as the nodes of one cluster do.
	active := setUp(vaulttest.AnyToken())
	failing := setUp()
	failing.Fail("secret/", http.StatusInternalServerError, "internal error")

	p := newProvider(v)
	p.Credentials = cache.New(p.Auth, cache.Options{})

	type step struct {
		name    string
		objects string
		jwt     string               // default: jwt
		addrs   []string             // default: v
		fault   func() (undo func()) // applied to the Vault for this step only
		timeout time.Duration        // default: 10s
		maxResp int                  // Provider.MaxResponseBytes for this step
		want    codes.Code
		wantMsg string // in the error message, if set
		// untouched, if set, is a Vault this step must not send a request to.
		untouched *vaulttest.Server
		check     bool // that the files hold the secrets this test looks for
	}
	steps := []step{
		// First: the credentials cache would serve the pod its token
		// whatever JWT it comes with, once it has one.
		{name: "login refused (403)", objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password}", jwt: wrongJWT, want: codes.PermissionDenied},
		{
			name: "success: KV, secretArgs, PKI, database, template",
			objects: `
- {objectName: kv2/password, secretPath: secret/data/logs, secretKey: password}
- {objectName: kv2/whole.json, secretPath: secret/data/logs}
- {objectName: kv1/value, secretPath: kv/logs, secretKey: value}
- objectName: kv2/get-args
  secretPath: secret/data/logs?marker=` + queryArg + `
  secretKey: other
  secretArgs: {version: 1, marker2: ` + getArg + `}
- {objectName: tls/cert.pem, secretPath: pki/issue/example-com, method: PUT, secretKey: certificate, secretArgs: {common_name: app.example.com}}
- {objectName: tls/key.pem, secretPath: pki/issue/example-com, method: PUT, secretKey: private_key, secretArgs: {common_name: app.example.com}}
- {objectName: tls/whole.json, secretPath: pki/issue/example-com, method: PUT, secretArgs: {common_name: app.example.com}}
- {objectName: db/username, secretPath: database/creds/logs-db, secretKey: username}
- {objectName: db/password, secretPath: database/creds/logs-db, secretKey: password}
- {objectName: db/whole.json, secretPath: database/creds/logs-db}
- {objectName: conf/app.ini, template: "password={{ index .Values \"kv2/password\" }} db={{ index .Values \"db/password\" }}"}
`,
			want:  codes.OK,
			check: true,
		},
		{name: "read refused (403)", objects: "- {objectName: x, secretPath: secret/data/denied, secretKey: k}", want: codes.PermissionDenied},
		{name: "read refused (403) with a secret query and body", objects: "- {objectName: x, secretPath: 'secret/data/denied?q=" + deniedArg + "', secretArgs: {q2: " + deniedArg + "}}", want: codes.PermissionDenied},
		{name: "PUT secretArgs Vault refuses (400)", objects: "- {objectName: x, secretPath: pki/issue/example-com, method: PUT, secretKey: certificate, secretArgs: {common_name: " + refusedCN + "}}", want: codes.InvalidArgument},
		{name: "not found (404)", objects: "- {objectName: x, secretPath: secret/data/missing, secretKey: k}", want: codes.NotFound},
		{name: "missing key", objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: pasword}", want: codes.NotFound},
		{name: "value that is not hex", objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: not-hex, encoding: hex}", want: codes.InvalidArgument},
		{
			name:    "server error (500)",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password}",
			fault:   func() func() { return v.Fail("secret/", http.StatusInternalServerError, "internal error").Remove },
			want:    codes.Unavailable,
		},
		{
			name:    "sealed (503)",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password}",
			fault:   func() func() { return v.Fail("", http.StatusServiceUnavailable, "Vault is sealed").Remove },
			want:    codes.Unavailable,
		},
		{
			name:    "hang until the deadline",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password}\n- {objectName: y, secretPath: kv/logs, secretKey: value}",
			fault:   func() func() { return v.Hold("secret/data/logs") },
			timeout: 300 * time.Millisecond,
			want:    codes.DeadlineExceeded,
		},
		{
			name:    "failover after a 500 on a read",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password, secretArgs: {marker: " + failoverArg + "}}",
			addrs:   []string{failing.URL(), v.URL()},
			want:    codes.OK,
		},
		{
			name:    "redirect from a standby to the active node",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password, secretArgs: {marker: " + redirectArg + "}}",
			addrs:   []string{v.URL(), active.URL()},
			fault:   func() func() { return v.Redirect("secret/data/logs", active.URL()).Remove },
			want:    codes.OK,
		},
		{
			name:    "redirect loop",
			objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password, secretArgs: {marker: " + redirectArg + "}}",
			fault:   func() func() { return v.Redirect("secret/data/logs", v.URL()).Remove },
			want:    codes.FailedPrecondition,
			wantMsg: "only one redirect is followed",
		},
		{
			name:      "redirect to an address not in vaultAddress",
			objects:   "- {objectName: x, secretPath: secret/data/logs, secretKey: password, secretArgs: {marker: " + redirectArg + "}}",
			fault:     func() func() { return v.Redirect("secret/data/logs", active.URL()).Remove },
			want:      codes.FailedPrecondition,
			wantMsg:   "neither an address of this SecretProviderClass (vaultAddress) nor one the provider's operator trusts",
			untouched: active,
		},
		{name: "template uses a key the secret lacks", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: \"*\", writeFile: false}\n- {objectName: t, template: '{{ .Values.in.in }}{{ .Values.in.nope }}'}", want: codes.InvalidArgument},
		{name: "template ranges over a secret string", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: in, writeFile: false}\n- {objectName: t, template: '{{ range .Values.in }}{{ end }}'}", want: codes.InvalidArgument},
		{name: "template indexes a secret string out of range", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: in, writeFile: false}\n- {objectName: t, template: '{{ index .Values.in 1000 }}'}", want: codes.InvalidArgument},
		{name: "template decodes a secret that is not base64", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: in, writeFile: false}\n- {objectName: t, template: '{{ base64dec .Values.in }}'}", want: codes.InvalidArgument},
		{name: "template compares a secret with a number", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: in, writeFile: false}\n- {objectName: t, template: '{{ if lt .Values.in 5 }}{{ end }}'}", want: codes.InvalidArgument},
		{name: "template output over the response limit", objects: "- {objectName: in, secretPath: secret/data/logs, secretKey: in, writeFile: false}\n- {objectName: t, template: '" + strings.Repeat("{{ .Values.in }}", 10) + "'}", maxResp: 256, want: codes.ResourceExhausted},
	}

	// The error messages, checked once every secret is known.
	var msgs []string
	mountOne := func(s step) {
		t.Helper()
		if s.jwt == "" {
			s.jwt = jwt
		}
		if s.timeout == 0 {
			s.timeout = 10 * time.Second
		}
		if s.fault != nil {
			defer s.fault()()
		}
		p.MaxResponseBytes = s.maxResp
		if s.untouched != nil {
			before := len(s.untouched.Calls())
			defer func() {
				if n := len(s.untouched.Calls()) - before; n != 0 {
					t.Errorf("%s: %d requests to a Vault this step must not reach", s.name, n)
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		resp, err := p.Mount(ctx, logsRequest(t, s.objects, s.jwt, s.addrs...))
		if got := status.Code(err); got != s.want {
			t.Fatalf("%s: Mount = %v (code %v), want %v", s.name, err, got, s.want)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, s.wantMsg) {
			t.Errorf("%s: message %q does not say %q", s.name, msg, s.wantMsg)
		}
		if err != nil {
			msgs = append(msgs, s.name+": "+status.Convert(err).Message())
			return
		}
		// Everything mounted is secret.
		got := map[string]string{}
		for _, f := range resp.Files {
			must.add("mounted "+f.Path, string(f.Contents))
			got[f.Path] = string(f.Contents)
		}
		if s.check && (got["kv2/password"] != kv2Password || got["kv1/value"] != kv1Value || got["kv2/get-args"] != kv2Other ||
			!strings.Contains(got["tls/key.pem"], "PRIVATE KEY") || got["db/password"] == "" || got["conf/app.ini"] == "") {
			t.Fatalf("%s: the files lack the secrets this test looks for: %q", s.name, files(resp))
		}
	}
	for _, s := range steps {
		mountOne(s)
	}

	// A cached token that Vault revoked: the provider says it logs in
	// again, naming the token by its accessor only.
	var revoked vaulttest.TokenInfo
	for _, l := range v.Logins() {
		if l.Live {
			revoked = l
			v.Revoke(l.Value)
		}
	}
	if revoked.Value == "" {
		t.Fatal("no live token to revoke")
	}
	mountOne(step{name: "after revocation", objects: "- {objectName: x, secretPath: secret/data/logs, secretKey: password}", want: codes.OK})

	for _, vlt := range vaults {
		for _, l := range vlt.Logins() {
			must.add("Vault token", l.Value)
		}
	}
	// The faults were met: the redirect was followed, the failing Vault
	// asked first.
	if n := active.Count("GET", "secret/data/logs"); n == 0 {
		t.Error("the active Vault got no read: the redirect was not followed")
	}
	if n := failing.Count("GET", "secret/data/logs"); n != 1 {
		t.Errorf("the failing Vault got %d reads, want 1", n)
	}
	failed := 0
	for _, s := range steps {
		if s.want != codes.OK {
			failed++
		}
	}
	if len(msgs) < failed {
		t.Fatalf("%d error messages, want at least %d", len(msgs), failed)
	}
	if len(must) < 20 {
		t.Fatalf("only %d secrets collected", len(must))
	}

	out := logs.String()
	t.Logf("captured %d bytes, %d lines of logs", len(out), strings.Count(out, "\n"))
	// The capture captures: the lines every outcome above logs are there.
	for _, want := range []string{
		`"Mounted objects"`, `"Leased answer"`, `"Vault address failed; trying the next one"`,
		`"Vault refused a cached token; logging in again"`, `token="vault-token(accessor=` + revoked.Accessor + `)"`,
		`pod="apps/app-0"`, `role="app"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	patterns := []string{"hvs.", "PRIVATE KEY", "BEGIN CERTIFICATE", mark, strings.ToLower(mark)}
	for v, what := range must {
		if i := strings.Index(out, v); i >= 0 {
			t.Errorf("logs hold the %s: ...%s...", what, excerpt(out, i, len(v)))
		}
		for _, m := range msgs {
			if strings.Contains(m, v) {
				t.Errorf("an error message holds the %s: %s", what, m)
			}
		}
	}
	for _, pattern := range patterns {
		if i := strings.Index(out, pattern); i >= 0 {
			t.Errorf("logs hold %q: ...%s...", pattern, excerpt(out, i, len(pattern)))
		}
		for _, m := range msgs {
			if strings.Contains(m, pattern) {
				t.Errorf("an error message holds %q: %s", pattern, m)
			}
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("logs:\n%s", out)
	}
}

func excerpt(s string, i, n int) string {
	lo, hi := max(0, i-80), min(len(s), i+n+80)
	return s[lo:hi]
}
