package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// revokingVault is a Vault whose tokens can be revoked: a login at any
// auth/<mount>/login gives a new token; revoking a token (revoke-self, or
// revoke from the test) revokes the database leases it created, as Vault
// does. Revoked tokens get 403 everywhere; secret/data/denied is 403 for all,
// and so is lookup-self unless lookupSelf is set.
type revokingVault struct {
	*httptest.Server

	mu         sync.Mutex
	lookupSelf bool // answer lookup-self for live tokens
	logins     int
	creds      int
	calls      []revokingCall
	revoked    map[string]bool   // token values
	leases     map[string]string // database user -> token that created it
	deadUser   map[string]bool
}

type revokingCall struct {
	Path  string
	Token string
}

func newRevokingVault(t *testing.T) *revokingVault {
	t.Helper()
	rv := &revokingVault{revoked: map[string]bool{}, leases: map[string]string{}, deadUser: map[string]bool{}}
	rv.Server = httptest.NewServer(rv)
	t.Cleanup(rv.Close)
	return rv
}

func (rv *revokingVault) count(path string) int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	n := 0
	for _, c := range rv.calls {
		if c.Path == path {
			n++
		}
	}
	return n
}

// tokensUsed lists the distinct tokens presented at path, in order.
func (rv *revokingVault) tokensUsed(path string) []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []string
	for _, c := range rv.calls {
		if c.Path == path && (len(out) == 0 || out[len(out)-1] != c.Token) {
			out = append(out, c.Token)
		}
	}
	return out
}

// revoke revokes tok and every lease it created.
func (rv *revokingVault) revoke(tok string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.revokeLocked(tok)
}

func (rv *revokingVault) revokeLocked(tok string) {
	rv.revoked[tok] = true
	for user, creator := range rv.leases {
		if creator == tok {
			rv.deadUser[user] = true
		}
	}
}

// lastToken is the token of the latest login.
func (rv *revokingVault) lastToken() string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return fmt.Sprintf("hvs.rv-%d", rv.logins)
}

func (rv *revokingVault) userAlive(user string) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	_, known := rv.leases[user]
	return known && !rv.deadUser[user]
}

func (rv *revokingVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	tok := r.Header.Get("X-Vault-Token")
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &body)
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	denied := map[string]any{"errors": []string{"1 error occurred:\n\t* permission denied\n\n"}}

	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.calls = append(rv.calls, revokingCall{Path: path, Token: tok})
	if strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login") {
		if body["jwt"] == "" || body["role"] == "" {
			reply(http.StatusBadRequest, map[string]any{"errors": []string{"missing role or jwt"}})
			return
		}
		rv.logins++
		reply(200, map[string]any{"auth": map[string]any{
			"client_token":   fmt.Sprintf("hvs.rv-%d", rv.logins),
			"accessor":       fmt.Sprintf("acc-rv-%d", rv.logins),
			"lease_duration": 3600,
			"renewable":      true,
		}})
		return
	}
	if tok == "" || rv.revoked[tok] {
		reply(http.StatusForbidden, denied)
		return
	}
	switch path {
	case "auth/token/revoke-self":
		rv.revokeLocked(tok)
		w.WriteHeader(http.StatusNoContent)
	case "auth/token/lookup-self":
		if !rv.lookupSelf {
			reply(http.StatusForbidden, denied)
			return
		}
		reply(200, map[string]any{"data": map[string]any{"policies": []string{"app"}}})
	case "secret/data/app":
		reply(200, map[string]any{"data": map[string]any{
			"data":     map[string]any{"password": "kv-password"},
			"metadata": map[string]any{"version": 1},
		}})
	case "database/creds/app":
		rv.creds++
		user := fmt.Sprintf("v-%d", rv.creds)
		rv.leases[user] = tok
		reply(200, map[string]any{
			"lease_id":       fmt.Sprintf("database/creds/app/lease-%d", rv.creds),
			"lease_duration": 3600,
			"renewable":      true,
			"data":           map[string]any{"username": user, "password": "p-" + user},
		})
	default: // secret/data/denied and anything else
		reply(http.StatusForbidden, denied)
	}
}

