package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
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

// captureKlog sends all klog output, at the highest verbosity, to a buffer
// until the test ends.
func captureKlog(t *testing.T) *logCapture {
	t.Helper()
	if flag.Lookup("v") == nil {
		klog.InitFlags(nil)
	}
	state := klog.CaptureState()
	t.Cleanup(state.Restore)
	c := &logCapture{}
	klog.LogToStderr(false)
	klog.SetOutput(c)
	for name, value := range map[string]string{"v": "10", "stderrthreshold": "FATAL", "alsologtostderr": "false"} {
		if err := flag.Set(name, value); err != nil {
			t.Fatalf("klog flag -%s: %v", name, err)
		}
	}
	if !klog.V(10).Enabled() {
		t.Fatal("klog -v=10 did not take effect")
	}
	return c
}

// secrets collects every value the logs must never hold.
type secrets struct {
	mu   sync.Mutex
	vals map[string]string // value -> what it is
}

func (s *secrets) add(what string, vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals == nil {
		s.vals = map[string]string{}
	}
	for _, v := range vals {
		if v != "" {
			s.vals[v] = what
		}
	}
}

func (s *secrets) addJWTs(req driverclient.MountRequest) {
	var toks map[string]config.ServiceAccountToken
	if raw := req.Attributes[config.AttrServiceAccountToks]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &toks); err == nil {
			for _, tk := range toks {
				s.add("service account JWT", tk.Token)
			}
		}
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	needWorld(t)
	logs := captureKlog(t)
	r, err := startProvider(vlt.Addr, hmac)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.stop()
		}
	}
	defer stop()

	must := &secrets{}
	mark := fmt.Sprintf("LOGTEST%x", time.Now().UnixNano())
	secret := func(what string) string {
		v := fmt.Sprintf("%s-%s-%x", mark, what, time.Now().UnixNano())
		must.add(what, v)
		return v
	}
	must.add("root token", vlt.RootToken)
	must.add("PostgreSQL password", pg.Password)

	kv2Password, kv2Other := secret("kv2-password"), secret("kv2-other")
	badBase64, badHex := secret("not-base64!"), secret("not-hex")
	kv1Value := secret("kv1-value")
	if _, err := vlt.Write("secret/data/app-logsecrecy", map[string]any{"data": map[string]any{
		"password": kv2Password, "other": kv2Other, "bad-b64": badBase64, "bad-hex": badHex,
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := vlt.Write("kv1/logsecrecy", map[string]any{"value": kv1Value}); err != nil {
		t.Fatal(err)
	}
	getArg, pathArg, putArg, deniedArg := secret("get-arg"), secret("path-query"), strings.ToLower(mark)+".example.com", secret("denied-body")
	must.add("PUT secretArgs value", putArg)

	pod := appSA
	pod.PodName, pod.PodUID = "logsecrecy-0", "uid-logsecrecy"
	type step struct {
		name    string
		sa      testenv.ServiceAccount
		params  map[string]string
		code    codes.Code
		files   map[string]string // expected contents, checked before the logs
		collect bool              // collect Vault tokens from self.json
	}
	app := func(objects string) map[string]string {
		return map[string]string{"roleName": "app", "objects": objects}
	}
	steps := []step{
		{
			name: "KV, whole response, GET and PUT secretArgs, PKI, database, token lookup",
			sa:   pod,
			params: app(`
- {objectName: kv2/password, secretPath: secret/data/app-logsecrecy, secretKey: password}
- {objectName: kv2/whole.json, secretPath: secret/data/app-logsecrecy}
- {objectName: kv1/value, secretPath: kv1/logsecrecy, secretKey: value}
- objectName: kv2/get-args
  secretPath: secret/data/app-logsecrecy?marker=` + pathArg + `
  secretKey: other
  secretArgs: {version: 1, marker2: ` + getArg + `}
- objectName: tls/cert.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: certificate
  secretArgs: {common_name: ` + putArg + `, ttl: 1h}
- objectName: tls/key.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: private_key
  secretArgs: {common_name: ` + putArg + `, ttl: 1h}
- objectName: tls/whole.json
  secretPath: pki/issue/example-com
  method: PUT
  secretArgs: {ttl: 1h, common_name: ` + putArg + `}
- {objectName: db/username, secretPath: database/creds/app, secretKey: username}
- {objectName: db/password, secretPath: database/creds/app, secretKey: password}
- {objectName: db/whole.json, secretPath: database/creds/app}
- {objectName: self.json, secretPath: auth/token/lookup-self}
`),
			code:    codes.OK,
			files:   map[string]string{"kv2/password": kv2Password, "kv1/value": kv1Value, "kv2/get-args": kv2Other},
			collect: true,
		},
		{"403 on a path", pod, app("- {objectName: x, secretPath: secret/data/other, secretKey: k}"), codes.PermissionDenied, nil, false},
		{"403 on a PUT with a secret body", pod, app("- {objectName: x, secretPath: auth/token/lookup, method: PUT, secretArgs: {token: " + deniedArg + "}}"), codes.PermissionDenied, nil, false},
		{"403 on a GET with secret query", pod, app("- {objectName: x, secretPath: 'secret/data/other?q=" + deniedArg + "', secretArgs: {q2: " + deniedArg + "}}"), codes.PermissionDenied, nil, false},
		{"404", pod, app("- {objectName: x, secretPath: secret/data/app-logsecrecy-missing, secretKey: k}"), codes.NotFound, nil, false},
		{"missing key", pod, app("- {objectName: x, secretPath: secret/data/app-logsecrecy, secretKey: pasword}"), codes.NotFound, nil, false},
		{"bad base64", pod, app("- {objectName: x, secretPath: secret/data/app-logsecrecy, secretKey: bad-b64, encoding: base64}"), codes.InvalidArgument, nil, false},
		{"bad hex", pod, app("- {objectName: x, secretPath: secret/data/app-logsecrecy, secretKey: bad-hex, encoding: hex}"), codes.InvalidArgument, nil, false},
		{"whole response is not base64", pod, app("- {objectName: x, secretPath: secret/data/app-logsecrecy, encoding: base64}"), codes.InvalidArgument, nil, false},
		{"wrong service account for the role", testenv.ServiceAccount{Namespace: "apps", Name: "intruder", PodName: "intruder-0", PodUID: "uid-intruder"}, app("- {objectName: x, secretPath: secret/data/app-logsecrecy, secretKey: password}"), codes.PermissionDenied, nil, false},
		{"unknown role", pod, map[string]string{"roleName": "no-such-role", "objects": "- {objectName: x, secretPath: secret/data/app-logsecrecy, secretKey: password}"}, codes.PermissionDenied, nil, false},
	}

	var tokens []string
	mountOne := func(t *testing.T, s step) driverclient.MountRequest {
		t.Helper()
		req := volume(t, s.sa, "vault", s.params)
		must.addJWTs(req)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := r.client.Mount(ctx, req)
		if s.code == codes.OK {
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		} else {
			wantCode(t, err, s.code)
			// The status message reaches the pod's events: it must be as
			// clean as the logs.
			msg := status.Convert(err).Message()
			for v, what := range must.snapshot() {
				if strings.Contains(msg, v) {
					t.Errorf("%s: the error message holds the %s: %s", s.name, what, msg)
				}
			}
		}
		return req
	}
	for _, s := range steps {
		req := mountOne(t, s)
		if s.code != codes.OK {
			continue
		}
		for name, want := range s.files {
			if got := readFile(t, req.TargetPath, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		// Everything mounted is secret.
		for _, name := range []string{"tls/cert.pem", "tls/key.pem", "db/username", "db/password"} {
			must.add("mounted "+name, readFile(t, req.TargetPath, name))
		}
		if !strings.Contains(readFile(t, req.TargetPath, "tls/key.pem"), "PRIVATE KEY") {
			t.Error("tls/key.pem holds no private key")
		}
		if s.collect {
			tokens = append(tokens, collectToken(t, req.TargetPath, must))
		}
	}

	// A revoked token: the provider logs that it logs in again (naming the
	// token by accessor only) and serves the mount with a new token.
	revoke := tokens[0]
	if err := vlt.Root.Auth().Token().RevokeOrphan(revoke); err != nil {
		t.Fatalf("revoking the provider's token: %v", err)
	}
	req := mountOne(t, step{name: "after revocation", sa: pod, code: codes.OK, params: app(`
- {objectName: self.json, secretPath: auth/token/lookup-self}
- {objectName: kv2/password, secretPath: secret/data/app-logsecrecy, secretKey: password}
`)})
	tokens = append(tokens, collectToken(t, req.TargetPath, must))
	if tokens[1] == tokens[0] {
		t.Error("the mount after revocation used the revoked token")
	}
	stop() // its shutdown is logged too

	out := logs.String()
	t.Logf("captured %d bytes, %d lines of provider logs", len(out), strings.Count(out, "\n"))
	if len(out) == 0 {
		t.Fatal("no logs captured: the capture does not work, so this test would prove nothing")
	}
	for _, want := range []string{
		`"Request failed"`, `code="PermissionDenied"`, `code="NotFound"`, `code="InvalidArgument"`,
		`"Mounted objects"`, `"Leased answer"`, `"Vault refused a cached token; logging in again"`,
		`vault-token(accessor=`, `"Shutting down: finishing in-flight requests"`,
		`pod="apps/logsecrecy-0"`, `role="app"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for v, what := range must.snapshot() {
		if i := strings.Index(out, v); i >= 0 {
			t.Errorf("logs hold the %s: ...%s...", what, excerpt(out, i, len(v)))
		}
	}
	for _, pattern := range []string{"hvs.", "hvb.", "hvr.", "PRIVATE KEY", "BEGIN CERTIFICATE", "eyJ", mark} {
		if i := strings.Index(out, pattern); i >= 0 {
			t.Errorf("logs hold %q: ...%s...", pattern, excerpt(out, i, len(pattern)))
		}
	}
	// Legacy Vault tokens are "s." and 24 characters.
	if m := regexp.MustCompile(`\bs\.[A-Za-z0-9]{24}\b`).FindString(out); m != "" {
		t.Errorf("logs hold something shaped like a Vault token: %s", m)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", out)
	}
}

func (s *secrets) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.vals))
	for k, v := range s.vals {
		out[k] = v
	}
	return out
}

// collectToken reads the provider's own Vault token (and accessor) from a
// mounted auth/token/lookup-self answer.
func collectToken(t *testing.T, dir string, must *secrets) string {
	t.Helper()
	var self struct {
		Data struct {
			ID       string `json:"id"`
			Accessor string `json:"accessor"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(readFile(t, dir, "self.json")), &self); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(self.Data.ID, "hvs.") {
		t.Fatalf("lookup-self gave token %.4q..., want an hvs. token", self.Data.ID)
	}
	must.add("Vault token of the pod", self.Data.ID)
	return self.Data.ID
}

func excerpt(s string, i, n int) string {
	lo, hi := max(0, i-80), min(len(s), i+n+80)
	return s[lo:hi]
}

// README: "Query strings and secretArgs never appear in errors or logs."
// They do, in two ways: the provider quotes a secretPath with its query when
// the query does not parse, and Vault's own 400 messages, passed on
// verbatim, quote the secretArgs value they refuse.
func TestErrorsNeverEchoQueryOrSecretArgs(t *testing.T) {
	needWorld(t)
	logs := captureKlog(t)
	for _, tc := range []struct {
		name, objects, secret string
		code                  codes.Code
	}{
		{"query that does not parse", "- {objectName: x, secretPath: 'secret/data/app?token=QSECRET1-%zz', secretKey: password}", "QSECRET1", codes.InvalidArgument},
		{"query with a fragment", "- {objectName: x, secretPath: 'secret/data/app#x?token=QSECRET2', secretKey: password}", "QSECRET2", codes.InvalidArgument},
		{"PUT secretArgs Vault refuses", "- {objectName: x, secretPath: pki/issue/example-com, method: PUT, secretKey: certificate, secretArgs: {common_name: asecret3.evil.org}}", "asecret3", codes.InvalidArgument},
		{"PUT secretArgs of the wrong type", "- {objectName: x, secretPath: pki/issue/example-com, method: PUT, secretKey: certificate, secretArgs: {common_name: a.example.com, ttl: ASECRET4}}", "ASECRET4", codes.InvalidArgument},
		{"GET secretArgs of the wrong type", "- {objectName: x, secretPath: secret/data/app, secretKey: password, secretArgs: {version: ASECRET5}}", "ASECRET5", codes.InvalidArgument},
		{"GET query of the wrong type", "- {objectName: x, secretPath: 'secret/data/app?version=QSECRET6', secretKey: password}", "QSECRET6", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mount(t, volume(t, appSA, "vault", map[string]string{"roleName": "app", "objects": tc.objects}))
			wantCode(t, err, tc.code)
			if msg := status.Convert(err).Message(); strings.Contains(msg, tc.secret) {
				t.Errorf("the error message quotes %q: %s", tc.secret, msg)
			}
			if out := logs.String(); strings.Contains(out, tc.secret) {
				t.Errorf("the logs quote %q", tc.secret)
			}
		})
	}
}
