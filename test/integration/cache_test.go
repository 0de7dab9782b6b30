package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// clock is a settable clock for the provider's caches: lifetimes are real
// Vault TTLs, but the test decides when "later" is.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// counter counts, per path, the requests in Vault's audit log.
type counter struct {
	t     *testing.T
	audit *auditCursor
}

var counted = []string{"auth/jwt/login", "auth/token/renew-self", "database/creds/app", "pki/issue/example-com", "secret/data/app", "sys/leases/renew"}

func newCounter(t *testing.T) *counter {
	t.Helper()
	return &counter{t: t, audit: newAuditCursor(t)}
}

// since returns how many requests to each path Vault saw since the last call.
func (c *counter) since() map[string]int {
	c.t.Helper()
	es := c.audit.next()
	out := map[string]int{}
	for _, p := range counted {
		out[p] = testenv.CountEntries(es, "", p)
	}
	return out
}

// want checks the counts since the last call; a path it does not name may
// have any count.
func (c *counter) want(what string, want map[string]int) {
	c.t.Helper()
	got := c.since()
	for p, n := range want {
		if _, ok := got[p]; !ok {
			c.t.Fatalf("%s: %s is not among the counted paths %v", what, p, counted)
		}
		if got[p] != n {
			c.t.Errorf("%s: Vault saw %d requests to %s, want %d (all: %v)", what, got[p], p, n, got)
		}
	}
}

const pollObjects = `
- {objectName: db/username, secretPath: database/creds/app, secretKey: username}
- {objectName: db/password, secretPath: database/creds/app, secretKey: password}
- {objectName: db/lease.json, secretPath: database/creds/app}
- objectName: tls/cert.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: certificate
  secretArgs: {common_name: poll.example.com, ttl: 1h}
- objectName: tls/key.pem
  secretPath: pki/issue/example-com
  method: PUT
  secretKey: private_key
  secretArgs: {common_name: poll.example.com, ttl: 1h}
- {objectName: password, secretPath: secret/data/app, secretKey: password}
`

