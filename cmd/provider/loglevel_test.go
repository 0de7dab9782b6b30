package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
)

func TestParseLogLevel(t *testing.T) {
	tests := []struct {
		in        string
		debug     bool
		verbosity int
		threshold string
	}{
		{"", false, 0, ""},
		{"", true, 4, ""},
		{"info", false, 0, ""},
		{"INFO", false, 0, ""},
		{" debug ", false, 4, ""},
		{"trace", false, 6, ""},
		{"warn", false, 0, "WARNING"},
		{"error", false, 0, "ERROR"},
		{"off", false, 0, "FATAL"},
		// An explicit level wins over -debug, as in hashicorp/vault-csi-provider.
		{"warn", true, 0, "WARNING"},
		{"info", true, 0, ""},
	}
	for _, tt := range tests {
		l, err := parseLogLevel(tt.in, tt.debug)
		if err != nil {
			t.Errorf("parseLogLevel(%q, %v): %v", tt.in, tt.debug, err)
			continue
		}
		if l.verbosity != tt.verbosity || l.threshold != tt.threshold {
			t.Errorf("parseLogLevel(%q, %v) = %+v, want verbosity %d threshold %q", tt.in, tt.debug, l, tt.verbosity, tt.threshold)
		}
	}
	for _, bad := range []string{"verbose", "warning", "4", "fatal"} {
		if _, err := parseLogLevel(bad, false); err == nil || !strings.Contains(err.Error(), "use trace, debug, info, warn, error or off") {
			t.Errorf("parseLogLevel(%q) = %v, want an error listing the levels", bad, err)
		}
	}
}

// klogFlags registers klog's flags on a new FlagSet (they bind klog's
// global state) and restores the values the test changes.
func klogFlags(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	saved := map[string]string{}
	for _, n := range []string{"v", "legacy_stderr_threshold_behavior", "stderrthreshold"} {
		saved[n] = fs.Lookup(n).Value.String()
	}
	t.Cleanup(func() {
		for n, v := range saved {
			if err := fs.Set(n, v); err != nil {
				t.Errorf("restoring -%s: %v", n, err)
			}
		}
	})
	return fs
}

// captureStderr returns what klog wrote to stderr while f ran.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = old }()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	f()
	klog.Flush()
	w.Close()
	return string(<-done)
}

func TestLogLevelApply(t *testing.T) {
	tests := []struct {
		level       string
		v           string // -v before the level applies
		wantV       int    // highest enabled verbosity
		info, warn  bool   // written to stderr
		errorRecord bool
	}{
		{level: "info", v: "0", wantV: 0, info: true, warn: true, errorRecord: true},
		{level: "debug", v: "0", wantV: 4, info: true, warn: true, errorRecord: true},
		{level: "trace", v: "0", wantV: 6, info: true, warn: true, errorRecord: true},
		{level: "info", v: "5", wantV: 5, info: true, warn: true, errorRecord: true},  // never lowers -v
		{level: "debug", v: "7", wantV: 7, info: true, warn: true, errorRecord: true}, // never lowers -v
		{level: "warn", v: "0", wantV: 0, warn: true, errorRecord: true},
		{level: "error", v: "0", wantV: 0, errorRecord: true},
		{level: "off", v: "0", wantV: 0},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/v="+tt.v, func(t *testing.T) {
			fs := klogFlags(t)
			if err := fs.Set("v", tt.v); err != nil {
				t.Fatal(err)
			}
			l, err := parseLogLevel(tt.level, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.apply(fs); err != nil {
				t.Fatal(err)
			}
			if !klog.V(klog.Level(tt.wantV)).Enabled() || klog.V(klog.Level(tt.wantV+1)).Enabled() {
				t.Errorf("-v = %s after the level, want %d", fs.Lookup("v").Value, tt.wantV)
			}
			out := captureStderr(t, func() {
				klog.InfoS("info-record")
				klog.Warning("warning-record")
				klog.ErrorS(errors.New("boom"), "error-record")
			})
			for rec, want := range map[string]bool{"info-record": tt.info, "warning-record": tt.warn, "error-record": tt.errorRecord} {
				if got := strings.Contains(out, rec); got != want {
					t.Errorf("%s written = %v, want %v; stderr:\n%s", rec, got, want, out)
				}
			}
		})
	}
}

func TestLogLevelApplyNeedsKlogFlags(t *testing.T) {
	if err := (logLevel{name: "info"}).apply(flag.NewFlagSet("x", flag.ContinueOnError)); err == nil {
		t.Error("apply without klog's flags succeeded")
	}
}

func TestLogLevelFilterJSON(t *testing.T) {
	for _, tt := range []struct {
		level       string
		info, error bool
	}{
		{"trace", true, true},
		{"debug", true, true},
		{"info", true, true},
		{"warn", false, true},
		{"error", false, true},
		{"off", false, false},
	} {
		t.Run(tt.level, func(t *testing.T) {
			var out bytes.Buffer
			base := funcr.NewJSON(func(obj string) { out.WriteString(obj + "\n") }, funcr.Options{})
			l, err := parseLogLevel(tt.level, false)
			if err != nil {
				t.Fatal(err)
			}
			logger := l.filter(base)
			// Through WithValues and WithName, as klog and callers derive loggers.
			logger = logger.WithName("server").WithValues("k", "v")
			logger.Info("info-record")
			logger.Error(errors.New("boom"), "error-record")
			if got := strings.Contains(out.String(), "info-record"); got != tt.info {
				t.Errorf("info written = %v, want %v:\n%s", got, tt.info, out.String())
			}
			if got := strings.Contains(out.String(), "error-record"); got != tt.error {
				t.Errorf("error written = %v, want %v:\n%s", got, tt.error, out.String())
			}
			if tt.error && !strings.Contains(out.String(), `"k":"v"`) {
				t.Errorf("values lost through the filter:\n%s", out.String())
			}
		})
	}
}

// Through klog itself, as main installs it with -log-format=json.
func TestLogLevelFilterThroughKlog(t *testing.T) {
	var out bytes.Buffer
	base := funcr.NewJSON(func(obj string) { out.WriteString(obj + "\n") }, funcr.Options{})
	l, err := parseLogLevel("error", false)
	if err != nil {
		t.Fatal(err)
	}
	klog.SetLogger(l.filter(base))
	defer klog.ClearLogger()
	klog.InfoS("info-record")
	klog.FromContext(t.Context()).Info("contextual-info-record")
	klog.ErrorS(errors.New("boom"), "error-record")
	klog.Flush()
	if s := out.String(); strings.Contains(s, "info-record") || !strings.Contains(s, "error-record") {
		t.Errorf("klog through the error filter wrote:\n%s", s)
	}
}
