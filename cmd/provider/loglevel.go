package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// logLevel is -log-level: hashicorp/vault-csi-provider's (hclog) levels,
// mapped onto klog, which has verbosities for detail and severities (INFO,
// WARNING, ERROR) for filtering:
//
//	trace  -v=6: debug, plus one line per Kubernetes API call (client-go:
//	       method, URL, status, latency). Not higher: from -v=8 client-go
//	       logs response bodies, which hold the HMAC key and service
//	       account tokens.
//	debug  -v=4, every detail the provider itself logs (same as -debug)
//	info   -v=0, the default
//	warn   WARNING and ERROR records only
//	error  ERROR records only
//	off    nothing (klog's FATAL only, which the provider never logs)
//
// A level raises -v to its own verbosity, never lowers it, so an explicit
// -v=5 next to vault-helm's --log-level=info keeps 5.
type logLevel struct {
	name      string
	verbosity int
	// threshold is the klog severity below which records are dropped
	// ("" keeps all).
	threshold string
}

var logLevels = []logLevel{
	{name: "trace", verbosity: 6},
	{name: "debug", verbosity: 4},
	{name: "info"},
	{name: "warn", threshold: "WARNING"},
	{name: "error", threshold: "ERROR"},
	{name: "off", threshold: "FATAL"},
}

// parseLogLevel reads -log-level as hclog does (case and surrounding space
// ignored); an empty level is debug with -debug, else info. Unlike hclog,
// which falls back to info, an unknown level is an error.
func parseLogLevel(s string, debug bool) (logLevel, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		s = "info"
		if debug {
			s = "debug"
		}
	}
	for _, l := range logLevels {
		if l.name == s {
			return l, nil
		}
	}
	return logLevel{}, fmt.Errorf("-log-level %q: use trace, debug, info, warn, error or off", s)
}

// apply sets klog's flags, registered on fs (klog.InitFlags), for the
// text output: -v, and a stderr threshold, which klog honours with its
// default -logtostderr only without the legacy threshold behaviour.
func (l logLevel) apply(fs *flag.FlagSet) error {
	v := fs.Lookup("v")
	if v == nil {
		return fmt.Errorf("klog's flags are not registered")
	}
	if cur, err := strconv.Atoi(v.Value.String()); err != nil || cur < l.verbosity {
		if err := fs.Set("v", strconv.Itoa(l.verbosity)); err != nil {
			return err
		}
	}
	if l.threshold == "" {
		return nil
	}
	if err := fs.Set("legacy_stderr_threshold_behavior", "false"); err != nil {
		return err
	}
	return fs.Set("stderrthreshold", l.threshold)
}

// filter applies the level's severity filter to a logr logger installed
// with klog.SetLogger (-log-format=json), which klog hands every record to
// before its own stderr threshold. klog passes WARNING records on as Info,
// so there warn keeps errors only, like error.
func (l logLevel) filter(logger logr.Logger) logr.Logger {
	switch l.threshold {
	case "":
		return logger
	case "FATAL":
		return logr.Discard()
	default:
		return logr.New(errorsOnly{logger.GetSink()})
	}
}

// errorsOnly drops Info records and passes Error records on.
type errorsOnly struct{ logr.LogSink }

func (errorsOnly) Enabled(int) bool         { return false }
func (errorsOnly) Info(int, string, ...any) {}

func (s errorsOnly) WithValues(kv ...any) logr.LogSink {
	return errorsOnly{s.LogSink.WithValues(kv...)}
}

func (s errorsOnly) WithName(name string) logr.LogSink {
	return errorsOnly{s.LogSink.WithName(name)}
}
