// Package mlog is our minimal replacement for monis.app/mlog, covering
// exactly the API secrets-store-csi-driver v1.6.0 uses:
//
//	mlog.Setup()()                                           // flush on exit
//	mlog.FormatText, mlog.FormatJSON                         // LogFormat values
//	mlog.ValidateAndSetKlogLevelAndFormatGlobally(ctx, lvl, format)
//	mlog.Error(msg, err, kv...)
//	mlog.Fatal(err, kv...)
//
// Everything goes through k8s.io/klog/v2. The text format is klog's own; the
// JSON format routes klog through a logr JSON sink (go-logr/logr/funcr).
package mlog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
)

// LogFormat names an output format.
type LogFormat string

// The formats the driver selects between (--log-format-json).
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// maxLevel bounds the verbosity accepted: klog levels in use stop well below.
const maxLevel klog.Level = 1000

var (
	mu     sync.Mutex
	output = os.Stderr
)

// Setup prepares logging and returns the function that must run before the
// program exits, to flush buffered log lines.
func Setup() func() {
	return klog.Flush
}

// ValidateAndSetKlogLevelAndFormatGlobally checks level and format and applies
// them to klog's global state. The context is accepted for API compatibility;
// nothing here outlives the call.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 || level > maxLevel {
		return fmt.Errorf("invalid log level %d: must be between 0 and %d", level, maxLevel)
	}
	switch format {
	case FormatText, FormatJSON:
	case "":
		format = FormatText
	default:
		return fmt.Errorf("invalid log format %q: must be %q or %q", format, FormatText, FormatJSON)
	}

	// klog keeps its verbosity in package state bound to the flags that
	// InitFlags registers; a private flag set reaches that state without
	// touching the program's own flags.
	fs := flag.NewFlagSet("mlog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Set("v", strconv.Itoa(int(level))); err != nil {
		return fmt.Errorf("setting klog verbosity: %w", err)
	}

	if format == FormatJSON {
		klog.SetLogger(funcr.NewJSON(writeLine, funcr.Options{
			LogCaller:    funcr.All,
			LogTimestamp: true,
			Verbosity:    int(level),
		}))
	} else {
		klog.ClearLogger()
	}
	return nil
}

func writeLine(line string) {
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintln(output, line)
}

// Error logs err with msg and key/value pairs at error severity.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorSDepth(1, err, msg, keysAndValues...)
}

// Fatal logs err with key/value pairs, flushes the logs and exits with 1.
func Fatal(err error, keysAndValues ...any) {
	if err == nil {
		err = errors.New("fatal error")
	}
	klog.ErrorSDepth(1, err, "fatal error", keysAndValues...)
	klog.FlushAndExit(klog.ExitFlushTimeout, 1)
}
