package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// processUsage is what a leak would make grow.
type processUsage struct {
	goroutines int
	fds        int
	heapInuse  uint64
}

func (u processUsage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %.1f MiB heap in use", u.goroutines, u.fds, float64(u.heapInuse)/(1<<20))
}

func usage(t *testing.T) processUsage {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return processUsage{goroutines: runtime.NumGoroutine(), fds: len(fds), heapInuse: ms.HeapInuse}
}

// TestLoadNoLeaks sends 1,000 concurrent Mounts over the Unix socket for 100
// pod identities (10 each, like pods with several volumes polled at once),
// each mounting 3 KV objects, and checks every file's bytes and version.
// Afterwards, with the load's clients closed, the process must be back to
// its goroutines, file descriptors and heap of before the load.
func TestLoadNoLeaks(t *testing.T) {
	needWorld(t)
	const (
		identities  = 100
		perIdentity = 10
		clients     = 16
	)
	// One role for all load pods (bound_claims glob on sub): each still
	// logs in as itself and gets its own token.
	if err := vlt.PutPolicy("load", `path "secret/data/load/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := vlt.Write("auth/jwt/role/load", map[string]any{
		"role_type":         "jwt",
		"user_claim":        "sub",
		"bound_audiences":   []string{"vault"},
		"bound_claims_type": "glob",
		"bound_claims":      map[string]any{"sub": "system:serviceaccount:load:*"},
		"token_policies":    []string{"load"},
		"token_ttl":         "1h",
	}); err != nil {
		t.Fatal(err)
	}
	common := fmt.Sprintf("common-%x", time.Now().UnixNano())
	if _, err := vlt.Write("secret/data/load/common", map[string]any{"data": map[string]any{"c": common}}); err != nil {
		t.Fatal(err)
	}
	type pod struct {
		sa   testenv.ServiceAccount
		req  driverclient.MountRequest // TargetPath set per mount
		a, b string
	}
	pods := make([]*pod, identities)
	for i := range pods {
		sa := testenv.ServiceAccount{
			Namespace: "load", Name: fmt.Sprintf("sa-%d", i),
			PodName: fmt.Sprintf("pod-%d", i), PodUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
		}
		p := &pod{sa: sa, a: fmt.Sprintf("a-%d-%x", i, time.Now().UnixNano()), b: fmt.Sprintf("b-%d", i)}
		if _, err := vlt.Write(fmt.Sprintf("secret/data/load/pod-%d", i), map[string]any{"data": map[string]any{"a": p.a, "b": p.b}}); err != nil {
			t.Fatal(err)
		}
		p.req = volume(t, sa, "vault", map[string]string{"roleName": "load", "objects": fmt.Sprintf(`
- {objectName: own/a, secretPath: secret/data/load/pod-%d, secretKey: a}
- {objectName: own/b, secretPath: secret/data/load/pod-%d, secretKey: b, filePermission: 0400}
- {objectName: common, secretPath: secret/data/load/common, secretKey: c}
`, i, i)})
		pods[i] = p
	}
	dirs := make([]string, identities*perIdentity)
	base := t.TempDir()
	for i := range dirs {
		dirs[i] = filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}

	p := newProvider(vlt.Addr, hmac, nil)
	r, err := serve(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	// Warm up: the provider's lazily built parts (Vault client pool,
	// HMAC key, first connections) exist before the baseline.
	warm := pods[0].req
	warm.TargetPath = t.TempDir()
	if _, err := r.client.Mount(context.Background(), warm); err != nil {
		t.Fatalf("warm-up mount: %v", err)
	}
	before := usage(t)
	loginsBefore, err := vlt.CountRequests("", "auth/jwt/login")
	if err != nil {
		t.Fatal(err)
	}

	conns := make([]*driverclient.Client, clients)
	for i := range conns {
		if conns[i], err = driverclient.Dial(r.socket); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		mu       sync.Mutex
		failures []string
		versions = map[int]map[string]string{} // identity -> first versions seen
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for n := 0; n < identities*perIdentity; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := n % identities
			p := pods[id]
			req := p.req
			req.TargetPath = dirs[n]
			<-start
			v, err := conns[n%clients].Mount(ctx, req)
			if err != nil {
				fail("mount %d (pod %d): %v", n, id, err)
				return
			}
			for name, want := range map[string]string{"own/a": p.a, "own/b": p.b, "common": common} {
				got, err := os.ReadFile(filepath.Join(req.TargetPath, name))
				if err != nil || string(got) != want {
					fail("mount %d (pod %d): %s = %q (%v), want %q", n, id, name, got, err, want)
				}
			}
			if fi, err := os.Stat(filepath.Join(req.TargetPath, "own/b")); err != nil || fi.Mode().Perm() != 0o400 {
				fail("mount %d: own/b mode %v (%v), want 0400", n, fi.Mode().Perm(), err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(v) != 3 {
				failures = append(failures, fmt.Sprintf("mount %d: %d versions, want 3", n, len(v)))
			}
			if first, ok := versions[id]; !ok {
				versions[id] = v
			} else {
				for k, ver := range v {
					if first[k] != ver {
						failures = append(failures, fmt.Sprintf("pod %d: version of %s differs between two mounts of the same contents", id, k))
					}
				}
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)
	t.Logf("%d mounts (%d identities x %d, %d objects each) over %d connections in %s (%.0f mounts/s)",
		identities*perIdentity, identities, perIdentity, 3, clients, took.Round(time.Millisecond), float64(identities*perIdentity)/took.Seconds())
	if len(failures) > 0 {
		for i, f := range failures {
			if i == 20 {
				t.Errorf("... and %d more failures", len(failures)-i)
				break
			}
			t.Error(f)
		}
		t.FailNow()
	}
	// Versions follow contents: pods with different own/a differ, the
	// shared object agrees everywhere.
	if versions[1]["own/a"] == versions[2]["own/a"] {
		t.Error("different contents got the same version")
	}
	for id, v := range versions {
		if v["common"] != versions[0]["common"] {
			t.Errorf("pod %d: version of the shared object differs from pod 0's", id)
		}
	}
	// One login per identity, however many mounts arrived at once (pod 0
	// was logged in by the warm-up).
	loginsAfter, err := vlt.CountRequests("", "auth/jwt/login")
	if err != nil {
		t.Fatal(err)
	}
	if got := loginsAfter - loginsBefore; got != identities-1 {
		t.Errorf("Vault saw %d logins for %d new identities", got, identities-1)
	}

	for _, c := range conns {
		c.Close()
	}
	cancel()
	const (
		goroutineSlack = 10
		fdSlack        = 5
		heapSlack      = 20 << 20
	)
	var after processUsage
	peak := usage(t)
	// Connections to Vault are kept open for the next requests (at most
	// -vault-max-connections): close them, and what is left must be what
	// there was before the load.
	p.Vault.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		after = usage(t)
		if after.goroutines <= before.goroutines+goroutineSlack && after.fds <= before.fds+fdSlack && after.heapInuse < before.heapInuse+heapSlack {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	t.Logf("before the load: %s", before)
	t.Logf("right after:     %s", peak)
	t.Logf("settled:         %s", after)
	if after.goroutines > before.goroutines+goroutineSlack {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before, %d after (slack %d); stacks:\n%s", before.goroutines, after.goroutines, goroutineSlack, buf[:n])
	}
	if after.fds > before.fds+fdSlack {
		t.Errorf("open file descriptors: %d before, %d after (slack %d)", before.fds, after.fds, fdSlack)
	}
	if after.heapInuse >= before.heapInuse+heapSlack {
		t.Errorf("heap in use: %.1f MiB before, %.1f MiB after (slack %d MiB)", float64(before.heapInuse)/(1<<20), float64(after.heapInuse)/(1<<20), heapSlack>>20)
	}
}
