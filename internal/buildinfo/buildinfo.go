// Package buildinfo reports what binary is running.
package buildinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"go.yaml.in/yaml/v3"
)

// Version is set at link time: -X .../internal/buildinfo.Version=v1.2.3.
var Version = ""

// Info describes the binary. Keys shared with hashicorp/vault-csi-provider's
// -version output (gitCommit, gitTreeState, goVersion, compiler, platform)
// mean the same; version is this project's version string (Get).
type Info struct {
	Version       string `json:"version" yaml:"version"`
	GitCommit     string `json:"gitCommit,omitempty" yaml:"gitCommit,omitempty"`
	GitTreeState  string `json:"gitTreeState,omitempty" yaml:"gitTreeState,omitempty"` // clean or dirty
	GitCommitDate string `json:"gitCommitDate,omitempty" yaml:"gitCommitDate,omitempty"`
	GoVersion     string `json:"goVersion" yaml:"goVersion"`
	Compiler      string `json:"compiler" yaml:"compiler"`
	Platform      string `json:"platform" yaml:"platform"`
}

// Read returns the binary's Info: the link-time Version and the module and
// VCS data the Go toolchain embeds (absent when built outside a checkout).
func Read() Info {
	i := Info{GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	moduleVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		moduleVersion = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.GitCommit = s.Value
			case "vcs.time":
				i.GitCommitDate = s.Value
			case "vcs.modified":
				i.GitTreeState = "clean"
				if s.Value == "true" {
					i.GitTreeState = "dirty"
				}
			}
		}
	}
	i.Version = version(i, moduleVersion)
	return i
}

func version(i Info, moduleVersion string) string {
	if Version != "" {
		return Version
	}
	if rev := i.GitCommit; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if i.GitTreeState == "dirty" {
			rev += "-dirty"
		}
		return "dev-" + rev
	}
	if moduleVersion != "" && moduleVersion != "(devel)" {
		return moduleVersion
	}
	return "dev"
}

// Get returns the version, falling back to the module and VCS data the Go
// toolchain embeds.
func Get() string { return Read().Version }

// String is a one-line description for -version.
func String() string { return Read().String() }

func (i Info) String() string {
	return fmt.Sprintf("vault-csi-provider %s (%s, %s)", i.Version, i.GoVersion, i.Platform)
}

// Formats are the -output values, as hashicorp/vault-csi-provider names them.
var Formats = []string{"json", "json-pretty", "yaml"}

// CheckFormat accepts "" (the one-line text) and Formats.
func CheckFormat(format string) error {
	if format == "" {
		return nil
	}
	for _, f := range Formats {
		if format == f {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: use json, json-pretty or yaml", format)
}

// Write prints i in format: "" for String, or one of Formats.
func (i Info) Write(w io.Writer, format string) error {
	var b []byte
	var err error
	switch format {
	case "":
		b = []byte(i.String() + "\n")
	case "json":
		b, err = json.Marshal(i)
		b = append(b, '\n')
	case "json-pretty":
		b, err = json.MarshalIndent(i, "", "  ")
		b = append(b, '\n')
	case "yaml":
		b, err = yaml.Marshal(i)
	default:
		err = CheckFormat(format)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
