package app

import (
	"flag"
	"io"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func TestLimitFlags(t *testing.T) {
	newFS := func(l *config.Limits) *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		LimitFlags(fs, l)
		return fs
	}

	var l config.Limits
	if err := newFS(&l).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if l != config.DefaultLimits {
		t.Errorf("without flags: %+v, want the defaults %+v", l, config.DefaultLimits)
	}

	l = config.Limits{}
	// Under the names the refusals give.
	err := newFS(&l).Parse([]string{
		"-" + config.FlagMaxAttributesBytes, "1", "-" + config.FlagMaxObjectsBytes, "2", "-" + config.FlagMaxObjects, "3",
		"-" + config.FlagMaxTemplateBytes, "4", "-" + config.FlagMaxTemplatesBytes, "5", "-" + config.FlagMaxSecretArgsBytes, "6",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Limits{MaxAttributesBytes: 1, MaxObjectsBytes: 2, MaxObjects: 3, MaxTemplateBytes: 4, MaxTemplatesBytes: 5, MaxSecretArgsBytes: 6}
	if l != want {
		t.Errorf("flags set %+v, want %+v", l, want)
	}

}
