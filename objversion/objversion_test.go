package objversion

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

var (
	key1 = []byte("0123456789abcdef0123456789abcdef")
	key2 = []byte("fedcba9876543210fedcba9876543210")
)

func obj() *config.Object {
	return &config.Object{ObjectName: "db/password", SecretPath: "secret/data/db", SecretKey: "password", Method: "GET"}
}

func mustVersion(t *testing.T, key []byte, o *config.Object, contents []byte) string {
	t.Helper()
	v, err := Version(key, o, contents)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVersion(t *testing.T) {
	contents := []byte("hunter2-super-secret")
	base := mustVersion(t, key1, obj(), contents)

	if again := mustVersion(t, key1, obj(), append([]byte(nil), contents...)); again != base {
		t.Errorf("Version is not deterministic: %s vs %s", base, again)
	}

	raw, err := base64.URLEncoding.DecodeString(base)
	if err != nil {
		t.Fatalf("version %q is not base64url: %v", base, err)
	}
	if len(raw) != 32 {
		t.Errorf("version decodes to %d bytes, want 32 (SHA-256)", len(raw))
	}
	if strings.ContainsAny(base, "+/") {
		t.Errorf("version %q uses the standard base64 alphabet", base)
	}
	if strings.Contains(base, string(contents)) || strings.Contains(base, base64.StdEncoding.EncodeToString(contents)) ||
		strings.Contains(base, base64.URLEncoding.EncodeToString(contents)) || bytes.Contains(raw, contents) {
		t.Errorf("version %q reveals the contents", base)
	}

	variants := []struct {
		name     string
		key      []byte
		mutate   func(o *config.Object)
		contents []byte
	}{
		{"other key", key2, nil, contents},
		{"other contents", key1, nil, []byte("hunter3-super-secret")},
		{"empty contents", key1, nil, nil},
		{"other name", key1, func(o *config.Object) { o.ObjectName = "db/pw" }, contents},
		{"other path", key1, func(o *config.Object) { o.SecretPath = "secret/data/db2" }, contents},
		{"other secretKey", key1, func(o *config.Object) { o.SecretKey = "pw" }, contents},
		{"other mode", key1, func(o *config.Object) { o.FilePermission = 0o400 }, contents},
		{"other encoding", key1, func(o *config.Object) { o.Encoding = "base64" }, contents},
		{"other method", key1, func(o *config.Object) { o.Method = "POST" }, contents},
		{"other secretArgs", key1, func(o *config.Object) { o.SecretArgs = map[string]any{"a": 1} }, contents},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range variants {
		o := obj()
		if tt.mutate != nil {
			tt.mutate(o)
		}
		v := mustVersion(t, tt.key, o, tt.contents)
		if prev, dup := seen[v]; dup {
			t.Errorf("%s gives the same version as %s: %s", tt.name, prev, v)
		}
		seen[v] = tt.name
	}
}

func TestVersionSecretArgsOrderIndependent(t *testing.T) {
	a := obj()
	a.SecretArgs = map[string]any{"x": 1, "y": "z", "m": map[string]any{"p": 1, "q": 2}}
	b := obj()
	b.SecretArgs = map[string]any{"m": map[string]any{"q": 2, "p": 1}, "y": "z", "x": 1}
	if mustVersion(t, key1, a, []byte("c")) != mustVersion(t, key1, b, []byte("c")) {
		t.Error("equal secretArgs give different versions")
	}
}

func TestVersionIsFramedHMAC(t *testing.T) {
	// Version is base64url(HMAC-SHA256(key, len(config)||config||len(contents)||contents))
	// with config the object's JSON and lengths as 8-byte big-endian.
	o := obj()
	contents := []byte("bc")
	cfg, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key1)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(cfg)))
	mac.Write(n[:])
	mac.Write(cfg)
	binary.BigEndian.PutUint64(n[:], uint64(len(contents)))
	mac.Write(n[:])
	mac.Write(contents)
	want := base64.URLEncoding.EncodeToString(mac.Sum(nil))
	if got := mustVersion(t, key1, o, contents); got != want {
		t.Errorf("Version = %s, want %s", got, want)
	}

	// Without the framing, moving a byte from the end of the config to the
	// start of the contents would keep the MAC; with it, it does not.
	unframed := func(c, d []byte) []byte {
		m := hmac.New(sha256.New, key1)
		m.Write(c)
		m.Write(d)
		return m.Sum(nil)
	}
	framed := func(c, d []byte) []byte {
		m := hmac.New(sha256.New, key1)
		writeField(m, c)
		writeField(m, d)
		return m.Sum(nil)
	}
	if !bytes.Equal(unframed([]byte("ab"), []byte("c")), unframed([]byte("a"), []byte("bc"))) {
		t.Fatal("test premise: unframed MACs should collide")
	}
	if bytes.Equal(framed([]byte("ab"), []byte("c")), framed([]byte("a"), []byte("bc"))) {
		t.Error(`config "ab"+contents "c" and config "a"+contents "bc" have the same MAC`)
	}
}

