package config

import (
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseObjectsErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name   string
		yaml   string
		errSub string
	}{
		{"empty", "", `"objects" is empty`},
		{"blank", "  \n\t", `"objects" is empty`},
		{"empty list", "[]", "lists no objects"},
		{"null", "null", "lists no objects"},
		{"not a list", "objectName: a\nsecretPath: b\n", "not a valid YAML list"},
		{"not YAML", "- objectName: [a\n", "not a valid YAML list"},
		{"unknown field", "- objectName: a\n  secretPath: b\n  bogus: 1\n", "bogus"},
		{"field names are case-sensitive", "- objectName: a\n  secretPath: b\n  secretkey: c\n", "secretkey"},
		{"multiple documents", "- objectName: a\n  secretPath: b\n---\n- objectName: c\n  secretPath: d\n", "more than one YAML document"},
		{"empty objectName", "- objectName: \"\"\n  secretPath: b\n", "object #1: objectName is empty"},
		{"missing objectName", "- objectName: a\n  secretPath: b\n- secretPath: c\n", "object #2: objectName is empty"},
		{"missing secretPath", "- objectName: a\n", "secretPath is empty"},
		{"blank secretPath", "- objectName: a\n  secretPath: \"  \"\n", "secretPath is empty"},
		{"secretPath only slashes", "- objectName: a\n  secretPath: /v1/\n", "names no Vault path"},
		{"secretPath with fragment", "- objectName: a\n  secretPath: secret/a#b\n", "cannot have"},
		{"secretPath bad query", "- objectName: a\n  secretPath: secret/a?x=%zz\n", "query that does not parse"},
		{"duplicate objectName", "- objectName: a\n  secretPath: b\n- objectName: a\n  secretPath: c\n", `objects #1 and #2 both have objectName "a"`},
		{"file/dir clash", "- objectName: a\n  secretPath: b\n- objectName: a/b\n  secretPath: c\n", `object "a" is a file, but object "a/b" needs it to be a directory`},
		{"file/dir clash reversed, deep", "- objectName: a/b/c\n  secretPath: b\n- objectName: a\n  secretPath: c\n", `object "a" is a file, but object "a/b/c"`},
		{"dotdot", "- objectName: ..\n  secretPath: b\n", `must not contain ".."`},
		{"dotdot prefix", "- objectName: ../x\n  secretPath: b\n", `must not contain ".."`},
		{"dotdot inside", "- objectName: a/../../x\n  secretPath: b\n", `must not contain ".."`},
		{"absolute", "- objectName: /abs\n  secretPath: b\n", "not absolute"},
		{"double slash", "- objectName: a//b\n  secretPath: b\n", "is not clean"},
		{"dot slash", "- objectName: ./a\n  secretPath: b\n", "is not clean"},
		{"trailing slash", "- objectName: a/\n  secretPath: b\n", "is not clean"},
		{"dot", "- objectName: .\n  secretPath: b\n", "is not clean"},
		{"NUL byte", "- objectName: \"a\\0b\"\n  secretPath: b\n", "NUL byte"},
		{"256-byte element", "- objectName: d/" + long + "\n  secretPath: b\n", "256 bytes long"},
		{"..data", "- objectName: ..data\n  secretPath: b\n", `must not start with ".."`},
		{"..2024_01_01", "- objectName: ..2024_01_01\n  secretPath: b\n", `must not start with ".."`},
		{"method DELETE", "- objectName: a\n  secretPath: b\n  method: DELETE\n", `method "DELETE" is not supported`},
		{"method LIST", "- objectName: a\n  secretPath: b\n  method: list\n", `method "LIST" is not supported`},
		{"encoding rot13", "- objectName: a\n  secretPath: b\n  encoding: rot13\n", `encoding "rot13" is not supported`},
		{"filePermission decimal 600", "- objectName: a\n  secretPath: b\n  filePermission: 600\n", "leading zero, e.g. 0600"},
		{"filePermission 0", "- objectName: a\n  secretPath: b\n  filePermission: 0\n", "between 0001 and 0777"},
		{"filePermission 01000", "- objectName: a\n  secretPath: b\n  filePermission: 01000\n", "between 0001 and 0777"},
		{"filePermission string 1000", "- objectName: a\n  secretPath: b\n  filePermission: \"1000\"\n", "between 0001 and 0777"},
		{"filePermission string not octal", "- objectName: a\n  secretPath: b\n  filePermission: \"0680\"\n", "not an octal file mode"},
		{"filePermission symbolic", "- objectName: a\n  secretPath: b\n  filePermission: rw-r--r--\n", "not an octal file mode"},
		{"filePermission negative", "- objectName: a\n  secretPath: b\n  filePermission: -1\n", "not an octal file mode"},
		{"filePermission float", "- objectName: a\n  secretPath: b\n  filePermission: 6.0\n", "not an octal file mode"},
		{"filePermission list", "- objectName: a\n  secretPath: b\n  filePermission: [1]\n", "octal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err == nil {
				t.Fatalf("ParseObjects succeeded with %+v, want error containing %q", objs, tt.errSub)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
			if !IsInputError(err) {
				t.Errorf("error %q (%T) is not an input error", err, err)
			}
		})
	}
}

