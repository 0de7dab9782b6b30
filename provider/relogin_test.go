package provider

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// newCachingProvider is newProvider with a credentials cache holding the
// tokens of up to tokenCacheSize pod identities.
func newCachingProvider(v *vaulttest.Server, tokenCacheSize int) *Provider {
	p := newProvider(v)
	p.Credentials = cache.New(p.Auth, cache.Options{TokenCacheSize: tokenCacheSize})
	return p
}

// podMount is mountRequest for the pod with uid.
func podMount(t *testing.T, uid, objects string) *pb.MountRequest {
	t.Helper()
	req := mountRequest(t, objects, true)
	setAttr(t, req, config.AttrPodUID, uid)
	setAttr(t, req, config.AttrPodName, "pod-"+uid)
	return req
}

func fileContents(resp *pb.MountResponse, path string) string {
	for _, f := range resp.GetFiles() {
		if f.Path == path {
			return string(f.Contents)
		}
	}
	return ""
}

// lastToken is the token of v's latest login.
func lastToken(t *testing.T, v *vaulttest.Server) string {
	t.Helper()
	logins := v.Logins()
	if len(logins) == 0 {
		t.Fatal("no login yet")
	}
	return logins[len(logins)-1].Value
}

// tokensUsed lists the distinct tokens presented at path, in order.
func tokensUsed(v *vaulttest.Server, path string) []string {
	var out []string
	for _, c := range v.Calls() {
		if c.Path == path && (len(out) == 0 || out[len(out)-1] != c.Token) {
			out = append(out, c.Token)
		}
	}
	return out
}

// userAlive reports whether v handed out the database user and its lease
// is still live: neither revoked nor expired, nor its creator token
// revoked (a lease dies with its token, as in Vault).
func userAlive(v *vaulttest.Server, user string) bool {
	for _, l := range v.Leases() {
		if l.Data["username"] == user {
			return l.Live
		}
	}
	return false
}

// The objects these tests mount, from newVault: secret/data/other is
// denied by policy to every token.
const (
	kvObject     = "- {objectName: kv, secretPath: secret/data/app, secretKey: username}\n"
	deniedObject = "- {objectName: no, secretPath: secret/data/other, secretKey: username}\n"
	dbObject     = "- {objectName: user, secretPath: database/creds/app, secretKey: username}\n"
)

func TestMountReloginAfter403(t *testing.T) {
	type mount struct {
		objects      string
		revokeBefore bool // revoke the latest token in Vault first
		want         codes.Code
	}
	tests := []struct {
		name       string
		noCache    bool
		lookupSelf bool // Vault answers lookup-self for live tokens
		mounts     []mount
		wantLogins int
		wantReads  int // of secret/data/app; -1: not checked
	}{
		{
			name:       "cached token revoked: one re-login and the Mount succeeds",
			mounts:     []mount{{kvObject, false, codes.OK}, {kvObject, true, codes.OK}, {kvObject, false, codes.OK}},
			wantLogins: 2, wantReads: 4, // 1, then 403 + retry, then 1 with the new token
		},
		{
			name:       "403 with a token obtained in this Mount: no re-login",
			mounts:     []mount{{deniedObject, false, codes.PermissionDenied}},
			wantLogins: 1,
		},
		{
			name:       "403 on one of several objects, with a token obtained in this Mount: no re-login",
			mounts:     []mount{{kvObject + deniedObject, false, codes.PermissionDenied}},
			wantLogins: 1, wantReads: -1, // the KV read may be cancelled by the 403
		},
		{
			name:       "cached token refused for good: exactly one re-login, then the error",
			mounts:     []mount{{kvObject, false, codes.OK}, {deniedObject, false, codes.PermissionDenied}},
			wantLogins: 2, wantReads: 1,
		},
		{
			name:       "cached token denied by policy, alive by lookup-self: kept, no re-login",
			lookupSelf: true,
			mounts:     []mount{{kvObject, false, codes.OK}, {deniedObject, false, codes.PermissionDenied}, {kvObject, false, codes.OK}},
			wantLogins: 1, wantReads: 2,
		},
		{
			name:       "without a cache every Mount logs in, and none again",
			noCache:    true,
			mounts:     []mount{{kvObject, false, codes.OK}, {deniedObject, false, codes.PermissionDenied}},
			wantLogins: 2, wantReads: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVault(t)
			if !tt.lookupSelf {
				// A policy without lookup-self: the cache cannot tell a
				// denied path from a dead token, and takes it for dead.
				v.Deny("auth/token/lookup-self")
			}
			p := newCachingProvider(v, 10)
			if tt.noCache {
				p.Credentials = nil
			}
			for i, m := range tt.mounts {
				if m.revokeBefore {
					v.Revoke(lastToken(t, v))
				}
				resp, err := p.Mount(context.Background(), podMount(t, "uid-a", m.objects))
				if code := status.Code(err); code != m.want {
					t.Fatalf("Mount %d: %v (code %v), want %v", i+1, err, code, m.want)
				}
				if err == nil && fileContents(resp, "kv") != "app-user" {
					t.Errorf("Mount %d: kv = %q", i+1, fileContents(resp, "kv"))
				}
			}
			if n := v.Count("", "auth/kubernetes/login"); n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
			if n := v.Count("GET", "secret/data/app"); tt.wantReads >= 0 && n != tt.wantReads {
				t.Errorf("%d KV reads, want %d", n, tt.wantReads)
			}
			// Each token is used for one stretch of reads: once refused,
			// never presented again.
			seen := map[string]bool{}
			for _, tok := range tokensUsed(v, "secret/data/app") {
				if seen[tok] {
					t.Errorf("token %s presented again after another", tok)
				}
				seen[tok] = true
			}
		})
	}
}