func TestRotationPollsReuseTokenAndLeases(t *testing.T) {
	needWorld(t)
	clk := &clock{t: time.Now()}
	r, err := serve(newProvider(vlt.Addr, hmac, clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	pod := appSA
	pod.PodName, pod.PodUID = "poller", "uid-poller"
	params := map[string]string{"roleName": "app", "objects": pollObjects}
	poll := func() (dir string, versions map[string]string) {
		t.Helper()
		req := volume(t, pod, "vault", params)
		v, err := r.client.Mount(context.Background(), req)
		if err != nil {
			t.Fatalf("mount: %v", err)
		}
		return req.TargetPath, v
	}

	cnt := newCounter(t)
	dir, first := poll()
	user := readFile(t, dir, "db/username")
	cert := readFile(t, dir, "tls/cert.pem")
	for i := 0; i < 9; i++ {
		clk.Advance(time.Minute)
		d, v := poll()
		if got := readFile(t, d, "db/username"); got != user {
			t.Fatalf("poll %d: new database user %q, want the cached %q", i+2, got, user)
		}
		if readFile(t, d, "tls/cert.pem") != cert {
			t.Fatalf("poll %d: certificate re-issued", i+2)
		}
		for id, ver := range first {
			if v[id] != ver {
				t.Errorf("poll %d: version of %s changed", i+2, id)
			}
		}
	}
	cnt.want("10 polls", map[string]int{
		"auth/jwt/login":        1,
		"database/creds/app":    1,
		"pki/issue/example-com": 1,
		"secret/data/app":       10, // KV is re-read so rotation sees changes
		"sys/leases/renew":      0,
		"auth/token/renew-self": 0,
	})

	// Past 2/3 of the 1h lifetimes: the token and the database lease are
	// renewed (same credential), the certificate is re-issued once.
	clk.Advance(35 * time.Minute)
	dir, _ = poll()
	if got := readFile(t, dir, "db/username"); got != user {
		t.Errorf("database user changed to %q on renewal", got)
	}
	if readFile(t, dir, "tls/cert.pem") == cert {
		t.Error("certificate not re-issued after 2/3 of its lifetime")
	}
	cnt.want("poll past the threshold", map[string]int{
		"auth/jwt/login":        0,
		"auth/token/renew-self": 1,
		"sys/leases/renew":      1,
		"database/creds/app":    0,
		"pki/issue/example-com": 1,
	})
	var lease struct {
		LeaseID string `json:"lease_id"`
	}
	if err := json.Unmarshal([]byte(readFile(t, dir, "db/lease.json")), &lease); err != nil || lease.LeaseID == "" {
		t.Fatalf("db/lease.json: %v %q", err, lease.LeaseID)
	}
	lk, err := vlt.Write("sys/leases/lookup", map[string]any{"lease_id": lease.LeaseID})
	if err != nil {
		t.Fatal(err)
	}
	if lk.Data["last_renewal"] == nil {
		t.Errorf("Vault shows no renewal of lease %s: %v", lease.LeaseID, lk.Data)
	}

	// And the next poll is served from the caches again.
	clk.Advance(time.Minute)
	poll()
	cnt.want("poll after renewal", map[string]int{
		"auth/jwt/login": 0, "auth/token/renew-self": 0, "sys/leases/renew": 0,
		"database/creds/app": 0, "pki/issue/example-com": 0, "secret/data/app": 1,
	})
}

func TestRevokedTokenMeansOneRelogin(t *testing.T) {
	needWorld(t)
	sa := testenv.ServiceAccount{Namespace: "apps", Name: "revokee", PodName: "revokee-0", PodUID: "uid-revokee"}
	if err := vlt.PutPolicy("revokee-marker", `path "nothing/here" { capabilities = ["deny"] }`); err != nil {
		t.Fatal(err)
	}
	if err := vlt.JWTRole(jwtMount, "revokee", sa, "vault", "app", "revokee-marker"); err != nil {
		t.Fatal(err)
	}
	r, err := startProvider(vlt.Addr, hmac)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	params := map[string]string{"roleName": "revokee", "objects": "- {objectName: pw, secretPath: secret/data/app, secretKey: password}"}
	mountOnce := func() {
		t.Helper()
		if _, err := r.client.Mount(context.Background(), volume(t, sa, "vault", params)); err != nil {
			t.Fatalf("mount: %v", err)
		}
	}
	cnt := newCounter(t)
	mountOnce()
	mountOnce()
	cnt.want("two mounts", map[string]int{"auth/jwt/login": 1})

	revoked := revokeTokensWithPolicy(t, "revokee-marker")
	if revoked == 0 {
		t.Fatal("found no token to revoke")
	}
	mountOnce()
	cnt.want("mount after revocation", map[string]int{"auth/jwt/login": 1, "secret/data/app": 2})
	mountOnce()
	cnt.want("mount after re-login", map[string]int{"auth/jwt/login": 0, "secret/data/app": 1})
}

// revokeTokensWithPolicy revokes, as root, every token carrying policy.
func revokeTokensWithPolicy(t *testing.T, policy string) int {
	t.Helper()
	list, err := vlt.Root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		acc := k.(string)
		info, err := vlt.Write("auth/token/lookup-accessor", map[string]any{"accessor": acc})
		if err != nil {
			continue
		}
		pols, _ := info.Data["policies"].([]any)
		for _, p := range pols {
			if p == policy {
				if _, err := vlt.Write("auth/token/revoke-accessor", map[string]any{"accessor": acc}); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	return n
}

func TestIdentitiesNeverShareTokensOrLeases(t *testing.T) {
	needWorld(t)
	r, err := startProvider(vlt.Addr, hmac)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	params := map[string]string{"roleName": "app", "objects": "- {objectName: user, secretPath: database/creds/app, secretKey: username}"}
	type pod struct{ name, uid string }
	users := map[pod]string{}
	cnt := newCounter(t)
	for i, step := range []struct {
		pod
		known bool // mounted before: its cached token and credential serve it
	}{
		{pod{"pod-a", "uid-a"}, false},
		{pod{"pod-b", "uid-b"}, false},
		{pod{"pod-a", "uid-a"}, true},
		{pod{"pod-b", "uid-b"}, true},
		// A StatefulSet pod recreated under its old name: a new pod, which
		// must never inherit its predecessor's token or credential.
		{pod{"pod-a", "uid-a-2"}, false},
		{pod{"pod-a", "uid-a-2"}, true},
		{pod{"pod-a", "uid-a"}, true},
	} {
		sa := appSA
		sa.PodName, sa.PodUID = step.name, step.uid
		req := volume(t, sa, "vault", params)
		if _, err := r.client.Mount(context.Background(), req); err != nil {
			t.Fatalf("mount %d (%s, %s): %v", i+1, step.name, step.uid, err)
		}
		u := readFile(t, req.TargetPath, "user")
		want := map[string]int{"auth/jwt/login": 1, "database/creds/app": 1}
		if step.known {
			want = map[string]int{"auth/jwt/login": 0, "database/creds/app": 0}
			if prev := users[step.pod]; u != prev {
				t.Errorf("mount %d: pod %s (%s) got a new credential on a later mount", i+1, step.name, step.uid)
			}
		} else {
			for other, prev := range users {
				if u == prev {
					t.Errorf("mount %d: new pod %s (%s) got the credential of pod %s (%s)", i+1, step.name, step.uid, other.name, other.uid)
				}
			}
		}
		users[step.pod] = u
		cnt.want(fmt.Sprintf("mount %d (%s, %s)", i+1, step.name, step.uid), want)
	}
	if len(users) != 3 {
		t.Errorf("%d distinct pods mounted, want 3", len(users))
	}
}