func TestParseObjectsHintNoDecimalHintForLeadingZero(t *testing.T) {
	_, err := ParseObjects("- objectName: a\n  secretPath: b\n  filePermission: 01000\n")
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), "decimal") {
		t.Errorf("01000 is octal in YAML, yet the error %q hints at decimal", err)
	}
}

func TestParseObjectsUnknownFieldListsFields(t *testing.T) {
	_, err := ParseObjects("- objectName: a\n  secretPath: b\n  secretkey: c\n")
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"secretKey", "filePermission", "encoding"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not list the field %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "config.Object") {
		t.Errorf("error %q names a Go type", err)
	}
}

func TestParseObjectsValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Object
	}{
		{
			name: "minimal defaults to GET and no encoding",
			yaml: "- objectName: a\n  secretPath: secret/data/app\n",
			want: Object{ObjectName: "a", SecretPath: "secret/data/app", Method: "GET"},
		},
		{
			name: "nested name",
			yaml: "- objectName: dir/sub/file.txt\n  secretPath: secret/data/app\n",
			want: Object{ObjectName: "dir/sub/file.txt", SecretPath: "secret/data/app", Method: "GET"},
		},
		{
			name: "..data below the top level",
			yaml: "- objectName: dir/..data\n  secretPath: s\n",
			want: Object{ObjectName: "dir/..data", SecretPath: "s", Method: "GET"},
		},
		{
			name: "dotfile",
			yaml: "- objectName: .env\n  secretPath: s\n",
			want: Object{ObjectName: ".env", SecretPath: "s", Method: "GET"},
		},
		{
			name: "255-byte element",
			yaml: "- objectName: " + strings.Repeat("y", 255) + "\n  secretPath: s\n",
			want: Object{ObjectName: strings.Repeat("y", 255), SecretPath: "s", Method: "GET"},
		},
		{
			name: "method get normalized",
			yaml: "- objectName: a\n  secretPath: s\n  method: get\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "method post normalized",
			yaml: "- objectName: a\n  secretPath: s\n  method: \" post \"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "POST"},
		},
		{
			name: "method PUT",
			yaml: "- objectName: a\n  secretPath: s\n  method: PUT\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "PUT"},
		},
		{
			name: "encoding utf-8",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: utf-8\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "encoding UTF8",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: UTF8\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "encoding base64",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: base64\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingBase64},
		},
		{
			name: "encoding BASE64",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: BASE64\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingBase64},
		},
		{
			name: "encoding HEX",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: HEX\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingHex},
		},
		{
			name: "filePermission 0600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0600\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission 0o600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0o600\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 0600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"0600\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"600\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 0o440",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"0o440\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o440},
		},
		{
			name: "filePermission 0777",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0777\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o777},
		},
		{
			name: "secretArgs and key kept",
			yaml: "- objectName: a\n  secretPath: pki/issue/r\n  secretKey: certificate\n  method: POST\n  secretArgs:\n    common_name: x.example\n",
			want: Object{ObjectName: "a", SecretPath: "pki/issue/r", SecretKey: "certificate", Method: "POST", SecretArgs: map[string]any{"common_name": "x.example"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err != nil {
				t.Fatalf("ParseObjects: %v", err)
			}
			if len(objs) != 1 {
				t.Fatalf("%d objects, want 1", len(objs))
			}
			if !reflect.DeepEqual(objs[0], tt.want) {
				t.Errorf("object =\n%#v\nwant\n%#v", objs[0], tt.want)
			}
		})
	}
}

