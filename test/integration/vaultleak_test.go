package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/vault-csi-provider/vault-csi-provider/internal/testenv"
)

// liveTokens counts the Vault tokens whose display name mentions sub.
func liveTokens(t *testing.T, sub string) int {
	t.Helper()
	list, err := vlt.Root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		info, err := vlt.Write("auth/token/lookup-accessor", map[string]any{"accessor": k.(string)})
		if err != nil {
			continue // revoked meanwhile
		}
		if dn, _ := info.Data["display_name"].(string); strings.Contains(dn, sub) {
			n++
		}
	}
	return n
}

// liveLeases counts the leases under prefix.
func liveLeases(t *testing.T, prefix string) int {
	t.Helper()
	list, err := vlt.Root.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	if list == nil {
		return 0
	}
	keys, _ := list.Data["keys"].([]any)
	return len(keys)
}

// A pod whose policy denies one of its paths fails every rotation poll. That
// must not cost Vault a new token (and new dynamic credentials) per poll.
// It does: the provider logs in again on any 403 to a cached token, even one
// that is still valid, and abandons the old token - with any lease issued
// under it - without revoking it, so both live on until the token's TTL.
func TestDeniedPathDoesNotPileUpTokensOrLeases(t *testing.T) {
	needWorld(t)
	sa := testenv.ServiceAccount{Namespace: "apps", Name: "denied-poller", PodName: "denied-poller-0", PodUID: "uid-denied-poller"}
	if err := vlt.JWTRole(jwtMount, "denied-poller", sa, "vault", "app"); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"roleName": "denied-poller", "objects": `
- {objectName: db/username, secretPath: database/creds/app, secretKey: username}
- {objectName: denied, secretPath: secret/data/other, secretKey: k}
`}
	leasesBefore := liveLeases(t, "database/creds/app/")
	const polls = 4
	for i := 0; i < polls; i++ {
		_, err := mount(t, volume(t, sa, "vault", params))
		wantCode(t, err, codes.PermissionDenied, "secret/data/other")
	}
	tokens := liveTokens(t, sa.Name)
	leases := liveLeases(t, "database/creds/app/") - leasesBefore
	t.Logf("after %d polls: %d live tokens, %d new database leases", polls, tokens, leases)
	if tokens > 1 {
		t.Errorf("%d polls of one pod left %d live Vault tokens, want at most 1", polls, tokens)
	}
	if leases > 1 {
		t.Errorf("%d polls of one pod left %d live database credentials, want at most 1", polls, leases)
	}
}