// A lease dies with its token. Once Vault refused the creator token, the
// lease cache must not hand out that token's credentials. A token the
// cache evicted for room is not revoked (eviction depends on other pods'
// doing): it and its credentials stay valid, and the pod's next Mount
// still gets a live credential.
func TestMountRevokedTokenLeases(t *testing.T) {
	tests := []struct {
		name string
		size int
		// kill makes the cached token of pod uid-a unusable to the cache;
		// it returns the objects of the next Mount of uid-a.
		kill func(t *testing.T, v *vaulttest.Server, p *Provider) string
		// evicted: the token was evicted, not revoked.
		evicted bool
	}{
		{
			name: "revoked token: re-login after Vault refused it",
			size: 10,
			kill: func(t *testing.T, v *vaulttest.Server, p *Provider) string {
				v.Revoke(lastToken(t, v))
				return kvObject + dbObject // the KV read gets the 403
			},
		},
		{
			name: "evicted token: forgotten by the token cache, not revoked",
			size: 1, evicted: true,
			kill: func(t *testing.T, v *vaulttest.Server, p *Provider) string {
				if _, err := p.Mount(context.Background(), podMount(t, "uid-b", dbObject)); err != nil {
					t.Fatal(err)
				}
				return dbObject
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVault(t)
			p := newCachingProvider(v, tt.size)
			first, err := p.Mount(context.Background(), podMount(t, "uid-a", kvObject+dbObject))
			if err != nil {
				t.Fatal(err)
			}
			user := fileContents(first, "user")
			if !userAlive(v, user) {
				t.Fatalf("first Mount got a dead credential %q", user)
			}
			objects := tt.kill(t, v, p)
			if alive := userAlive(v, user); alive != tt.evicted {
				t.Fatalf("credential %q alive = %v after its token was killed, want %v", user, alive, tt.evicted)
			}
			logins := v.Count("", "auth/kubernetes/login")
			resp, err := p.Mount(context.Background(), podMount(t, "uid-a", objects))
			if err != nil {
				t.Fatal(err)
			}
			if got := fileContents(resp, "user"); !userAlive(v, got) {
				t.Errorf("Mount after the token's revocation served database user %q, revoked with its token", got)
			}
			if n := v.Count("", "auth/kubernetes/login") - logins; n != 1 {
				t.Errorf("%d logins in the Mount after, want 1 (the cache no longer holds the token)", n)
			}
			if n := v.Count("", "auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
		})
	}
}
