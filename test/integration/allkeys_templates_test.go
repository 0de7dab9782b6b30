package integration

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// All-keys objects (secretKey "*") and template objects against the real
// Vault, through the driver's client path.

func mustWrite(t *testing.T, path string, data map[string]any) {
	t.Helper()
	if _, err := vlt.Write(path, data); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

// listFiles returns the regular files below dir (relative, sorted),
// skipping the atomic writer's ..data links and timestamped directories.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(rel string)
	walk = func(rel string) {
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() {
			out = append(out, rel)
			return
		}
		sub, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range sub {
			walk(filepath.Join(rel, e.Name()))
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		walk(e.Name())
	}
	sort.Strings(out)
	return out
}

func TestAllKeysKV(t *testing.T) {
	needWorld(t)
	mustWrite(t, "secret/data/app-allkeys", map[string]any{"data": map[string]any{
		"username": "ak-user", "password": "ak-pw", "port": 5432, "tags": []string{"x", "y"}, ".env": "E=1",
	}})
	mustWrite(t, "kv1/allkeys-b64", map[string]any{"cert": "Y2VydA==", "key": "a2V5"})
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: creds
  secretPath: secret/data/app-allkeys
  secretKey: "*"
  filePermission: 0400
- objectName: creds/extra
  secretPath: secret/data/app
  secretKey: username
- objectName: tls
  secretPath: kv1/allkeys-b64
  secretKey: "*"
  encoding: base64
`,
	})
	audit := newAuditCursor(t)
	versions := mustMount(t, req)
	dir := req.TargetPath

	want := map[string]string{
		"creds/.env":     "E=1",
		"creds/password": "ak-pw",
		"creds/port":     "5432",
		"creds/tags":     `["x","y"]`,
		"creds/username": "ak-user",
		"creds/extra":    "app",
		"tls/cert":       "cert",
		"tls/key":        "key",
	}
	var wantNames []string
	for name, contents := range want {
		wantNames = append(wantNames, name)
		if got := readFile(t, dir, name); got != contents {
			t.Errorf("%s = %q, want %q", name, got, contents)
		}
	}
	sort.Strings(wantNames)
	if got := listFiles(t, dir); strings.Join(got, ",") != strings.Join(wantNames, ",") {
		t.Errorf("files %v, want %v", got, wantNames)
	}
	if m := fileMode(t, dir, "creds/password"); m != 0o400 {
		t.Errorf("creds/password mode %o, want 400", m)
	}
	if m := fileMode(t, dir, "tls/key"); m != 0o644 {
		t.Errorf("tls/key mode %o, want 644", m)
	}
	// One version per object, whatever the number of files.
	if len(versions) != 3 || versions["creds"] == "" || versions["tls"] == "" || versions["creds/extra"] == "" {
		t.Errorf("versions %v, want creds, creds/extra and tls", versions)
	}
	if n := audit.count("secret/data/app-allkeys"); n != 1 {
		t.Errorf("Vault saw %d reads of the all-keys secret, want 1", n)
	}
}

// An all-keys PKI object: certificate, key and chain of one issue call.
func TestAllKeysPKI(t *testing.T) {
	needWorld(t)
	req := volume(t, appSA, "vault", map[string]string{
		"roleName": "app",
		"objects":  "- {objectName: tls, secretPath: pki/issue/example-com, method: PUT, secretKey: \"*\", secretArgs: {common_name: all.example.com, ttl: 1h}}",
	})
	mustMount(t, req)
	files := listFiles(t, req.TargetPath)
	for _, f := range []string{"tls/certificate", "tls/private_key", "tls/issuing_ca", "tls/ca_chain", "tls/serial_number", "tls/expiration"} {
		if i := sort.SearchStrings(files, f); i == len(files) || files[i] != f {
			t.Errorf("no %s among %v", f, files)
		}
	}
	cert := parseCert(t, readFile(t, req.TargetPath, "tls/certificate"))
	if cert.Subject.CommonName != "all.example.com" {
		t.Errorf("CN %q", cert.Subject.CommonName)
	}
	block, _ := pem.Decode([]byte(readFile(t, req.TargetPath, "tls/private_key")))
	if block == nil {
		t.Fatal("tls/private_key is not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("the key does not belong to the certificate")
	}
	var chain []string
	if err := json.Unmarshal([]byte(readFile(t, req.TargetPath, "tls/ca_chain")), &chain); err != nil || len(chain) == 0 {
		t.Errorf("tls/ca_chain is not a JSON list of PEM: %v", err)
	}
}

func TestAllKeysVersions(t *testing.T) {
	needWorld(t)
	objects := "- {objectName: rot, secretPath: kv1/allkeys-rot, secretKey: \"*\"}\n- {objectName: still, secretPath: secret/data/app, secretKey: username}"
	params := map[string]string{"roleName": "app", "objects": objects}
	dir := t.TempDir()
	mountAt := func() map[string]string {
		t.Helper()
		req := volume(t, appSA, "vault", params)
		req.TargetPath = dir
		return mustMount(t, req)
	}
	mustWrite(t, "kv1/allkeys-rot", map[string]any{"a": "1", "b": "2"})
	v1 := mountAt()
	if v := mountAt(); v["rot"] != v1["rot"] {
		t.Errorf("unchanged secret, version %s then %s", v1["rot"], v["rot"])
	}
	seen := map[string]string{v1["rot"]: "initial"}
	for _, step := range []struct {
		name  string
		data  map[string]any
		files []string
	}{
		{"value changed", map[string]any{"a": "1", "b": "3"}, []string{"rot/a", "rot/b"}},
		{"key added", map[string]any{"a": "1", "b": "3", "c": "4"}, []string{"rot/a", "rot/b", "rot/c"}},
		{"key removed", map[string]any{"a": "1", "c": "4"}, []string{"rot/a", "rot/c"}},
	} {
		mustWrite(t, "kv1/allkeys-rot", step.data)
		v := mountAt()
		if prev, dup := seen[v["rot"]]; dup {
			t.Errorf("%s: version equals the one after %s", step.name, prev)
		}
		seen[v["rot"]] = step.name
		if v["still"] != v1["still"] {
			t.Errorf("%s: the version of an unchanged object changed", step.name)
		}
		var got []string
		for _, f := range listFiles(t, dir) {
			if strings.HasPrefix(f, "rot/") {
				got = append(got, f)
			}
		}
		if strings.Join(got, ",") != strings.Join(step.files, ",") {
			t.Errorf("%s: files %v, want %v", step.name, got, step.files)
		}
		for k, val := range step.data {
			if c := readFile(t, dir, "rot/"+k); c != val {
				t.Errorf("%s: rot/%s = %q, want %q", step.name, k, c, val)
			}
		}
	}
}

func TestAllKeysFailures(t *testing.T) {
	needWorld(t)
	mustWrite(t, "kv1/allkeys-slash", map[string]any{"ok": "fine", "tls/cert": "hidden-value-123"})
	mustWrite(t, "kv1/allkeys-dotdot", map[string]any{"..": "hidden-value-123"})
	mustWrite(t, "kv1/allkeys-clash", map[string]any{"user": "u", "pass": "hidden-value-123"})
	mustWrite(t, "secret/data/app-allkeys-empty", map[string]any{"data": map[string]any{}})
	for _, tc := range []struct {
		name    string
		objects string
		code    codes.Code
		msg     []string
	}{
		{"key with a slash", "- {objectName: creds, secretPath: kv1/allkeys-slash, secretKey: \"*\"}", codes.InvalidArgument, []string{`object "creds"`, `key "tls/cert"`, `"/"`}},
		{"key ..", "- {objectName: creds, secretPath: kv1/allkeys-dotdot, secretKey: \"*\"}", codes.InvalidArgument, []string{`object "creds"`, `key ".."`}},
		{"key clashes with another object", "- {objectName: creds, secretPath: kv1/allkeys-clash, secretKey: \"*\"}\n- {objectName: creds/user, secretPath: secret/data/app, secretKey: username}",
			codes.InvalidArgument, []string{`"creds/user"`, `object "creds" (key "user")`, `object "creds/user"`}},
		{"key is a file another object needs as a directory", "- {objectName: creds, secretPath: kv1/allkeys-clash, secretKey: \"*\"}\n- {objectName: creds/user/name, secretPath: secret/data/app, secretKey: username}",
			codes.InvalidArgument, []string{`object "creds" (key "user")`, `object "creds/user/name" needs it to be a directory`}},
		{"secret without keys", "- {objectName: creds, secretPath: secret/data/app-allkeys-empty, secretKey: \"*\"}", codes.NotFound, []string{`object "creds"`, "has no keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := volume(t, appSA, "vault", map[string]string{"roleName": "app", "objects": tc.objects})
			_, err := mount(t, req)
			wantCode(t, err, tc.code, tc.msg...)
			if strings.Contains(err.Error(), "hidden-value-123") {
				t.Errorf("error quotes a secret value: %v", err)
			}
			if entries, _ := os.ReadDir(req.TargetPath); len(entries) != 0 {
				t.Errorf("a failed mount wrote %d entries", len(entries))
			}
		})
	}
}

// A template renders a connection config from a database credential (an
// unwritten all-keys object) and KV values; the credential works.
func TestTemplateDatabaseConfig(t *testing.T) {
	needWorld(t)
	mustWrite(t, "secret/data/app-tmpl", map[string]any{"data": map[string]any{"host": "127.0.0.1", "db/name": "postgres"}})
	// A pod of its own: the provider caches a pod's database credential,
	// and other tests count the credentials appSA's pod is issued.
	sa := appSA
	sa.PodName, sa.PodUID = "app-tmpl", "uid-template-db"
	req := volume(t, sa, "vault", map[string]string{
		"roleName": "app",
		"objects": `
- objectName: db
  secretPath: database/creds/app
  secretKey: "*"
  writeFile: false
- objectName: settings
  secretPath: secret/data/app-tmpl
  secretKey: "*"
  writeFile: false
- objectName: config/db.env
  filePermission: 0400
  template: |
    PGHOST={{ .Values.settings.host }}
    PGDATABASE={{ index .Values.settings "db/name" }}
    PGUSER={{ .Values.db.username }}
    PGPASSWORD={{ .Values.db.password | quote }}
    AUTH={{ printf "%s:%s" .Values.db.username .Values.db.password | base64enc }}
- objectName: config/db.json
  template: '{{ toJSON .Values.db }}'
`,
	})
	audit := newAuditCursor(t)
	versions := mustMount(t, req)
	if n := audit.count("database/creds/app"); n != 1 {
		t.Errorf("Vault issued %d credentials, want 1", n)
	}
	if got := listFiles(t, req.TargetPath); strings.Join(got, ",") != "config/db.env,config/db.json" {
		t.Errorf("files %v: unwritten objects must not be mounted", got)
	}
	if len(versions) != 2 || versions["config/db.env"] == "" || versions["config/db.json"] == "" {
		t.Errorf("versions %v, want the two templates only", versions)
	}
	if m := fileMode(t, req.TargetPath, "config/db.env"); m != 0o400 {
		t.Errorf("config/db.env mode %o", m)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, req.TargetPath, "config/db.env")))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		env[k] = v
	}
	if env["PGHOST"] != "127.0.0.1" || env["PGDATABASE"] != "postgres" || env["PGUSER"] == "" {
		t.Fatalf("config/db.env = %v", env)
	}
	var creds struct{ Username, Password string }
	if err := json.Unmarshal([]byte(readFile(t, req.TargetPath, "config/db.json")), &creds); err != nil {
		t.Fatal(err)
	}
	if creds.Username != env["PGUSER"] || `"`+creds.Password+`"` != env["PGPASSWORD"] {
		t.Errorf("the two templates saw different credentials: %v vs %+v", env, creds)
	}
	out, err := pg.Query(context.Background(), creds.Username, creds.Password, "SELECT current_user")
	if err != nil || out != creds.Username {
		t.Fatalf("logging in with the rendered credential: %v: %s", err, out)
	}
}

func TestTemplateVersionFollowsRenderedBytes(t *testing.T) {
	needWorld(t)
	objects := "- {objectName: in, secretPath: kv1/tmpl-version, secretKey: \"*\", writeFile: false}\n- {objectName: out, template: 'v={{ .Values.in.used }}'}"
	params := map[string]string{"roleName": "app", "objects": objects}
	mustWrite(t, "kv1/tmpl-version", map[string]any{"used": "1", "unused": "a"})
	v1 := mustMount(t, volume(t, appSA, "vault", params))
	mustWrite(t, "kv1/tmpl-version", map[string]any{"used": "1", "unused": "b"})
	v2 := mustMount(t, volume(t, appSA, "vault", params))
	mustWrite(t, "kv1/tmpl-version", map[string]any{"used": "2", "unused": "b"})
	req := volume(t, appSA, "vault", params)
	v3 := mustMount(t, req)
	if len(v1) != 1 || v1["out"] == "" {
		t.Fatalf("versions %v, want out only", v1)
	}
	if v1["out"] != v2["out"] {
		t.Error("the template's version changed with an input it does not render")
	}
	if v3["out"] == v2["out"] {
		t.Error("the template's version did not change with its rendered bytes")
	}
	if got := readFile(t, req.TargetPath, "out"); got != "v=2" {
		t.Errorf("out = %q", got)
	}
}

func TestTemplateRenderFailures(t *testing.T) {
	needWorld(t)
	mustWrite(t, "kv1/tmpl-fail", map[string]any{"user": "u", "secret": "hidden-value-456"})
	for _, tc := range []struct {
		name    string
		objects string
		code    codes.Code
		msg     []string
	}{
		{"key missing at render time", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: \"*\", writeFile: false}\n- objectName: app.conf\n  template: |\n    user={{ .Values.in.user }}\n    pass={{ .Values.in.password }}\n",
			codes.InvalidArgument, []string{`object "app.conf": template: app.conf:2:`, `no entry for key "password"`}},
		{"base64dec of a value that is not", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: secret, writeFile: false}\n- {objectName: t, template: '{{ base64dec .Values.in }}'}",
			codes.InvalidArgument, []string{`object "t": template: t:1:`, "not valid base64"}},
		{"ranging over a secret string", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: secret, writeFile: false}\n- {objectName: t, template: '{{ range .Values.in }}{{ end }}'}",
			codes.InvalidArgument, []string{`object "t": template: t:1:`, "not over a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := volume(t, appSA, "vault", map[string]string{"roleName": "app", "objects": tc.objects})
			_, err := mount(t, req)
			wantCode(t, err, tc.code, tc.msg...)
			if strings.Contains(err.Error(), "hidden-value-456") {
				t.Errorf("error quotes a secret value: %v", err)
			}
			if entries, _ := os.ReadDir(req.TargetPath); len(entries) != 0 {
				t.Errorf("a failed mount wrote %d entries", len(entries))
			}
		})
	}
}

// Template mistakes visible in the SecretProviderClass are refused before
// Vault sees anything: not even a login.
func TestTemplateInvalidInputNeverReachesVault(t *testing.T) {
	needWorld(t)
	for _, tc := range []struct {
		name    string
		objects string
		msg     []string
	}{
		{"uses a missing object", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: user, writeFile: false}\n- objectName: t\n  template: |\n    {{ .Values.in }}\n    {{ .Values.nope }}\n",
			[]string{`object "t": template: t:2:`, `uses object "nope"`}},
		{"uses a missing object by index", "- {objectName: t, template: '{{ index .Values \"db/password\" }}'}", []string{`uses object "db/password"`}},
		{"uses a template", "- {objectName: a, template: x}\n- {objectName: b, template: '{{ .Values.a }}'}", []string{`object "b"`, `"a", which is a template`}},
		{"function not available", "- {objectName: t, template: '{{ env \"VAULT_TOKEN\" }}'}", []string{`object "t": template: t:1:`, `"env" not defined`}},
		{"call is not available", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: user, writeFile: false}\n- {objectName: t, template: '{{ call .Values.in }}'}", []string{`"call" is not available`}},
		{"syntax error", "- {objectName: t, template: '{{ if }}'}", []string{`object "t": template: t:1:`}},
		{"template with secretPath", "- {objectName: t, template: x, secretPath: secret/data/app}", []string{`object "t"`, "cannot have secretPath"}},
		{"unwritten object nobody uses", "- {objectName: in, secretPath: kv1/tmpl-fail, secretKey: user, writeFile: false}", []string{`object "in" has writeFile: false`}},
		{"unquoted *", "- objectName: a\n  secretPath: kv1/tmpl-fail\n  secretKey: *\n", []string{`secretKey: "*"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audit := newAuditCursor(t)
			_, err := mount(t, volume(t, appSA, "vault", map[string]string{"roleName": "app", "objects": tc.objects}))
			wantCode(t, err, codes.InvalidArgument, tc.msg...)
			if es := audit.next(); len(es) != 0 {
				t.Errorf("Vault saw %d requests for an invalid mount: %v", len(es), es)
			}
		})
	}
}