func TestParseObjectsSiblingsDoNotClash(t *testing.T) {
	objs, err := ParseObjects(`
- objectName: ab
  secretPath: s
- objectName: a/b
  secretPath: s
- objectName: a/c
  secretPath: s
- objectName: a.b
  secretPath: s
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("%d objects, want 4", len(objs))
	}
}

func TestValidateFileName(t *testing.T) {
	tests := []struct {
		name   string
		errSub string // empty: valid
	}{
		{"a", ""},
		{"a/b/c", ""},
		{"a..b", ""},
		{"a/..data", ""},
		{"", "is empty"},
		{"..", `".."`},
		{"../x", `".."`},
		{"x/..", `".."`},
		{"/abs", "absolute"},
		{"a//b", "not clean"},
		{"./a", "not clean"},
		{"a/./b", "not clean"},
		{"a/", "not clean"},
		{".", "not clean"},
		{"a\x00b", "NUL"},
		{strings.Repeat("z", 256), "256 bytes long"},
		{strings.Repeat("z", 255), ""},
		{strings.Repeat(strings.Repeat("z", 200)+"/", 21) + "z", "bytes long; the driver allows 4096"},
		{"..data", `must not start with ".."`},
		{"...", `must not start with ".."`},
	}
	for _, tt := range tests {
		name := tt.name
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(name, func(t *testing.T) {
			err := ValidateFileName(tt.name)
			if tt.errSub == "" {
				if err != nil {
					t.Fatalf("ValidateFileName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("ValidateFileName = %v, want error containing %q", err, tt.errSub)
			}
		})
	}
}

func TestObjectMode(t *testing.T) {
	o := Object{}
	if got := o.Mode(0o640); got != 0o640 {
		t.Errorf("Mode without filePermission = %o, want 0640", got)
	}
	o.FilePermission = 0o400
	if got := o.Mode(0o640); got != os.FileMode(0o400) {
		t.Errorf("Mode with filePermission = %o, want 0400", got)
	}
}

func mustObject(t *testing.T, y string) Object {
	t.Helper()
	objs, err := ParseObjects(y)
	if err != nil {
		t.Fatalf("ParseObjects(%q): %v", y, err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects", len(objs))
	}
	return objs[0]
}

func mustRequest(t *testing.T, y string) Request {
	t.Helper()
	o := mustObject(t, y)
	r, err := o.Request()
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	return r
}

func TestObjectRequest(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantPath  string
		wantQuery url.Values
		wantBody  string
		wantMeth  string
	}{
		{
			name:     "plain path",
			yaml:     "- objectName: a\n  secretPath: secret/data/app\n",
			wantPath: "secret/data/app", wantMeth: "GET",
		},
		{
			name:     "leading slash",
			yaml:     "- objectName: a\n  secretPath: /secret/data/app\n",
			wantPath: "secret/data/app", wantMeth: "GET",
		},
		{
			name:     "v1 prefix",
			yaml:     "- objectName: a\n  secretPath: v1/secret/data/app\n",
			wantPath: "secret/data/app", wantMeth: "GET",
		},
		{
			name:     "slash v1 prefix and trailing slash",
			yaml:     "- objectName: a\n  secretPath: /v1/secret/data/app/\n",
			wantPath: "secret/data/app", wantMeth: "GET",
		},
		{
			name:     "v1 not a prefix",
			yaml:     "- objectName: a\n  secretPath: kv/v1/app\n",
			wantPath: "kv/v1/app", wantMeth: "GET",
		},
		{
			name:      "query",
			yaml:      "- objectName: a\n  secretPath: secret/data/app?version=2\n",
			wantPath:  "secret/data/app",
			wantQuery: url.Values{"version": {"2"}},
			wantMeth:  "GET",
		},
		{
			name: "GET secretArgs as query",
			yaml: `- objectName: a
  secretPath: pki/issue/role
  secretArgs:
    common_name: x.example
    ttl: 1h
    port: 5432
    ratio: 1.5
    enabled: true
    nothing: null
    alt_names: [a.example, b.example]
    nested: {b: 2, a: "x<y"}
`,
			wantPath: "pki/issue/role",
			wantQuery: url.Values{
				"common_name": {"x.example"},
				"ttl":         {"1h"},
				"port":        {"5432"},
				"ratio":       {"1.5"},
				"enabled":     {"true"},
				"nothing":     {""},
				"alt_names":   {"a.example", "b.example"},
				"nested":      {`{"a":"x\u003cy","b":2}`},
			},
			wantMeth: "GET",
		},
		{
			name:      "GET secretArgs appended to path query",
			yaml:      "- objectName: a\n  secretPath: secret/data/app?version=2\n  secretArgs:\n    version: 3\n    x: y\n",
			wantPath:  "secret/data/app",
			wantQuery: url.Values{"version": {"2", "3"}, "x": {"y"}},
			wantMeth:  "GET",
		},
		{
			name:     "PUT secretArgs as sorted JSON body",
			yaml:     "- objectName: a\n  secretPath: transit/encrypt/k\n  method: put\n  secretArgs:\n    zeta: 1\n    alpha: \"x<y&z\"\n    list: [1, two]\n    map: {b: 1, a: 2}\n",
			wantPath: "transit/encrypt/k",
			wantBody: `{"alpha":"x<y&z","list":[1,"two"],"map":{"a":2,"b":1},"zeta":1}`,
			wantMeth: "PUT",
		},
		{
			name:     "POST secretArgs as JSON body, query kept",
			yaml:     "- objectName: a\n  secretPath: database/creds/r?x=1\n  method: POST\n  secretArgs:\n    ttl: 1h\n",
			wantPath: "database/creds/r", wantQuery: url.Values{"x": {"1"}},
			wantBody: `{"ttl":"1h"}`,
			wantMeth: "POST",
		},
		{
			name:     "POST without secretArgs has no body",
			yaml:     "- objectName: a\n  secretPath: database/creds/r\n  method: POST\n",
			wantPath: "database/creds/r",
			wantMeth: "POST",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRequest(t, tt.yaml)
			if r.Method != tt.wantMeth {
				t.Errorf("Method = %q, want %q", r.Method, tt.wantMeth)
			}
			if r.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q", r.Path, tt.wantPath)
			}
			if len(r.Query) != 0 || len(tt.wantQuery) != 0 {
				if !reflect.DeepEqual(r.Query, tt.wantQuery) {
					t.Errorf("Query = %#v, want %#v", r.Query, tt.wantQuery)
				}
			}
			if tt.wantBody == "" {
				if r.Body != nil {
					t.Errorf("Body = %q, want none", r.Body)
				}
			} else if string(r.Body) != tt.wantBody {
				t.Errorf("Body = %s, want %s", r.Body, tt.wantBody)
			}
			if r.Method != "GET" && r.Body != nil && !json.Valid(r.Body) {
				t.Errorf("Body %q is not JSON", r.Body)
			}
		})
	}
}

func TestObjectRequestWithoutNormalize(t *testing.T) {
	o := Object{ObjectName: "a", SecretPath: "/v1/secret/x"}
	r, err := o.Request()
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.Path != "secret/x" {
		t.Errorf("Request = %+v, want GET secret/x", r)
	}
	o = Object{ObjectName: "a", SecretPath: "/"}
	if _, err := o.Request(); err == nil {
		t.Error("Request of an empty path succeeded")
	}
}

func TestRequestKey(t *testing.T) {
	key := func(y string) string { return mustRequest(t, y).Key() }
	tests := []struct {
		name  string
		a, b  string
		equal bool
	}{
		{
			name:  "GET args in different YAML order",
			a:     "- objectName: a\n  secretPath: pki/issue/r\n  secretArgs:\n    common_name: x\n    ttl: 1h\n    alt: [p, q]\n",
			b:     "- objectName: b\n  secretPath: pki/issue/r\n  secretArgs:\n    alt: [p, q]\n    ttl: 1h\n    common_name: x\n",
			equal: true,
		},
		{
			name:  "POST args in different YAML order",
			a:     "- objectName: a\n  secretPath: pki/issue/r\n  method: POST\n  secretArgs:\n    common_name: x\n    ttl: 1h\n    m: {b: 1, a: 2}\n",
			b:     "- objectName: b\n  secretPath: /v1/pki/issue/r\n  method: post\n  secretArgs:\n    m: {a: 2, b: 1}\n    ttl: 1h\n    common_name: x\n",
			equal: true,
		},
		{
			name:  "different key and encoding, same request",
			a:     "- objectName: a\n  secretPath: secret/data/db\n  secretKey: username\n",
			b:     "- objectName: b\n  secretPath: secret/data/db\n  secretKey: password\n  encoding: base64\n",
			equal: true,
		},
		{
			name: "different arg value",
			a:    "- objectName: a\n  secretPath: pki/issue/r\n  method: POST\n  secretArgs:\n    common_name: x\n",
			b:    "- objectName: b\n  secretPath: pki/issue/r\n  method: POST\n  secretArgs:\n    common_name: y\n",
		},
		{
			name: "different GET arg value",
			a:    "- objectName: a\n  secretPath: pki/issue/r\n  secretArgs:\n    common_name: x\n",
			b:    "- objectName: b\n  secretPath: pki/issue/r\n  secretArgs:\n    common_name: y\n",
		},
		{
			name: "list order matters",
			a:    "- objectName: a\n  secretPath: p\n  secretArgs:\n    alt: [p, q]\n",
			b:    "- objectName: b\n  secretPath: p\n  secretArgs:\n    alt: [q, p]\n",
		},
		{
			name: "args vs none",
			a:    "- objectName: a\n  secretPath: p\n  method: POST\n",
			b:    "- objectName: b\n  secretPath: p\n  method: POST\n  secretArgs:\n    x: 1\n",
		},
		{
			name: "different method",
			a:    "- objectName: a\n  secretPath: p\n  method: PUT\n",
			b:    "- objectName: b\n  secretPath: p\n  method: POST\n",
		},
		{
			name: "different path",
			a:    "- objectName: a\n  secretPath: secret/data/a\n",
			b:    "- objectName: b\n  secretPath: secret/data/b\n",
		},
		{
			name: "different query",
			a:    "- objectName: a\n  secretPath: secret/data/a?version=1\n",
			b:    "- objectName: b\n  secretPath: secret/data/a?version=2\n",
		},
		{
			name: "query vs GET args with same content",
			a:    "- objectName: a\n  secretPath: secret/data/a?version=1\n",
			b:    "- objectName: b\n  secretPath: secret/data/a\n  secretArgs:\n    version: 1\n",
			// Both are GET secret/data/a?version=1 on the wire.
			equal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := key(tt.a), key(tt.b)
			if (ka == kb) != tt.equal {
				t.Errorf("keys equal = %v, want %v\n a: %q\n b: %q", ka == kb, tt.equal, ka, kb)
			}
		})
	}
}