func newCachingProvider(rv *revokingVault, tokenCacheSize int) *Provider {
	authn := &auth.Authenticator{}
	return &Provider{
		Defaults:    config.Defaults{VaultAddress: rv.URL, AuthMountPath: "jwt"},
		Vault:       vault.NewPool(vault.Options{MaxRetries: 0}),
		Auth:        authn,
		Credentials: cache.New(authn, cache.Options{TokenCacheSize: tokenCacheSize}),
		Keys:        objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
	}
}

// podMount is mountRequest for the pod with uid.
func podMount(t *testing.T, uid, objects string) *pb.MountRequest {
	t.Helper()
	req := mountRequest(t, objects, true)
	var a map[string]string
	if err := json.Unmarshal([]byte(req.Attributes), &a); err != nil {
		t.Fatal(err)
	}
	a[config.AttrPodUID], a[config.AttrPodName] = uid, "pod-"+uid
	b, _ := json.Marshal(a)
	req.Attributes = string(b)
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

const (
	kvObject     = "- {objectName: pw, secretPath: secret/data/app, secretKey: password}\n"
	deniedObject = "- {objectName: no, secretPath: secret/data/denied, secretKey: password}\n"
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
			rv := newRevokingVault(t)
			rv.mu.Lock()
			rv.lookupSelf = tt.lookupSelf
			rv.mu.Unlock()
			p := newCachingProvider(rv, 10)
			if tt.noCache {
				p.Credentials = nil
			}
			for i, m := range tt.mounts {
				if m.revokeBefore {
					rv.revoke(rv.lastToken())
				}
				resp, err := p.Mount(context.Background(), podMount(t, "uid-a", m.objects))
				if code := status.Code(err); code != m.want {
					t.Fatalf("Mount %d: %v (code %v), want %v", i+1, err, code, m.want)
				}
				if err == nil && fileContents(resp, "pw") != "kv-password" {
					t.Errorf("Mount %d: pw = %q", i+1, fileContents(resp, "pw"))
				}
			}
			if n := rv.count("auth/jwt/login"); n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
			if n := rv.count("secret/data/app"); tt.wantReads >= 0 && n != tt.wantReads {
				t.Errorf("%d KV reads, want %d", n, tt.wantReads)
			}
			// Each token is used for one stretch of reads: once refused,
			// never presented again.
			seen := map[string]bool{}
			for _, tok := range rv.tokensUsed("secret/data/app") {
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
		kill func(t *testing.T, rv *revokingVault, p *Provider) string
		// evicted: the token was evicted, not revoked.
		evicted bool
	}{
		{
			name: "revoked token: re-login after Vault refused it",
			size: 10,
			kill: func(t *testing.T, rv *revokingVault, p *Provider) string {
				rv.revoke(rv.lastToken())
				return kvObject + dbObject // the KV read gets the 403
			},
		},
		{
			name: "evicted token: forgotten by the token cache, not revoked",
			size: 1, evicted: true,
			kill: func(t *testing.T, rv *revokingVault, p *Provider) string {
				if _, err := p.Mount(context.Background(), podMount(t, "uid-b", dbObject)); err != nil {
					t.Fatal(err)
				}
				return dbObject
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv := newRevokingVault(t)
			p := newCachingProvider(rv, tt.size)
			first, err := p.Mount(context.Background(), podMount(t, "uid-a", kvObject+dbObject))
			if err != nil {
				t.Fatal(err)
			}
			user := fileContents(first, "user")
			if !rv.userAlive(user) {
				t.Fatalf("first Mount got a dead credential %q", user)
			}
			objects := tt.kill(t, rv, p)
			if alive := rv.userAlive(user); alive != tt.evicted {
				t.Fatalf("credential %q alive = %v after its token was killed, want %v", user, alive, tt.evicted)
			}
			logins := rv.count("auth/jwt/login")
			resp, err := p.Mount(context.Background(), podMount(t, "uid-a", objects))
			if err != nil {
				t.Fatal(err)
			}
			if got := fileContents(resp, "user"); !rv.userAlive(got) {
				t.Errorf("Mount after the token's revocation served database user %q, revoked with its token", got)
			}
			if n := rv.count("auth/jwt/login") - logins; n != 1 {
				t.Errorf("%d logins in the Mount after, want 1 (the cache no longer holds the token)", n)
			}
			if n := rv.count("auth/token/revoke-self"); n != 0 {
				t.Errorf("%d revoke-self calls, want none", n)
			}
		})
	}
}
