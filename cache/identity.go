package cache

import (
	"strings"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// Identity is everything a Vault token stands for: the Vault server (address,
// namespace, TLS settings), the auth mount, role and audience, and the pod
// (namespace, name, UID, service account). Tokens and leases are cached per
// Identity, so two pods never share one, and neither do two Vault servers,
// namespaces, auth mounts, roles or audiences. The service account token
// itself is not part of it: the driver rotates it.
//
// It is made once per Mount and Vault address by IdentityOf and holds only
// its keys, so the many lookups of one Mount do not rebuild them.
type Identity struct {
	key string
	// pod is the pod's namespace, name and UID: whose quota (see fairLRU)
	// the identity's token and leases count against.
	pod string
}

// IdentityOf returns the identity a Mount request logs in as at address, one
// of c.VaultAddresses: with failover, each address is its own identity.
func IdentityOf(c *config.Config, address string) Identity {
	t := c.TLS
	return Identity{pod: podKey(c.Pod), key: strings.Join([]string{
		strings.TrimRight(address, "/"), c.VaultNamespace,
		t.CACert, t.CADirectory, t.ServerName, t.ClientCert, t.ClientKey, boolString(t.SkipTLSVerify),
		c.AuthMountPath, c.RoleName, c.TokenAudience(),
		c.Pod.Namespace, c.Pod.Name, c.Pod.UID, c.Pod.ServiceAccountName,
	}, "\x00")}
}

// Key is a string form of the identity, for map and singleflight keys.
func (id Identity) Key() string { return id.key }

// podKey names a pod by namespace, name and UID. Requests without them
// (not from the driver) share one pod.
func podKey(p config.Pod) string {
	return strings.Join([]string{p.Namespace, p.Name, p.UID}, "\x00")
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
