package provider

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
)

// Tests for all-keys objects (secretKey "*") and template objects.

func TestRenderAllKeys(t *testing.T) {
	type kv struct{ path, contents string }
	tests := []struct {
		name     string
		data     map[string]any
		encoding string
		want     []kv
	}{
		{
			name: "KV v2 reads data.data, sorted by key",
			data: kvV2(map[string]any{"username": "u", "password": "p", "api-key": "k"}),
			want: []kv{{"creds/api-key", "k"}, {"creds/password", "p"}, {"creds/username", "u"}},
		},
		{
			name: "KV v1 reads data, a key called data is a file like any other",
			data: map[string]any{"data": map[string]any{"inner": "x"}, "user": "u"},
			want: []kv{{"creds/data", `{"inner":"x"}`}, {"creds/user", "u"}},
		},
		{
			name: "values rendered like secretKey: strings raw, others JSON",
			data: map[string]any{"s": " a\nb ", "n": json.Number("5432"), "b": true, "l": []any{"x", json.Number("1")}, "z": nil},
			want: []kv{{"creds/b", "true"}, {"creds/l", `["x",1]`}, {"creds/n", "5432"}, {"creds/s", " a\nb "}, {"creds/z", "null"}},
		},
		{
			name:     "encoding applies to each value",
			data:     map[string]any{"a": "aGVsbG8=", "b": "d29ybGQ="},
			encoding: config.EncodingBase64,
			want:     []kv{{"creds/a", "hello"}, {"creds/b", "world"}},
		},
		{
			name: "keys that are unusual but valid file names",
			data: map[string]any{".env": "e", "..data": "d", "a b": "s", "é": "u", "*": "star"},
			want: []kv{{"creds/*", "star"}, {"creds/..data", "d"}, {"creds/.env", "e"}, {"creds/a b", "s"}, {"creds/é", "u"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &config.Object{ObjectName: "creds", SecretKey: config.AllKeys, Encoding: tt.encoding}
			files, err := renderAllKeys(obj, "secret/data/x", &api.Secret{Data: tt.data})
			if err != nil {
				t.Fatalf("renderAllKeys: %v", err)
			}
			if len(files) != len(tt.want) {
				t.Fatalf("got %d files, want %d: %+v", len(files), len(tt.want), files)
			}
			for i, w := range tt.want {
				if files[i].path != w.path || string(files[i].contents) != w.contents {
					t.Errorf("file %d = %s %q, want %s %q", i, files[i].path, files[i].contents, w.path, w.contents)
				}
				if files[i].key != strings.TrimPrefix(w.path, "creds/") {
					t.Errorf("file %d key = %q", i, files[i].key)
				}
				if err := config.ValidateFileName(files[i].path); err != nil {
					t.Errorf("file %s: %v", files[i].path, err)
				}
			}
		})
	}
}

func TestRenderAllKeysErrors(t *testing.T) {
	const secret = "s3cr3t-value-zz"
	tests := []struct {
		name     string
		data     map[string]any
		nilData  bool
		encoding string
		code     codes.Code
		want     []string
	}{
		{"key with a slash", map[string]any{"ok": secret, "tls/cert": secret}, false, "", codes.InvalidArgument, []string{`object "creds"`, `key "tls/cert"`, `must not contain "/"`, `secretKey: "tls/cert"`}},
		{"key ..", map[string]any{"..": secret}, false, "", codes.InvalidArgument, []string{`object "creds"`, `key ".."`, `must not contain ".."`}},
		{"key .", map[string]any{".": secret}, false, "", codes.InvalidArgument, []string{`key "."`, "not clean"}},
		{"empty key", map[string]any{"": secret}, false, "", codes.InvalidArgument, []string{`key ""`, "not clean"}},
		{"key with NUL", map[string]any{"a\x00b": secret}, false, "", codes.InvalidArgument, []string{"NUL"}},
		{"key too long", map[string]any{strings.Repeat("k", 256): secret}, false, "", codes.InvalidArgument, []string{"256 bytes long"}},
		{"no keys", map[string]any{}, false, "", codes.NotFound, []string{`object "creds"`, "secret/data/x has no keys"}},
		{"no data", nil, true, "", codes.NotFound, []string{"has no keys"}},
		{"deleted KV v2 version", kvV2(nil), false, "", codes.NotFound, []string{"has no keys"}},
		{"value not base64 names the key", map[string]any{"a": "aGk=", "b": secret}, false, config.EncodingBase64, codes.InvalidArgument, []string{`object "creds"`, `key "b"`, "not valid base64"}},
		{"value not hex names the key", map[string]any{"h": secret}, false, config.EncodingHex, codes.InvalidArgument, []string{`key "h"`, "hex"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &config.Object{ObjectName: "creds", SecretKey: config.AllKeys, Encoding: tt.encoding}
			s := &api.Secret{Data: tt.data}
			if tt.nilData {
				s = nil
			}
			files, err := renderAllKeys(obj, "secret/data/x", s)
			if err == nil {
				t.Fatalf("renderAllKeys succeeded: %+v", files)
			}
			st := toStatus(context.Background(), err)
			if st.Code() != tt.code {
				t.Errorf("code %s, want %s: %v", st.Code(), tt.code, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q does not contain %q", st.Message(), w)
				}
			}
			if strings.Contains(st.Message(), secret) {
				t.Errorf("message %q quotes a value", st.Message())
			}
		})
	}
}

func TestCheckFiles(t *testing.T) {
	objs := func(names ...string) []config.Object {
		out := make([]config.Object, len(names))
		for i, n := range names {
			out[i] = config.Object{ObjectName: n}
		}
		return out
	}
	one := func(path string) []file { return []file{{path: path}} }
	keys := func(dir string, ks ...string) []file {
		var out []file
		for _, k := range ks {
			out = append(out, file{path: dir + "/" + k, key: k})
		}
		return out
	}
	tests := []struct {
		name  string
		objs  []config.Object
		files [][]file
		want  []string // empty: no clash
	}{
		{"distinct", objs("creds", "creds/extra", "other"), [][]file{keys("creds", "user", "password"), one("creds/extra"), one("other")}, nil},
		{"all-keys key and another object's file", objs("creds", "creds/user"), [][]file{keys("creds", "password", "user"), one("creds/user")},
			[]string{`file "creds/user" is written by object "creds" (key "user") and by object "creds/user"`}},
		{"reversed order", objs("creds/user", "creds"), [][]file{one("creds/user"), keys("creds", "user")},
			[]string{`object "creds/user" and by object "creds" (key "user")`}},
		{"all-keys key is a file, another object needs a directory", objs("creds", "creds/sub/x"), [][]file{keys("creds", "sub"), one("creds/sub/x")},
			[]string{`object "creds" (key "sub") writes the file "creds/sub"`, `object "creds/sub/x" needs it to be a directory`}},
		{"two all-keys objects", objs("a", "a/b"), [][]file{keys("a", "b"), keys("a/b", "c")},
			[]string{`object "a" (key "b") writes the file "a/b", but object "a/b" (key "c") needs it to be a directory for "a/b/c"`}},
		{"unwritten objects have no files", objs("a", "a/b"), [][]file{nil, keys("a/b", "c")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFiles(tt.objs, tt.files)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("checkFiles = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("checkFiles found no clash")
			}
			if st := toStatus(context.Background(), err); st.Code() != codes.InvalidArgument {
				t.Errorf("code %s, want InvalidArgument", st.Code())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func files(resp *pb.MountResponse) []string {
	var out []string
	for _, f := range resp.Files {
		out = append(out, f.Path+"="+string(f.Contents))
	}
	return out
}

func versions(resp *pb.MountResponse) map[string]string {
	out := map[string]string{}
	for _, v := range resp.ObjectVersion {
		out[v.Id] = v.Version
	}
	return out
}

func TestMountAllKeysAndTemplates(t *testing.T) {
	v := newVault(t)
	v.PutKV("kv/app", map[string]any{"b": "2", "a": "1", "n": json.Number("7")})
	p := newProvider(v)
	req := mountRequest(t, `
- objectName: first
  secretPath: secret/data/app
  secretKey: username
- objectName: app
  secretPath: kv/app
  secretKey: "*"
  filePermission: 0400
- objectName: db
  secretPath: database/creds/r
  secretKey: "*"
  writeFile: false
- objectName: db/password
  secretPath: database/creds/r
  secretKey: password
  writeFile: false
- objectName: conf/db.ini
  template: |
    user={{ .Values.db.username }}
    password={{ index .Values "db/password" }}
    app={{ .Values.app.a }}{{ .Values.app.b }} first={{ .Values.first }}
- objectName: last
  secretPath: secret/data/app
  secretKey: port
`, true)
	resp, err := p.Mount(context.Background(), req)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	want := []string{
		"first=app-user",
		"app/a=1", "app/b=2", "app/n=7",
		"conf/db.ini=user=v-r-1\npassword=p-r-1\napp=12 first=app-user\n",
		"last=5432",
	}
	if got := files(resp); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("files =\n%q\nwant\n%q", got, want)
	}
	for _, f := range resp.Files {
		wantMode := int32(0o644)
		if strings.HasPrefix(f.Path, "app/") {
			wantMode = 0o400
		}
		if f.Mode != wantMode {
			t.Errorf("%s mode %o, want %o", f.Path, f.Mode, wantMode)
		}
	}
	// One version per written object, in order; none for db and
	// db/password, which are only template inputs.
	var ids []string
	for _, v := range resp.ObjectVersion {
		ids = append(ids, v.Id)
		if v.Version == "" {
			t.Errorf("%s has an empty version", v.Id)
		}
	}
	if strings.Join(ids, ",") != "first,app,conf/db.ini,last" {
		t.Errorf("versions for %v", ids)
	}
	// The unwritten objects were read (once: they share the request).
	if n := v.Count("GET", "database/creds/r"); n != 1 {
		t.Errorf("%d database credential reads, want 1", n)
	}
}

func TestMountAllKeysVersion(t *testing.T) {
	v := newVault(t)
	p := newProvider(v)
	objects := "- {objectName: app, secretPath: kv/app, secretKey: \"*\"}\n- {objectName: other, secretPath: kv/other, secretKey: \"*\"}\n"
	mount := func(data map[string]any) string {
		t.Helper()
		v.PutKV("kv/app", data)
		resp, err := p.Mount(context.Background(), mountRequest(t, objects, true))
		if err != nil {
			t.Fatal(err)
		}
		return versions(resp)["app"]
	}
	v.PutKV("kv/other", map[string]any{"x": "1"})
	base := mount(map[string]any{"a": "1", "b": "2"})
	// Go randomises map iteration: repeat to catch order dependence.
	for i := 0; i < 20; i++ {
		if v := mount(map[string]any{"b": "2", "a": "1"}); v != base {
			t.Fatalf("unchanged secret, version %s then %s", base, v)
		}
	}
	seen := map[string]string{base: "base"}
	for _, tc := range []struct {
		name string
		data map[string]any
	}{
		{"value changed", map[string]any{"a": "1", "b": "3"}},
		{"key added", map[string]any{"a": "1", "b": "2", "c": ""}},
		{"key removed", map[string]any{"a": "1"}},
		{"key renamed", map[string]any{"a": "1", "c": "2"}},
		{"value moved between keys", map[string]any{"a": "2", "b": "1"}},
		{"bytes moved from a value to a name", map[string]any{"a": "12", "b": ""}},
	} {
		v := mount(tc.data)
		if prev, dup := seen[v]; dup {
			t.Errorf("%s: same version as %s", tc.name, prev)
		}
		seen[v] = tc.name
	}
}

// A template's version follows its rendered bytes: a change to an input it
// does not use changes nothing.
func TestMountTemplateVersion(t *testing.T) {
	v := newVault(t)
	p := newProvider(v)
	objects := "- {objectName: in, secretPath: kv/in, secretKey: \"*\", writeFile: false}\n- {objectName: out, template: '{{ .Values.in.used }}'}\n"
	mount := func(data map[string]any) *pb.MountResponse {
		t.Helper()
		v.PutKV("kv/in", data)
		resp, err := p.Mount(context.Background(), mountRequest(t, objects, true))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ObjectVersion) != 1 || resp.ObjectVersion[0].Id != "out" {
			t.Fatalf("versions %v, want out only", resp.ObjectVersion)
		}
		return resp
	}
	v1 := mount(map[string]any{"used": "1", "unused": "a"}).ObjectVersion[0].Version
	v2 := mount(map[string]any{"used": "1", "unused": "b"}).ObjectVersion[0].Version
	r3 := mount(map[string]any{"used": "2", "unused": "b"})
	if v1 != v2 {
		t.Error("version changed with an input the template does not use")
	}
	if r3.ObjectVersion[0].Version == v2 {
		t.Error("version did not change with the rendered bytes")
	}
	if string(r3.Files[0].Contents) != "2" {
		t.Errorf("out = %q", r3.Files[0].Contents)
	}
}

func TestMountAllKeysAndTemplateErrors(t *testing.T) {
	tests := []struct {
		name     string
		kv       map[string]map[string]any
		objects  string
		maxResp  int
		want     codes.Code
		wantMsg  []string
		noMsg    []string
		noVault  bool
		wantFunc func(error) bool
	}{
		{
			name:    "all-keys key clashes with another object",
			kv:      map[string]map[string]any{"kv/c": {"user": "u", "pass": "hunter2hunter2"}},
			objects: "- {objectName: creds, secretPath: kv/c, secretKey: \"*\"}\n- {objectName: creds/user, secretPath: secret/data/app, secretKey: username}",
			want:    codes.InvalidArgument,
			wantMsg: []string{`file "creds/user" is written by object "creds" (key "user") and by object "creds/user"`},
			noMsg:   []string{"hunter2"},
		},
		{
			name:    "key that is no file name",
			kv:      map[string]map[string]any{"kv/c": {"a/b": "hunter2hunter2"}},
			objects: "- {objectName: creds, secretPath: kv/c, secretKey: \"*\"}",
			want:    codes.InvalidArgument,
			wantMsg: []string{`object "creds"`, `key "a/b"`},
			noMsg:   []string{"hunter2"},
		},
		{
			name:    "all-keys secret without keys",
			kv:      map[string]map[string]any{"kv/c": {}},
			objects: "- {objectName: creds, secretPath: kv/c, secretKey: \"*\"}",
			want:    codes.NotFound,
			wantMsg: []string{`object "creds"`, "kv/c has no keys"},
		},
		{
			name:    "template uses a key the secret lacks",
			kv:      map[string]map[string]any{"kv/c": {"user": "hunter2hunter2"}},
			objects: "- {objectName: creds, secretPath: kv/c, secretKey: \"*\", writeFile: false}\n- objectName: app.conf\n  template: |\n    user={{ .Values.creds.user }}\n    pass={{ .Values.creds.pass }}\n",
			want:    codes.InvalidArgument,
			wantMsg: []string{`object "app.conf": template: app.conf:2:`, `map has no entry for key "pass"`},
			noMsg:   []string{"hunter2"},
		},
		{
			name:    "template ranges over a secret string",
			kv:      map[string]map[string]any{"kv/c": {"user": "hunter2hunter2"}},
			objects: "- {objectName: u, secretPath: kv/c, secretKey: user, writeFile: false}\n- {objectName: t, template: '{{ range .Values.u }}{{ end }}'}",
			want:    codes.InvalidArgument,
			wantMsg: []string{`object "t": template: t:1:`},
			noMsg:   []string{"hunter2"},
		},
		{
			name:    "template output over the response limit",
			kv:      map[string]map[string]any{"kv/c": {"a": "0123456789", "b": "0123456789", "c": "0123456789"}},
			objects: "- {objectName: c, secretPath: kv/c, secretKey: \"*\", writeFile: false}\n- {objectName: t, template: '{{ range .Values.c }}{{ . }}{{ end }}'}",
			maxResp: 25,
			want:    codes.ResourceExhausted,
			wantMsg: []string{"template: t:", "more than 25 bytes"},
		},
		{
			name:    "template uses a missing object: refused before Vault",
			objects: "- {objectName: a, secretPath: kv/c, secretKey: x, writeFile: false}\n- {objectName: t, template: '{{ .Values.a }}{{ .Values.b }}'}",
			want:    codes.InvalidArgument,
			wantMsg: []string{`uses object "b"`},
			noVault: true,
		},
		{
			name:    "template function not available: refused before Vault",
			objects: "- {objectName: t, template: '{{ env \"VAULT_TOKEN\" }}'}",
			want:    codes.InvalidArgument,
			wantMsg: []string{`object "t": template: t:1:`, `"env" not defined`},
			noVault: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVault(t)
			for path, data := range tt.kv {
				v.PutKV(path, data)
			}
			p := newProvider(v)
			p.MaxResponseBytes = tt.maxResp
			_, err := p.Mount(context.Background(), mountRequest(t, tt.objects, true))
			if got := status.Code(err); got != tt.want {
				t.Fatalf("Mount = %v (code %v), want %v", err, got, tt.want)
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
			if n := len(v.Calls()); tt.noVault && n != 0 {
				t.Errorf("Vault was called %d times, want none", n)
			}
		})
	}
}

// A template object built by hand (not through ParseObjects) is parsed on
// use; one whose template does not parse is an input error.
func TestRenderTemplateUnparsed(t *testing.T) {
	ctx := context.Background()
	obj := &config.Object{ObjectName: "t", Template: "{{ .Values.a | quote }}"}
	out, err := renderTemplate(ctx, obj, map[string]any{"a": "x"}, tmpl.Limits{MaxOutput: 100})
	if err != nil || string(out) != `"x"` {
		t.Fatalf("renderTemplate = %q, %v", out, err)
	}
	bad := &config.Object{ObjectName: "t", Template: "{{ "}
	if _, err := renderTemplate(ctx, bad, nil, tmpl.Limits{MaxOutput: 100}); !config.IsInputError(err) {
		t.Fatalf("renderTemplate of a bad template = %v, want an input error", err)
	}
	_, err = renderTemplate(ctx, obj, map[string]any{"a": strings.Repeat("x", 200)}, tmpl.Limits{MaxOutput: 100})
	if !errors.Is(err, tmpl.ErrLimit) {
		t.Fatalf("oversized output: %v, want ErrLimit", err)
	}
}

// An all-keys object that is not written only feeds templates: its keys
// need not be file names, and it may have none.
func TestRenderAllKeysUnwritten(t *testing.T) {
	no := false
	obj := &config.Object{ObjectName: "in", SecretKey: config.AllKeys, WriteFile: &no}
	files, err := renderAllKeys(obj, "p", &api.Secret{Data: map[string]any{"db/name": "x", "..": "y"}})
	if err != nil || len(files) != 2 || files[0].key != ".." || files[1].key != "db/name" {
		t.Fatalf("renderAllKeys = %+v, %v", files, err)
	}
	if files, err := renderAllKeys(obj, "p", &api.Secret{Data: map[string]any{}}); err != nil || len(files) != 0 {
		t.Fatalf("renderAllKeys of no keys = %+v, %v", files, err)
	}
}
