package config

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

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

func TestSecretPathSegments(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
		want string // request path when ok
	}{
		{"secret/data/app", true, "secret/data/app"},
		{"/v1/secret/data/app/", true, "secret/data/app"},
		{"secret/data/../../sys/mounts", false, ""},
		{"secret/./data/app", false, ""},
		{"secret//data/app", false, ""},
		{"..", false, ""},
		{"secret/data/app/..?version=1", false, ""},
		{"secret/data/app..x", true, "secret/data/app..x"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			objs, err := ParseObjects("- {objectName: a, secretPath: '" + tc.path + "'}")
			if !tc.ok {
				if err == nil {
					t.Fatalf("secretPath %q accepted", tc.path)
				}
				if !IsInputError(err) || !strings.Contains(err.Error(), "segment") {
					t.Errorf("error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := objs[0].Request()
			if err != nil || r.Path != tc.want {
				t.Errorf("Request() = %q, %v; want %q", r.Path, err, tc.want)
			}
		})
	}
}