func TestWriteFieldLengthPrefix(t *testing.T) {
	// Directly: the framed input of ("ab","c") and ("a","bc") differ.
	frame := func(a, b string) []byte {
		var buf recorder
		writeField(&buf, []byte(a))
		writeField(&buf, []byte(b))
		return buf.Bytes()
	}
	f1, f2 := frame("ab", "c"), frame("a", "bc")
	if bytes.Equal(f1, f2) {
		t.Fatal(`framing of ("ab","c") equals framing of ("a","bc")`)
	}
	want := []byte{0, 0, 0, 0, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 1, 'c'}
	if !bytes.Equal(f1, want) {
		t.Errorf("framing = %v, want %v", f1, want)
	}
}

// recorder is a hash.Hash that keeps what is written.
type recorder struct{ bytes.Buffer }

func (r *recorder) Sum(b []byte) []byte { return append(b, r.Bytes()...) }
func (r *recorder) Size() int           { return r.Len() }
func (r *recorder) BlockSize() int      { return 1 }

func TestParseKey(t *testing.T) {
	k := []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff")
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr bool
	}{
		{name: "raw 32 bytes", in: k, want: k},
		{name: "hex", in: []byte(hex.EncodeToString(k)), want: k},
		{name: "hex with newline", in: []byte(hex.EncodeToString(k) + "\n"), want: k},
		{name: "hex upper", in: []byte(strings.ToUpper(hex.EncodeToString(k))), want: k},
		{name: "base64 std", in: []byte(base64.StdEncoding.EncodeToString(k)), want: k},
		{name: "base64 std with newline", in: []byte(base64.StdEncoding.EncodeToString(k) + "\n"), want: k},
		{name: "base64 url", in: []byte(base64.URLEncoding.EncodeToString(k)), want: k},
		{name: "base64 raw std", in: []byte(base64.RawStdEncoding.EncodeToString(k)), want: k},
		{name: "base64 raw url", in: []byte(base64.RawURLEncoding.EncodeToString(k)), want: k},
		{name: "empty", in: nil, wantErr: true},
		{name: "31 raw bytes", in: k[:31], wantErr: true},
		{name: "33 raw bytes", in: append(append([]byte(nil), k...), 'x'), wantErr: true},
		{name: "hex of 16 bytes", in: []byte(hex.EncodeToString(k[:16]) + "\n"), wantErr: true},
		{name: "hex of 31 bytes", in: []byte(hex.EncodeToString(k[:31])), wantErr: true},
		{name: "base64 of 31 bytes", in: []byte(base64.StdEncoding.EncodeToString(k[:31])), wantErr: true},
		{name: "base64 of 33 bytes", in: []byte(base64.StdEncoding.EncodeToString(append(append([]byte(nil), k...), 1))), wantErr: true},
		{name: "garbage", in: []byte("this is not a key at all, sorry!!"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseKey succeeded with %x", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("ParseKey = %x, want %x", got, tt.want)
			}
			kk, _ := got.Key(context.Background())
			if !bytes.Equal(kk, tt.want) {
				t.Errorf("StaticKey.Key = %x", kk)
			}
		})
	}
}

func TestRandomKey(t *testing.T) {
	a, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != KeySize || len(b) != KeySize {
		t.Fatalf("lengths %d, %d", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Error("two random keys are equal")
	}
}

const (
	ns   = "vault-csi"
	name = "hmac"
)

var secretsResource = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

func keySecret(data []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string][]byte{SecretDataKey: data},
	}
}

func getSecret(t *testing.T, cs *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := cs.Tracker().Get(secretsResource, ns, name)
	if err != nil {
		t.Fatalf("reading the Secret from the fake: %v", err)
	}
	return s.(*corev1.Secret)
}

func verbs(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		out = append(out, a.GetVerb())
	}
	return out
}

