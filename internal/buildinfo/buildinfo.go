// Package buildinfo reports what binary is running.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time: -X .../internal/buildinfo.Version=v1.2.3.
var Version = ""

// Get returns the version, falling back to the module and VCS data the Go
// toolchain embeds.
func Get() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}

// String is a one-line description for -version.
func String() string {
	return fmt.Sprintf("vault-csi-provider %s (%s, %s/%s)", Get(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
