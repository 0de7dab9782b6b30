package config_test

// Fuzz targets for everything the provider parses from a Mount request. They
// prove, for any input, that parsing never panics, that every refusal is an
// input error (InvalidArgument, nothing reaches Vault), that what is
// accepted is something the driver will accept and the provider can turn
// into a Vault request, and (FuzzParse, FuzzParseObjects) that parsing
// allocates no more than linearly in the input (allocBound).
//
// `go test ./config` runs every seed below. Short CI smoke run of all four
// targets (one `go test` call each; -fuzzminimizetime keeps the fuzzer from
// spending its budget minimising new corpus entries, which with this
// package's coverage map takes up to the 60 s default each):
//
//	for f in FuzzParse FuzzParseObjects FuzzValidateFileName FuzzRequestKey; do
//	  go test -run '^$' -fuzz "^$f\$" -fuzztime 30s -fuzzminimizetime 5s ./config || exit 1
//	done
//
// A failing input is written to testdata/fuzz/<target>/; keep it there (it
// becomes a seed) once the bug is fixed.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

var fuzzDefaults = config.Defaults{VaultAddress: "https://vault.default:8200", AuthMountPath: "kubernetes"}

// exampleParams returns the parameters of every SecretProviderClass in
// examples/*.yaml, so the seed corpora start from the documented inputs.
func exampleParams(f *testing.F) []map[string]string {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no examples to seed from: %v", err)
	}
	var out []map[string]string
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Kind string `yaml:"kind"`
				Spec struct {
					Parameters map[string]string `yaml:"parameters"`
				} `yaml:"spec"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				f.Fatalf("%s: %v", file, err)
			}
			if doc.Kind == "SecretProviderClass" {
				out = append(out, doc.Spec.Parameters)
			}
		}
	}
	if len(out) < 7 {
		f.Fatalf("found %d SecretProviderClasses in examples/, want at least 7", len(out))
	}
	return out
}

// hostileNames are file names a SecretProviderClass author (or attacker)
// might try.
var hostileNames = []string{
	"a", "tls/tls.crt", "a..b", "a/..data", "...", "..", ".", "./a", "a/.", "a/./b",
	"a//b", "a/", "/etc/passwd", "../../etc/shadow", "a/../../b", "x/..", "..data",
	"..2024_01_01_00_00_00.000000000", "..data/x", "a\x00b", "\x00", "a\\..\\b",
	"..\\x", " ", " a", "a ", "\n", "a\nb", "\t", "\u00e9t\u00e9", "\u202egnp.exe",
	"\ufeffa", "\xff\xfe", "a/\xc0\xaf", "\u2025", "\uff0e\uff0e/x", "con", "a:b", "*",
	"$(id)", "`id`", "a;rm -rf /", "%2e%2e/x", "~", "~/.ssh/id_rsa",
	strings.Repeat("z", 255), strings.Repeat("z", 256), "d/" + strings.Repeat("z", 255),
	strings.Repeat("é", 128), strings.Repeat(strings.Repeat("z", 200)+"/", 20) + strings.Repeat("z", 95),
	strings.Repeat(strings.Repeat("z", 200)+"/", 20) + strings.Repeat("z", 96),
	strings.Repeat("a/", 2048), strings.Repeat("a/", 2047) + "a",
}

// yamlString quotes s as a YAML (JSON-compatible) double-quoted scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// podAttrs are the attributes the driver adds for every pod.
func podAttrs() map[string]string {
	return map[string]string{
		config.AttrPodName:                "app-0",
		config.AttrPodNamespace:           "apps",
		config.AttrPodUID:                 "11111111-2222-3333-4444-555555555555",
		config.AttrServiceAccountName:     "app",
		"secretProviderClass":             "spc",
		"csi.storage.k8s.io/ephemeral":    "false",
		"csi.storage.k8s.io/pod.nodeName": "node-1",
		config.AttrServiceAccountToks:     `{"vault":{"token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","expirationTimestamp":"2030-01-01T00:00:00Z"}}`,
	}
}

func jsonObject(m map[string]string) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkObjects asserts what every accepted objects list must satisfy.
// Objects are Vault reads (one file, or with secretKey "*" a directory of
// one file per key) or templates rendered from the reads (no Vault call);
// writeFile: false keeps a read out of the mount.
func checkObjects(t *testing.T, objs []config.Object) {
	t.Helper()
	if len(objs) == 0 {
		t.Fatal("accepted an empty objects list")
	}
	var files []*v1alpha1.File
	names := make(map[string]bool, len(objs))
	isFile := map[string]bool{} // written objects whose name is one file
	for i := range objs {
		o := &objs[i]
		if err := config.ValidateFileName(o.ObjectName); err != nil {
			t.Fatalf("accepted object name %q that ValidateFileName refuses: %v", o.ObjectName, err)
		}
		if names[o.ObjectName] {
			t.Fatalf("accepted duplicate object name %q", o.ObjectName)
		}
		names[o.ObjectName] = true
		if o.Written() {
			files = append(files, &v1alpha1.File{Path: o.ObjectName, Mode: 0o644, Contents: []byte("x")})
			isFile[o.ObjectName] = !o.IsAllKeys()
		} else if o.FilePermission != 0 {
			t.Fatalf("object %q: filePermission on an object that is not written", o.ObjectName)
		}
		if o.FilePermission > 0o777 {
			t.Fatalf("object %q: accepted filePermission %o", o.ObjectName, o.FilePermission)
		}
		if o.IsTemplate() {
			if o.SecretPath != "" || o.SecretKey != "" || o.Method != "" || o.SecretArgs != nil || o.Encoding != "" || !o.Written() {
				t.Fatalf("template object %q also has Vault read fields: %+v", o.ObjectName, *o)
			}
			if _, err := o.Request(); err == nil {
				t.Fatalf("template object %q makes a Vault request", o.ObjectName)
			}
			continue
		}
		switch o.Method {
		case http.MethodGet, http.MethodPut, http.MethodPost:
		default:
			t.Fatalf("object %q: accepted method %q", o.ObjectName, o.Method)
		}
		switch o.Encoding {
		case "", config.EncodingBase64, config.EncodingHex:
		default:
			t.Fatalf("object %q: accepted encoding %q", o.ObjectName, o.Encoding)
		}
		r, err := o.Request()
		if err != nil {
			t.Fatalf("object %q was accepted but has no Vault request: %v", o.ObjectName, err)
		}
		if r.Path == "" || strings.ContainsAny(r.Path, "?#\x00") || strings.HasPrefix(r.Path, "/") || r.Path != strings.Trim(r.Path, "/") {
			t.Fatalf("object %q: Vault path %q", o.ObjectName, r.Path)
		}
		if r.Method != o.Method {
			t.Fatalf("object %q: request method %q, object method %q", o.ObjectName, r.Method, o.Method)
		}
		if r.Body != nil && !json.Valid(r.Body) {
			t.Fatalf("object %q: body %q is not JSON", o.ObjectName, r.Body)
		}
		if r.Method == http.MethodGet && r.Body != nil {
			t.Fatalf("object %q: GET with a body", o.ObjectName)
		}
		r2, err := o.Request()
		if err != nil || r2.Key() != r.Key() {
			t.Fatalf("object %q: Request is not deterministic: %q vs %q (%v)", o.ObjectName, r.Key(), r2.Key(), err)
		}
	}
	// No written path is needed as a file and as a directory at once.
	for name := range isFile {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if isFile[dir] {
				t.Fatalf("accepted %q as a file and as the directory of %q", dir, name)
			}
		}
	}
	// The driver validates the whole response before writing anything.
	if err := fileutil.Validate(files); err != nil {
		t.Fatalf("accepted object names the driver refuses: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, params := range exampleParams(f) {
		attrs := podAttrs()
		for k, v := range params {
			attrs[k] = v
		}
		f.Add(jsonObject(attrs), "null", "420")
		f.Add(jsonObject(attrs), "", `"420"`)
		// The token in the node-publish secrets instead of the attributes.
		secrets := jsonObject(map[string]string{config.AttrServiceAccountToks: attrs[config.AttrServiceAccountToks]})
		delete(attrs, config.AttrServiceAccountToks)
		f.Add(jsonObject(attrs), secrets, "256")
	}
	base := func(over map[string]string) string {
		attrs := podAttrs()
		attrs[config.ParamRoleName] = "app"
		attrs[config.ParamObjects] = "- {objectName: a, secretPath: secret/data/app, secretKey: password}"
		for k, v := range over {
			attrs[k] = v
		}
		return jsonObject(attrs)
	}
	for _, name := range hostileNames {
		f.Add(base(map[string]string{config.ParamObjects: "- objectName: " + yamlString(name) + "\n  secretPath: secret/data/app\n"}), "null", "420")
	}
	for _, over := range []map[string]string{
		{config.ParamRoleName: ""},
		{config.ParamVaultAddress: "vault:8200"},
		{config.ParamVaultAddress: "http://[::1]:8200"},
		{config.ParamVaultAddress: "https://user:pass@vault:8200/path?x=1#f"},
		{config.ParamVaultAddress: "unix:///var/run/vault.sock"},
		{config.ParamVaultAuthMountPath: "/auth/"},
		{config.ParamVaultAuthMountPath: "auth/auth/k8s"},
		{config.ParamVaultAuthMountPath: "a", config.ParamVaultKubernetesMountPath: "b"},
		{config.ParamVaultSkipTLSVerify: "maybe"},
		{config.ParamVaultSkipTLSVerify: "T"},
		{config.ParamVaultTLSClientCertPath: "/c"},
		{config.ParamAudience: "custom"},
		{config.AttrServiceAccountToks: "{not json"},
		{config.AttrServiceAccountToks: `{"vault":{"token":1}}`},
		{config.AttrServiceAccountToks: `{"vault":{"token":"t","expirationTimestamp":"yesterday"}}`},
		{config.ParamObjects: ""},
		{config.ParamObjects: "[]"},
		{config.ParamObjects: "- {objectName: a, secretPath: 'p?x=%zz'}"},
		{config.ParamObjects: "- {objectName: a, secretPath: p, filePermission: 600}"},
		{config.ParamObjects: "- {objectName: a, secretPath: p, method: PUT, secretArgs: {n: .inf}}"},
		{config.ParamObjects: "- {objectName: a, secretPath: p, secretArgs: {m: {1: 2}}}"},
		{config.ParamObjects: "- &a {objectName: a, secretPath: p}\n- *a"},
		{config.ParamObjects: "- {objectName: a, secretPath: p, secretArgs: {a: &a [x, x], b: &b [*a, *a], c: [*b, *b]}}"},
		{config.ParamObjects: "- {objectName: a, secretPath: p}\n---\n- {objectName: b, secretPath: q}"},
	} {
		f.Add(base(over), "null", "420")
	}
	f.Add("", "", "")
	f.Add("null", "null", "null")
	f.Add("[]", "[]", "[]")
	f.Add(`{"roleName":1}`, "null", "420")
	f.Add(base(nil), `{"csi.storage.k8s.io/serviceAccount.tokens":"[]"}`, "420")
	for _, perm := range []string{"0", "511", "512", "-1", "1e3", "420.5", `"0644"`, `"x"`, "true", "18446744073709551616", "4.2e2"} {
		f.Add(base(nil), "null", perm)
	}

	f.Fuzz(func(t *testing.T, attributes, secrets, permission string) {
		var cfg *config.Config
		var err error
		checkAlloc(t, len(attributes)+len(secrets)+len(permission), func() {
			cfg, err = config.Parse(attributes, secrets, permission, fuzzDefaults)
		})
		if err != nil {
			if !config.IsInputError(err) {
				t.Fatalf("Parse error is not an input error (%T): %v", err, err)
			}
			if cfg != nil {
				t.Fatalf("Parse returned a config with its error %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if cfg.RoleName == "" {
			t.Fatal("accepted an empty roleName")
		}
		if cfg.AuthMountPath == "" || strings.HasPrefix(cfg.AuthMountPath, "/") || strings.HasSuffix(cfg.AuthMountPath, "/") {
			t.Fatalf("auth mount %q", cfg.AuthMountPath)
		}
		if cfg.DefaultMode == 0 || cfg.DefaultMode > 0o777 {
			t.Fatalf("default mode %o", cfg.DefaultMode)
		}
		if (cfg.TLS.ClientCert == "") != (cfg.TLS.ClientKey == "") {
			t.Fatal("accepted a client certificate without key, or the reverse")
		}
		for _, a := range cfg.VaultAddresses {
			if u, err := url.Parse(a); err != nil || u.User != nil {
				t.Fatalf("accepted Vault address with user information or unparsable: %q", a)
			}
		}
		if tls := cfg.TLSFor("https://untrusted.invalid:1"); tls.ClientCert != "" || tls.ClientKey != "" {
			t.Fatalf("an untrusted address gets a client certificate: %+v", tls)
		}
		checkObjects(t, cfg.Objects)
		for i := range cfg.Objects {
			if m := cfg.Objects[i].Mode(cfg.DefaultMode); m == 0 || m > 0o777 {
				t.Fatalf("object %q: mode %o", cfg.Objects[i].ObjectName, m)
			}
		}
	})
}

func FuzzParseObjects(f *testing.F) {
	for _, params := range exampleParams(f) {
		f.Add(params[config.ParamObjects])
	}
	for _, name := range hostileNames {
		f.Add("- objectName: " + yamlString(name) + "\n  secretPath: secret/data/app\n  secretKey: password\n")
	}
	for _, s := range []string{
		"", "[]", "null", "~", "- ", "-", "{}", "a", "- a", "- [a]", "- {}", "- null",
		"- {objectName: a, secretPath: p}\n- {objectName: a/b, secretPath: p}",
		"- {objectName: a/b/c, secretPath: p}\n- {objectName: a/b, secretPath: p}",
		"- {objectName: a, secretPath: p}\n- {objectName: a, secretPath: q}",
		"- {objectName: a, secretPath: 'p?x=%zz'}",
		"- {objectName: a, secretPath: 'p?x=1&x=2&y', secretArgs: {x: [3, {k: v}], z: null}}",
		"- {objectName: a, secretPath: '/v1//?x'}",
		"- {objectName: a, secretPath: 'p#frag'}",
		"- {objectName: a, secretPath: \"p\\0\"}",
		"- {objectName: a, secretPath: p, method: ' put '}",
		"- {objectName: a, secretPath: p, method: DELETE}",
		"- {objectName: a, secretPath: p, encoding: UTF8}",
		"- {objectName: a, secretPath: p, encoding: Base64}",
		"- {objectName: a, secretPath: p, filePermission: 0o600}",
		"- {objectName: a, secretPath: p, filePermission: 0x1ff}",
		"- {objectName: a, secretPath: p, filePermission: '0o777'}",
		"- {objectName: a, secretPath: p, filePermission: 420}",
		"- {objectName: a, secretPath: p, filePermission: 99999999999999999999}",
		"- {objectName: a, secretPath: p, filePermission: !!float 0600}",
		"- {objectName: a, secretPath: p, method: POST, secretArgs: {n: .nan}}",
		"- {objectName: a, secretPath: p, method: POST, secretArgs: {t: 2001-12-14t21:59:43.10-05:00, b: !!binary aGVsbG8=}}",
		"- {objectName: a, secretPath: p, secretArgs: {big: 123456789012345678901234567890, neg: -9223372036854775809}}",
		"- {objectName: a, secretPath: p, secretArgs: {m: {1: 2}}}",
		"- {objectName: a, secretPath: p, secretArgs: {<<: {x: 1}, y: 2}}",
		"- &o {objectName: a, secretPath: p}\n- *o",
		"- {objectName: a, secretPath: p, secretArgs: &x {a: *x}}",
		"- {objectName: a, secretPath: p, secretArgs: {s: &s xxxxxxxx, l: [*s, *s, *s, *s]}}",
		"- {objectName: a, secretPath: p, secretArgs: {a: &a [x, x], b: &b [*a, *a], c: [*b, *b]}}",
		"- {objectName: a, secretPath: p, secretKey: k}\n- {objectName: t, template: &t '{{ .Values.a }}'}\n- {objectName: u, template: *t}",
		"- {<<: {objectName: a, secretKey: k}, secretPath: p}",
		"- {objectName: a, secretPath: p}\n---\n- {objectName: b, secretPath: q}",
		"- {objectName: a, secretPath: p}\n---\n",
		"- objectName: a\n  secretPath: p\n  secretkey: k\n",
		"- !!map {objectName: !!str a, secretPath: !!str p}",
		"- {objectName: !!binary YQ==, secretPath: p}",
		"- {objectName: 1, secretPath: 2, secretKey: 3}",
		"- {objectName: true, secretPath: null}",
		"\ufeff- {objectName: a, secretPath: p}",
		"%YAML 1.1\n---\n- {objectName: a, secretPath: p}",
	} {
		f.Add(s)
	}
	// An alias bomb the allocation bound catches if aliases get through:
	// 26 kB that secretArgs would expand to 36 MB of JSON.
	f.Add("- {objectName: a, secretPath: p, method: PUT, secretArgs: {s: &s " + strings.Repeat("x", 8000) + ", l: [" + strings.Repeat("*s, ", 4500) + "]}}")
	f.Fuzz(func(t *testing.T, s string) {
		var objs []config.Object
		var err error
		checkAlloc(t, len(s), func() { objs, err = config.ParseObjects(s) })
		if err != nil {
			if !config.IsInputError(err) {
				t.Fatalf("ParseObjects error is not an input error (%T): %v", err, err)
			}
			return
		}
		checkObjects(t, objs)
	})
}

// allocBound is what parsing n bytes of input may allocate, generously:
// yaml.v3's node tree costs up to ~130 bytes per input byte and is built
// twice (the alias check, then the strict decode), text/template's tree
// up to ~90 per template byte. Anything that amplifies its input (YAML
// aliases, a parse that copies per reference) goes past it.
func allocBound(n int) uint64 { return 512*uint64(n) + 16<<20 }

// checkAlloc runs f and fails if it allocated more than allocBound(n).
// TotalAlloc counts every allocation, freed or not, so it bounds the heap
// growth f can cause.
func checkAlloc(t *testing.T, n int, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(n) {
		t.Fatalf("%d bytes of input allocated %d bytes, over the bound of %d", n, got, allocBound(n))
	}
}

func FuzzValidateFileName(f *testing.F) {
	for _, name := range hostileNames {
		f.Add(name)
	}
	for _, params := range exampleParams(f) {
		objs, err := config.ParseObjects(params[config.ParamObjects])
		if err != nil {
			f.Fatal(err)
		}
		for _, o := range objs {
			f.Add(o.ObjectName)
		}
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := config.ValidateFileName(name)
		if err == nil {
			// Accepted by us ⇒ accepted by the driver: nothing Vault
			// answered can be thrown away because of the file name.
			if derr := fileutil.Validate([]*v1alpha1.File{{Path: name, Contents: []byte("x"), Mode: 0o644}}); derr != nil {
				t.Fatalf("ValidateFileName accepts %q, the driver refuses it: %v", name, derr)
			}
		}
		// ParseObjects applies exactly this rule and keeps the name as written.
		if !utf8.ValidString(name) {
			return // YAML cannot carry it; json.Marshal would replace bytes
		}
		objs, perr := config.ParseObjects("- objectName: " + yamlString(name) + "\n  secretPath: secret/data/app\n")
		if err != nil && perr == nil {
			t.Fatalf("ValidateFileName refuses %q (%v) but ParseObjects accepts it", name, err)
		}
		if perr == nil && objs[0].ObjectName != name {
			t.Fatalf("ParseObjects turned object name %q into %q", name, objs[0].ObjectName)
		}
	})
}

// FuzzRequestKey proves that Request().Key() identifies exactly the Vault
// call: objects that differ only in secretArgs key order (at any depth), in
// the case of method, in a "v1/" prefix or in fields that do not shape the
// call (secretKey, encoding, filePermission) get the same key, and two
// objects get the same key only when method, path, query and body are equal.
func FuzzRequestKey(f *testing.F) {
	for _, params := range exampleParams(f) {
		f.Add(params[config.ParamObjects], uint64(1))
	}
	for i, s := range []string{
		"- objectName: a\n  secretPath: pki/issue/r\n  secretArgs:\n    common_name: x\n    ttl: 1h\n    alt: [p, q]\n",
		"- objectName: a\n  secretPath: pki/issue/r\n  method: POST\n  secretArgs:\n    common_name: x\n    ttl: 1h\n    m: {b: 1, a: 2, c: {z: [1, {y: 2, x: 3}], w: null}}\n",
		"- {objectName: a, secretPath: 'p?b=2&a=1', secretArgs: {a: 3, c: [4, 5], d: {y: 1, x: 2}}}\n- {objectName: b, secretPath: 'p?a=1&b=2', secretArgs: {c: [4, 5], a: 3, d: {x: 2, y: 1}}}",
		"- {objectName: a, secretPath: p, method: PUT, secretArgs: {s: \"1\", n: 1, f: 1.0, e: 1e0, h: 0x1, b: true, z: ~}}",
		"- {objectName: a, secretPath: p, secretArgs: {s: \"1\", n: 1, f: 1.0, e: 1e0, h: 0x1, b: true, z: ~}}",
		"- {objectName: a, secretPath: p, method: PUT}\n- {objectName: b, secretPath: p, method: POST}\n- {objectName: c, secretPath: p}",
		"- {objectName: a, secretPath: 'p?x=1', secretArgs: {x: 2}}\n- {objectName: b, secretPath: 'p?x=2', secretArgs: {x: 1}}",
		"- {objectName: a, secretPath: 'p?a=%00', method: POST, secretArgs: {\"\\0\": \"\\0\"}}",
		"- {objectName: a, secretPath: 'p', method: POST, secretArgs: {\"<&>\": \"\\u2028\"}}",
		"- {objectName: a, secretPath: p, secretArgs: {a: {}, b: [], c: [[]], d: [{}]}}",
		"- {objectName: a, secretPath: p, method: POST, secretArgs: {}}\n- {objectName: b, secretPath: p, method: POST}",
		// A template with empty read fields (found by the fuzzer in this
		// harness: they must not be filled in when varying).
		"- objectName: 00\n  secretPath: 0\n- objectName: 00000000\n  secretPath:\n  secretKey:\n  template: 000\n",
	} {
		f.Add(s, uint64(i))
	}
	f.Fuzz(func(t *testing.T, s string, seed uint64) {
		objs, err := config.ParseObjects(s)
		if err != nil {
			return
		}
		reqs := make([]config.Request, len(objs)) // zero for templates
		var reads []int
		for i := range objs {
			if objs[i].IsTemplate() {
				continue
			}
			if reqs[i], err = objs[i].Request(); err != nil {
				t.Fatalf("object %q: %v", objs[i].ObjectName, err)
			}
			reads = append(reads, i)
		}
		// Equal keys ⇔ equal calls (pairs among the first 32 reads).
		for x := 0; x < len(reads) && x < 32; x++ {
			for y := x + 1; y < len(reads) && y < 32; y++ {
				i, j := reads[x], reads[y]
				a, b := reqs[i], reqs[j]
				sameCall := a.Method == b.Method && a.Path == b.Path && a.Query.Encode() == b.Query.Encode() && bytes.Equal(a.Body, b.Body)
				if sameCall != (a.Key() == b.Key()) {
					t.Fatalf("objects %q and %q: same call %v, same key %v:\n%q\n%q", objs[i].ObjectName, objs[j].ObjectName, sameCall, a.Key() == b.Key(), a.Key(), b.Key())
				}
			}
		}

		// Re-serialise the same YAML tree unchanged, then with every
		// secretArgs mapping shuffled and irrelevant fields varied. The
		// unchanged round trip isolates the YAML library: only inputs it
		// reproduces faithfully are compared.
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
			return
		}
		if hasAliasOrMerge(&doc) {
			return // key order is semantic with anchors, aliases and merges
		}
		same, err := yaml.Marshal(&doc)
		if err != nil {
			return
		}
		base, err := config.ParseObjects(string(same))
		if err != nil || len(base) != len(objs) {
			return
		}
		for _, i := range reads {
			r, err := base[i].Request()
			if err != nil || r.Key() != reqs[i].Key() {
				return
			}
		}
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		seq := topSequence(&doc)
		if seq == nil || len(seq.Content) != len(base) {
			return
		}
		for i, item := range seq.Content {
			vary(item, &base[i], rng)
		}
		varied, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatalf("marshalling the varied YAML: %v", err)
		}
		got, err := config.ParseObjects(string(varied))
		if err != nil {
			t.Fatalf("the same objects with reordered secretArgs are refused: %v\noriginal:\n%s\nvaried:\n%s", err, same, varied)
		}
		if len(got) != len(objs) {
			t.Fatalf("%d objects after reordering, want %d", len(got), len(objs))
		}
		for _, i := range reads {
			r, err := got[i].Request()
			if err != nil {
				t.Fatalf("object %q after reordering: %v", got[i].ObjectName, err)
			}
			if r.Key() != reqs[i].Key() {
				t.Fatalf("object %q: key changed with secretArgs order or non-request fields:\n%q\n%q\noriginal:\n%s\nvaried:\n%s", got[i].ObjectName, reqs[i].Key(), r.Key(), same, varied)
			}
		}
	})
}

func hasAliasOrMerge(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || n.Tag == "!!merge" {
		return true
	}
	for _, c := range n.Content {
		if hasAliasOrMerge(c) {
			return true
		}
	}
	return false
}

func topSequence(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind != yaml.SequenceNode {
		return nil
	}
	return n
}

// vary changes an object's mapping (parsed as o) without changing its Vault
// call.
func vary(obj *yaml.Node, o *config.Object, rng *rand.Rand) {
	if obj.Kind != yaml.MappingNode {
		return
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(obj.Content); i += 2 {
		k, v := obj.Content[i], obj.Content[i+1]
		if o.IsTemplate() {
			// Read fields, even empty ones, make no sense on a template;
			// only the field order is varied.
			kept = append(kept, k, v)
			continue
		}
		switch k.Value {
		case "secretArgs":
			shuffle(v, rng)
		case "method":
			setString(v, strings.ToLower(o.Method))
		case "secretPath":
			if o.SecretPath == strings.TrimSpace(o.SecretPath) && rng.IntN(2) == 0 {
				setString(v, "/v1/"+o.SecretPath)
			}
		case "secretKey":
			if !o.IsAllKeys() { // "*" is a different kind of object
				setString(v, "other-key")
			}
		case "encoding", "filePermission":
			if rng.IntN(2) == 0 {
				continue // drop the field
			}
		}
		kept = append(kept, k, v)
	}
	// Field order of the object itself does not matter either.
	pairs := len(kept) / 2
	rng.Shuffle(pairs, func(i, j int) {
		kept[2*i], kept[2*j] = kept[2*j], kept[2*i]
		kept[2*i+1], kept[2*j+1] = kept[2*j+1], kept[2*i+1]
	})
	obj.Content = kept
}

// shuffle reorders the pairs of every mapping in n, at any depth.
func shuffle(n *yaml.Node, rng *rand.Rand) {
	for _, c := range n.Content {
		shuffle(c, rng)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	pairs := len(n.Content) / 2
	rng.Shuffle(pairs, func(i, j int) {
		n.Content[2*i], n.Content[2*j] = n.Content[2*j], n.Content[2*i]
		n.Content[2*i+1], n.Content[2*j+1] = n.Content[2*j+1], n.Content[2*i+1]
	})
}

func setString(n *yaml.Node, s string) {
	n.Kind, n.Tag, n.Style, n.Value, n.Content = yaml.ScalarNode, "!!str", yaml.DoubleQuotedStyle, s, nil
}

// Found while writing FuzzRequestKey: an unquoted YAML timestamp in
// secretArgs decodes to a time.Time, which a GET sends as a JSON string -
// quotes included - and both GET and PUT rewrite (2030-01-01 becomes
// 2030-01-01T00:00:00Z). The SecretProviderClass author wrote neither.
func TestSecretArgsTimestampsSentAsWritten(t *testing.T) {
	for _, method := range []string{"GET", "PUT"} {
		objs, err := config.ParseObjects("- {objectName: a, secretPath: p, method: " + method + ", secretArgs: {not_after: 2030-01-01T00:00:00Z, day: 2030-01-01}}")
		if err != nil {
			t.Fatal(err)
		}
		r, err := objs[0].Request()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{"not_after": r.Query.Get("not_after"), "day": r.Query.Get("day")}
		if method != "GET" {
			if err := json.Unmarshal(r.Body, &got); err != nil {
				t.Fatal(err)
			}
		}
		for k, want := range map[string]string{"not_after": "2030-01-01T00:00:00Z", "day": "2030-01-01"} {
			if got[k] != want {
				t.Errorf("%s sends %s=%q, the SecretProviderClass says %q", method, k, got[k], want)
			}
		}
	}
}

// ParseObjects' file/directory clash check walks every name up to the root
// with path.Dir, O(objects x depth x length): a 1 MB objects parameter of
// 250 names 2,040 directories deep costs seconds of CPU per Mount (and per
// rotation poll), against milliseconds for the same bytes in shallow names.
// This is what stalls the fuzzer on the deep-name seeds.
//
//	go test -run '^$' -bench ParseObjectsNames -benchtime 3x ./config
func BenchmarkParseObjectsNames(b *testing.B) {
	for _, tc := range []struct {
		name string
		path func(i int) string
	}{
		{"deep", func(i int) string { return strings.Repeat("a/", 2040) + fmt.Sprintf("f%d", i) }},
		{"shallow", func(i int) string { return strings.Repeat(strings.Repeat("a", 250)+"/", 16) + fmt.Sprintf("f%d", i) }},
	} {
		var y strings.Builder
		for i := 0; i < 250; i++ {
			fmt.Fprintf(&y, "- {objectName: %s, secretPath: p}\n", tc.path(i))
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(y.Len()))
			for i := 0; i < b.N; i++ {
				if _, err := config.ParseObjects(y.String()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