func TestSecretKeyCreatesWhenMissing(t *testing.T) {
	cs := fake.NewClientset()
	sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
	k, err := sk.Key(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != KeySize {
		t.Fatalf("key is %d bytes", len(k))
	}
	s := getSecret(t, cs)
	if !bytes.Equal(s.Data[SecretDataKey], k) {
		t.Errorf("Secret holds %x, Key returned %x", s.Data[SecretDataKey], k)
	}
	if s.Immutable == nil || !*s.Immutable {
		t.Error("Secret is not immutable")
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type = %q", s.Type)
	}
	if got := strings.Join(verbs(cs), ","); got != "get,create" {
		t.Errorf("API calls = %s, want get,create", got)
	}

	// Served from memory afterwards.
	before := len(cs.Actions())
	for i := 0; i < 3; i++ {
		k2, err := sk.Key(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k2, k) {
			t.Errorf("second Key = %x, want %x", k2, k)
		}
	}
	if after := len(cs.Actions()); after != before {
		t.Errorf("%d API calls after the first success, want none: %v", after-before, verbs(cs)[before:])
	}

	// Another node (a second SecretKey) gets the same key.
	other := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
	k3, err := other.Key(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k3, k) {
		t.Errorf("second node got %x, want %x", k3, k)
	}
}

func TestSecretKeyReusesExisting(t *testing.T) {
	existing := bytes.Repeat([]byte{7}, KeySize)
	cs := fake.NewClientset(keySecret(existing))
	sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
	k, err := sk.Key(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, existing) {
		t.Errorf("Key = %x, want the existing %x", k, existing)
	}
	if got := strings.Join(verbs(cs), ","); got != "get" {
		t.Errorf("API calls = %s, want get", got)
	}
	if _, err := sk.Key(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(cs.Actions()); n != 1 {
		t.Errorf("%d API calls after two Keys, want 1", n)
	}
}

func TestSecretKeyCreateRace(t *testing.T) {
	winner := bytes.Repeat([]byte{0xAB}, KeySize)
	cs := fake.NewClientset()
	cs.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// Another node's provider created the Secret between our Get and
		// our Create.
		if err := cs.Tracker().Add(keySecret(winner)); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, name)
	})
	sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
	k, err := sk.Key(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, winner) {
		t.Errorf("Key = %x, want the winner's %x", k, winner)
	}
	if got := strings.Join(verbs(cs), ","); got != "get,create,get" {
		t.Errorf("API calls = %s, want get,create,get", got)
	}
	if s := getSecret(t, cs); !bytes.Equal(s.Data[SecretDataKey], winner) {
		t.Errorf("the winner's Secret was changed to %x", s.Data[SecretDataKey])
	}
}

func TestSecretKeyMalformed(t *testing.T) {
	for _, data := range [][]byte{nil, bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{1}, 33)} {
		cs := fake.NewClientset(keySecret(data))
		sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
		k, err := sk.Key(context.Background())
		if err == nil {
			t.Fatalf("%d-byte key: Key succeeded with %x", len(data), k)
		}
		for _, w := range []string{ns + "/" + name, "want 32"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		for _, a := range cs.Actions() {
			if v := a.GetVerb(); v != "get" {
				t.Errorf("%d-byte key: unexpected %s call", len(data), v)
			}
		}
		if s := getSecret(t, cs); !bytes.Equal(s.Data[SecretDataKey], data) {
			t.Errorf("malformed Secret was overwritten with %x", s.Data[SecretDataKey])
		}
		// The failure is not cached: a later call tries again.
		n := len(cs.Actions())
		if _, err := sk.Key(context.Background()); err == nil {
			t.Error("second Key succeeded")
		}
		if len(cs.Actions()) == n {
			t.Error("a failed key load was cached")
		}
	}
}

func TestSecretKeyMalformedAfterRace(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if err := cs.Tracker().Add(keySecret([]byte("short"))); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, name)
	})
	sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
	if _, err := sk.Key(context.Background()); err == nil {
		t.Fatal("Key succeeded with the winner's malformed key")
	}
}

func TestSecretKeyAPIErrors(t *testing.T) {
	tests := []struct {
		name    string
		verb    string
		err     error
		wantMsg string
	}{
		{"get forbidden", "get", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, name, errors.New("rbac")), "reading"},
		{"create forbidden", "create", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, name, errors.New("rbac")), "creating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.PrependReactor(tt.verb, "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			sk := &SecretKey{Client: fakeSecrets{cs}, Namespace: ns, Name: name}
			_, err := sk.Key(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantMsg)
			}
			if !apierrors.IsForbidden(err) {
				t.Errorf("error %v does not wrap the API error", err)
			}
		})
	}
}

// fakeSecrets serves Secrets from a fake clientset, so its actions and
// reactors see the calls kubeapi.Client would make.
type fakeSecrets struct{ cs *fake.Clientset }

func (f fakeSecrets) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return f.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (f fakeSecrets) CreateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
	return f.cs.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
}
