package vault

import (
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// last is the latest request v received.
func last(t *testing.T, v *vaulttest.Server) vaulttest.Call {
	t.Helper()
	calls := v.Calls()
	if len(calls) == 0 {
		t.Fatal("Vault received no request")
	}
	return calls[len(calls)-1]
}

func newClient(t *testing.T, opts Options, tg Target) *Client {
	t.Helper()
	c, err := NewPool(opts).Client(tg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
