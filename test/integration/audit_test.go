package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// auditCursor reads Vault's audit log onwards from a position: what Vault
// really received, not what the provider says it sent.
type auditCursor struct {
	t   *testing.T
	pos int
}

// newAuditCursor starts at the end of the log as it is now.
func newAuditCursor(t *testing.T) *auditCursor {
	t.Helper()
	c := &auditCursor{t: t}
	c.next()
	return c
}

// next returns the requests Vault logged since the cursor's position and
// moves it past them. The answer is proven complete: testenv's probe
// request must be found after them, or the test fails, so an empty answer
// means Vault saw nothing.
func (c *auditCursor) next() []testenv.AuditEntry {
	c.t.Helper()
	es, next, err := vlt.AuditFrom(c.pos)
	if err != nil {
		c.t.Fatal(err)
	}
	c.pos = next
	return es
}

// count counts the requests since the last call whose path starts with
// prefix.
func (c *auditCursor) count(prefix string) int {
	c.t.Helper()
	return testenv.CountEntries(c.next(), "", prefix)
}

// The proof the cursor relies on: once Vault stops writing the log, AuditFrom
// fails instead of answering "nothing since". A Vault of its own, since the
// shared one's log must stay live.
func TestAuditFromNoticesADeadLog(t *testing.T) {
	needWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := testenv.StartVault(ctx, os.Getenv(testenv.VaultBinaryEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	if _, err := v.AuditRequests(); err == nil {
		t.Error("AuditRequests without an audit device: no error")
	}
	if err := v.EnableAudit(); err != nil {
		t.Fatal(err)
	}
	_, pos, err := v.AuditFrom(0)
	if err != nil {
		t.Fatalf("live log: %v", err)
	}
	if _, err := v.Write("cubbyhole/seen", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	es, pos, err := v.AuditFrom(pos)
	if err != nil {
		t.Fatalf("live log: %v", err)
	}
	if len(es) != 1 || es[0].Path != "cubbyhole/seen" {
		t.Fatalf("entries since the last probe %v, want the one write", es)
	}

	if err := v.Root.Sys().DisableAudit("file"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write("cubbyhole/unseen", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if es, _, err := v.AuditFrom(pos); err == nil {
		t.Errorf("AuditFrom on a log Vault no longer writes answered %v, want an error", es)
	} else {
		t.Log(err)
	}
	if err := os.Remove(v.AuditLog); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AuditRequests(); err == nil {
		t.Error("AuditRequests of a missing log: no error")
	}
}
