package server

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPodUID(t *testing.T) {
	long := strings.Repeat("u", maxPodUIDBytes)
	tests := []struct {
		name, attrs, want string
	}{
		{"driver encoding", `{"csi.storage.k8s.io/pod.name":"p","csi.storage.k8s.io/pod.uid":"4a1c2e1e-5f0e","roleName":"app"}`, "4a1c2e1e-5f0e"},
		{"only key", `{"csi.storage.k8s.io/pod.uid":"u1"}`, "u1"},
		{"whitespace", " \n{ \"csi.storage.k8s.io/pod.uid\" :\t\"u1\" ,\r\"a\" : \"b\" } \n", "u1"},
		{"escaped key", `{"csi.storage.k8s.io\/pod\u002euid":"u1"}`, "u1"},
		{"escaped value", `{"csi.storage.k8s.io/pod.uid":"u\u0031\"x"}`, `u1"x`},
		{"last duplicate wins", `{"csi.storage.k8s.io/pod.uid":"u1","csi.storage.k8s.io/pod.uid":"u2"}`, "u2"},
		{"null", `{"csi.storage.k8s.io/pod.uid":"u1","csi.storage.k8s.io/pod.uid":null}`, ""},
		{"key inside another value", `{"a":"\"csi.storage.k8s.io/pod.uid\":\"evil","csi.storage.k8s.io/pod.uid":"u1"}`, "u1"},
		{"key only inside a value", `{"a":"x\",\"csi.storage.k8s.io/pod.uid\":\"evil"}`, ""},
		{"backslash before closing quote", `{"a":"x\\","csi.storage.k8s.io/pod.uid":"u1"}`, "u1"},
		{"other case is another key", `{"csi.storage.k8s.io/pod.UID":"u1"}`, ""},
		{"missing", `{"roleName":"app"}`, ""},
		{"empty object", `{}`, ""},
		{"empty", ``, ""},
		{"JSON null", `null`, ""},
		{"array", `["csi.storage.k8s.io/pod.uid","u1"]`, ""},
		{"number value", `{"csi.storage.k8s.io/pod.uid":1}`, ""},
		{"object value", `{"csi.storage.k8s.io/pod.uid":{"a":"u1"}}`, ""},
		{"unterminated", `{"csi.storage.k8s.io/pod.uid":"u1`, ""},
		{"trailing comma", `{"csi.storage.k8s.io/pod.uid":"u1",}`, ""},
		{"trailing data", `{"csi.storage.k8s.io/pod.uid":"u1"}x`, ""},
		{"control character", "{\"csi.storage.k8s.io/pod.uid\":\"u\x011\"}", ""},
		{"longest kept", `{"csi.storage.k8s.io/pod.uid":"` + long + `"}`, long},
		{"too long", `{"csi.storage.k8s.io/pod.uid":"` + long + `u"}`, ""},
		{"escaped, short enough", `{"csi.storage.k8s.io/pod.uid":"` + strings.Repeat(`\u0075`, maxPodUIDBytes) + `"}`, long},
		{"escaped, too long", `{"csi.storage.k8s.io/pod.uid":"` + strings.Repeat(`\u0075`, maxPodUIDBytes+1) + `"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podUID(tt.attrs); got != tt.want {
				t.Errorf("podUID(%q) = %q, want %q", tt.attrs, got, tt.want)
			}
		})
	}
}

// FuzzPodUID checks podUID against encoding/json, which config.Parse uses:
// on every input that decodes as a map of strings they agree.
func FuzzPodUID(f *testing.F) {
	for _, s := range []string{
		`{"csi.storage.k8s.io/pod.uid":"u1","roleName":"app"}`,
		`{"csi.storage.k8s.io\/pod\u002euid":"u\u00e9\ud83d\ude00"}`,
		`{"a":"x\\","csi.storage.k8s.io/pod.uid":null}`,
		"{\"csi.storage.k8s.io/pod.uid\":\"\xff\"}",
		` { } `,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, attrs string) {
		got := podUID(attrs)
		var m map[string]string
		if err := json.Unmarshal([]byte(attrs), &m); err != nil {
			return // config.Parse refuses it; any bucket will do
		}
		want := m["csi.storage.k8s.io/pod.uid"]
		if len(want) > maxPodUIDBytes {
			want = "" // too long to be a kubelet's UID: the shared bucket
		}
		if got != want {
			t.Errorf("podUID(%q) = %q, encoding/json says %q", attrs, got, want)
		}
	})
}

func BenchmarkPodUID(b *testing.B) {
	attrs, _ := json.Marshal(map[string]string{
		"csi.storage.k8s.io/pod.uid": "4a1c2e1e-5f0e-4bd1-9a53-0d7f8c7e2b11",
		"objects":                    strings.Repeat("- objectName: x\n  secretPath: secret/data/x\n", 2000),
		"roleName":                   "app",
	})
	s := string(attrs)
	b.ReportAllocs()
	for b.Loop() {
		if podUID(s) == "" {
			b.Fatal("no UID")
		}
	}
}
