package objversion

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func allKeysObj() *config.Object {
	return &config.Object{ObjectName: "creds", SecretPath: "secret/data/db", SecretKey: config.AllKeys, Method: "GET"}
}

func mustVersionFiles(t *testing.T, key []byte, o *config.Object, files ...File) string {
	t.Helper()
	v, err := VersionFiles(key, o, files)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVersionFiles(t *testing.T) {
	a, b := File{"password", []byte("pw")}, File{"username", []byte("u")}
	base := mustVersionFiles(t, key1, allKeysObj(), a, b)
	if v := mustVersionFiles(t, key1, allKeysObj(), b, a); v != base {
		t.Error("the order files are given in changes the version")
	}
	variants := []struct {
		name  string
		key   []byte
		obj   func(o *config.Object)
		files []File
	}{
		{"other key", key2, nil, []File{a, b}},
		{"value changed", key1, nil, []File{a, {"username", []byte("v")}}},
		{"file added", key1, nil, []File{a, b, {"x", nil}}},
		{"empty file added", key1, nil, []File{a, b, {"", nil}}},
		{"file removed", key1, nil, []File{a}},
		{"no files", key1, nil, nil},
		{"file renamed", key1, nil, []File{a, {"user", []byte("u")}}},
		{"contents swapped", key1, nil, []File{{"password", []byte("u")}, {"username", []byte("pw")}}},
		{"bytes moved from name to contents", key1, nil, []File{a, {"usernam", []byte("eu")}}},
		{"other object name", key1, func(o *config.Object) { o.ObjectName = "db" }, []File{a, b}},
		{"other encoding", key1, func(o *config.Object) { o.Encoding = "base64" }, []File{a, b}},
		{"other mode", key1, func(o *config.Object) { o.FilePermission = 0o400 }, []File{a, b}},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range variants {
		o := allKeysObj()
		if tt.obj != nil {
			tt.obj(o)
		}
		v := mustVersionFiles(t, tt.key, o, tt.files...)
		if prev, dup := seen[v]; dup {
			t.Errorf("%s gives the same version as %s", tt.name, prev)
		}
		seen[v] = tt.name
	}
	// One file is not the same as Version over its contents.
	if mustVersionFiles(t, key1, allKeysObj(), a) == mustVersion(t, key1, allKeysObj(), a.Contents) {
		t.Error("VersionFiles of one file equals Version of its contents")
	}
}

func TestVersionFilesIsFramedHMAC(t *testing.T) {
	// base64url(HMAC-SHA256(key, field(config) || count || field(name) || field(contents) ...)),
	// files in name order, fields 8-byte big-endian length-prefixed.
	o := allKeysObj()
	cfg, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key1)
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		mac.Write(n[:])
		mac.Write(b)
	}
	field(cfg)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], 2)
	mac.Write(n[:])
	field([]byte("a"))
	field([]byte("1"))
	field([]byte("b"))
	field([]byte("2"))
	want := base64.URLEncoding.EncodeToString(mac.Sum(nil))
	if got := mustVersionFiles(t, key1, o, File{"b", []byte("2")}, File{"a", []byte("1")}); got != want {
		t.Errorf("VersionFiles = %s, want %s", got, want)
	}
}

// A template object's version covers its template as well as the rendered
// bytes: an edited template that renders the same bytes is still another
// object configuration.
func TestVersionCoversTemplate(t *testing.T) {
	o := &config.Object{ObjectName: "app.conf", Template: "{{ .Values.a }}"}
	v1 := mustVersion(t, key1, o, []byte("x"))
	o.Template = "{{ .Values.a | trim }}"
	if mustVersion(t, key1, o, []byte("x")) == v1 {
		t.Error("template changed, version did not")
	}
	if mustVersion(t, key1, o, []byte("y")) == mustVersion(t, key1, o, []byte("x")) {
		t.Error("rendered bytes changed, version did not")
	}
}
