package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
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

// liveLeases returns the IDs of the live leases under prefix.
func liveLeases(t *testing.T, prefix string) map[string]bool {
	t.Helper()
	list, err := vlt.Root.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	if list == nil {
		return ids // Vault answers 404 for a prefix without leases
	}
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		ids[prefix+k.(string)] = true
	}
	return ids
}

// A pod whose policy denies one of its paths fails every rotation poll. That
// must not cost Vault a new token, and new dynamic credentials, per poll:
// Vault answers 403 both for a revoked token and for a policy denial, and a
// provider that logs in again on any 403 to a cached token abandons the old
// token, with every lease issued under it, unrevoked, on every poll.
//
// The pod has two volumes logging in as the same identity (so sharing one
// token and the leases under it): one with a database credential its policy
// allows, which succeeds on every poll and holds a lease, and one that also
// asks for a denied path.
func TestDeniedPathDoesNotPileUpTokensOrLeases(t *testing.T) {
	needWorld(t)
	sa := testenv.ServiceAccount{Namespace: "apps", Name: "denied-poller", PodName: "denied-poller-0", PodUID: "uid-denied-poller"}
	if err := vlt.JWTRole(jwtMount, "denied-poller", sa, "vault", "app"); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]string{"roleName": "denied-poller", "objects": `
- {objectName: db/username, secretPath: database/creds/app, secretKey: username}
`}
	denied := map[string]string{"roleName": "denied-poller", "objects": `
- {objectName: db/username, secretPath: database/creds/app, secretKey: username}
- {objectName: denied, secretPath: secret/data/other, secretKey: k}
`}
	const prefix = "database/creds/app/"
	before := liveLeases(t, prefix)
	newLeases := func() []string {
		var ids []string
		for id := range liveLeases(t, prefix) {
			if !before[id] {
				ids = append(ids, id)
			}
		}
		return ids
	}
	var user string
	const polls = 4
	for i := 1; i <= polls; i++ {
		req := volume(t, sa, "vault", allowed)
		if _, err := mount(t, req); err != nil {
			t.Fatalf("poll %d, allowed volume: %v", i, err)
		}
		switch u := readFile(t, req.TargetPath, "db/username"); {
		case i == 1:
			user = u
			// The lease half counts something: the credential is a lease.
			if n := len(newLeases()); n != 1 {
				t.Fatalf("the first mount left %d new database leases, want 1", n)
			}
		case u != user:
			t.Errorf("poll %d: a new database credential %q, want the first one %q", i, u, user)
		}
		_, err := mount(t, volume(t, sa, "vault", denied))
		wantCode(t, err, codes.PermissionDenied, "secret/data/other")
	}
	tokens := liveTokens(t, sa.Name)
	leases := newLeases()
	t.Logf("after %d polls: %d live tokens, %d new database leases", polls, tokens, len(leases))
	if tokens != 1 {
		t.Errorf("%d polls of one pod left %d live Vault tokens, want 1", polls, tokens)
	}
	if len(leases) != 1 {
		t.Errorf("%d polls of one pod left %d live database credentials, want 1: %v", polls, len(leases), leases)
	}
}
