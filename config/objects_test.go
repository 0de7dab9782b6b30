package config

import (
	"os"
	"testing"
)

func TestObjectMode(t *testing.T) {
	o := Object{}
	if got := o.Mode(0o640); got != 0o640 {
		t.Errorf("Mode without filePermission = %o, want 0640", got)
	}
	o.FilePermission = 0o400
	if got := o.Mode(0o640); got != os.FileMode(0o400) {
		t.Errorf("Mode with filePermission = %o, want 0400", got)
	}
}
