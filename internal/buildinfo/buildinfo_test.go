package buildinfo

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func testInfo() Info {
	return Info{Version: "v9.8.7", GitCommit: "0123456789abcdef0123456789abcdef01234567", GitTreeState: "clean",
		GitCommitDate: "2025-01-02T03:04:05Z", GoVersion: "go1.99", Compiler: "gc", Platform: "linux/amd64"}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := testInfo().Write(&b, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "vault-csi-provider v9.8.7 (go1.99, linux/amd64)\n"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
}

func TestWriteStructured(t *testing.T) {
	want := map[string]any{
		"version": "v9.8.7", "gitCommit": "0123456789abcdef0123456789abcdef01234567", "gitTreeState": "clean",
		"gitCommitDate": "2025-01-02T03:04:05Z", "goVersion": "go1.99", "compiler": "gc", "platform": "linux/amd64",
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := testInfo().Write(&b, format); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			got := map[string]any{}
			var err error
			if format == "yaml" {
				err = yaml.Unmarshal(b.Bytes(), &got)
			} else {
				err = json.Unmarshal(b.Bytes(), &got)
			}
			if err != nil {
				t.Fatalf("%s output %q does not parse: %v", format, out, err)
			}
			if len(got) != len(want) {
				t.Errorf("%s keys = %v, want %v", format, got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s %s = %v, want %v", format, k, got[k], v)
				}
			}
			if !strings.HasSuffix(out, "\n") {
				t.Errorf("%s output does not end in a newline: %q", format, out)
			}
			lines := strings.Count(out, "\n")
			switch format {
			case "json":
				if lines != 1 {
					t.Errorf("json is %d lines, want 1", lines)
				}
			case "json-pretty":
				if lines != len(want)+2 || !strings.Contains(out, "\n  \"version\": ") {
					t.Errorf("json-pretty not indented:\n%s", out)
				}
			}
		})
	}
}

func TestWriteOmitsUnknownVCS(t *testing.T) {
	var b bytes.Buffer
	if err := (Info{Version: "dev", GoVersion: "go1", Compiler: "gc", Platform: "linux/arm64"}).Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `{"version":"dev","goVersion":"go1","compiler":"gc","platform":"linux/arm64"}`+"\n"; got != want {
		t.Errorf("json = %s, want %s", got, want)
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	for _, f := range []string{"xml", "JSON", "text", "pretty"} {
		var b bytes.Buffer
		if err := testInfo().Write(&b, f); err == nil || !strings.Contains(err.Error(), "json, json-pretty or yaml") {
			t.Errorf("Write(%q) = %v", f, err)
		}
		if b.Len() != 0 {
			t.Errorf("Write(%q) printed %q", f, b.String())
		}
		if CheckFormat(f) == nil {
			t.Errorf("CheckFormat(%q) accepted it", f)
		}
	}
	for _, f := range append([]string{""}, Formats...) {
		if err := CheckFormat(f); err != nil {
			t.Errorf("CheckFormat(%q) = %v", f, err)
		}
	}
}

func TestRead(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "v1.2.3"
	i := Read()
	if i.Version != "v1.2.3" || Get() != "v1.2.3" {
		t.Errorf("Version %q, Get %q, want the link-time v1.2.3", i.Version, Get())
	}
	if i.GoVersion != runtime.Version() || i.Platform != runtime.GOOS+"/"+runtime.GOARCH || i.Compiler != runtime.Compiler {
		t.Errorf("Read() = %+v", i)
	}
	if !strings.Contains(String(), "v1.2.3") {
		t.Errorf("String() = %q", String())
	}
}

func TestVersionFallbacks(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = ""
	tests := []struct {
		i      Info
		module string
		want   string
	}{
		{Info{GitCommit: "0123456789abcdef", GitTreeState: "clean"}, "", "dev-0123456789ab"},
		{Info{GitCommit: "0123456789abcdef", GitTreeState: "dirty"}, "v1.0.0", "dev-0123456789ab-dirty"},
		{Info{}, "v1.0.0", "v1.0.0"},
		{Info{}, "(devel)", "dev"},
		{Info{}, "", "dev"},
	}
	for _, tt := range tests {
		if got := version(tt.i, tt.module); got != tt.want {
			t.Errorf("version(%+v, %q) = %q, want %q", tt.i, tt.module, got, tt.want)
		}
	}
}
