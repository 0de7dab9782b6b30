package integration

import (
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/internal/testenv"
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
