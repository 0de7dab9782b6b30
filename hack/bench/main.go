// Command bench measures a Secrets Store CSI provider the way the driver
// loads it: many pods, each with its own identity, mounting and then being
// re-mounted on every rotation poll. It starts a real Vault dev server (jwt
// auth with locally signed service-account-shaped tokens, N KV secrets, a
// PKI engine issuing one certificate per pod) with its file audit device on
// and, unless -socket names another provider's socket, our provider binary.
// Vault's work is counted from Vault's own audit log, and the same KV reads
// are made directly by this client in the same run, at the same
// concurrency, so the provider's cost is reported as a ratio to the floor,
// not as an absolute time. The provider's own CPU is read from its
// /proc/<pid>/stat (utime+stime) before and after each phase.
//
// Any implementation of the provider API can be measured with -socket: the
// SecretProviderClass parameters name this run's Vault (vaultAddress) and
// auth mount (vaultAuthMountPath), so the provider needs no set-up.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

type options struct {
	providerBin string
	vaultBin    string
	socket      string
	pid         int
	pods        int
	objects     int
	pki         int
	concurrency int
	polls       int
	identities  int
	cpuProfile  string
	profileSecs int
}

func main() {
	var o options
	flag.StringVar(&o.providerBin, "provider", "bin/provider", "provider binary to start (ignored with -socket)")
	flag.StringVar(&o.vaultBin, "vault", os.Getenv(testenv.VaultBinaryEnv), "vault binary")
	flag.StringVar(&o.socket, "socket", "", "measure the provider already listening on this socket instead of starting ours")
	flag.IntVar(&o.pid, "pid", 0, "with -socket: the provider's PID, to report its RSS")
	flag.IntVar(&o.pods, "pods", 50, "pods (distinct identities) mounting")
	flag.IntVar(&o.objects, "objects", 5, "KV objects per pod (distinct paths)")
	flag.IntVar(&o.pki, "pki", 1, "PKI certificate objects per pod (pki/issue, cached by the provider between polls)")
	flag.IntVar(&o.concurrency, "concurrency", 50, "mounts in flight")
	flag.IntVar(&o.polls, "polls", 10, "rotation polls of every pod")
	flag.IntVar(&o.identities, "identities", 1000, "distinct identities mounted once for the memory figure (0 to skip)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "with our provider: start it with -pprof and write a CPU profile taken during extra rotation polls to this file (go tool pprof -top FILE)")
	flag.IntVar(&o.profileSecs, "profile-seconds", 10, "length of the -cpuprofile profile")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type pod struct {
	sa    testenv.ServiceAccount
	dir   string
	attrs map[string]string // what the driver sends, token included
}

func run(o options) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "vcp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	v, err := testenv.StartVault(ctx, o.vaultBin)
	if err != nil {
		return err
	}
	defer v.Stop()
	iss, err := testenv.NewIssuer("https://bench.issuer")
	if err != nil {
		return err
	}
	if err := setupVault(v, iss, o.objects, o.pki); err != nil {
		return err
	}

	socket, pid := o.socket, o.pid
	var healthURL string
	if socket == "" {
		var stop func()
		socket, pid, healthURL, stop, err = startProvider(ctx, o.providerBin, work, o.cpuProfile != "")
		if err != nil {
			return err
		}
		defer stop()
	}
	client, err := driverclient.Dial(socket)
	if err != nil {
		return err
	}
	defer client.Close()

	fmt.Printf("vault-csi-provider bench: %d pods x (%d KV + %d PKI) objects, %d mounts in flight, %d rotation polls, Vault audit device on; socket %s\n",
		o.pods, o.objects, o.pki, o.concurrency, o.polls, socket)
	idleRSS := rssMiB(pid)

	var objs strings.Builder
	for i := 0; i < o.objects; i++ {
		fmt.Fprintf(&objs, "- {objectName: s%d, secretPath: secret/data/bench/s%d, secretKey: value}\n", i, i)
	}
	for i := 0; i < o.pki; i++ {
		fmt.Fprintf(&objs, "- {objectName: tls%d/tls.crt, secretPath: pki/issue/bench, method: PUT, secretArgs: {common_name: app%d.bench.example, ttl: 24h}, secretKey: certificate}\n", i, i)
	}
	params := map[string]string{
		"roleName":           "bench",
		"vaultAddress":       v.Addr,
		"vaultAuthMountPath": "jwt",
		"objects":            objs.String(),
	}
	// Like kubelet, sign each pod's token once and pass it on every poll.
	newPods := func(n, offset int, sub string) ([]pod, error) {
		pods := make([]pod, n)
		for i := range pods {
			sa := benchSA(offset + i)
			tok, exp, err := iss.Token(sa, "vault", time.Hour)
			if err != nil {
				return nil, err
			}
			attrs := map[string]string{
				config.AttrPodName: sa.PodName, config.AttrPodNamespace: sa.Namespace,
				config.AttrPodUID: sa.PodUID, config.AttrServiceAccountName: sa.Name,
				config.AttrServiceAccountToks: testenv.DriverTokens("vault", tok, exp),
			}
			for k, val := range params {
				attrs[k] = val
			}
			pods[i] = pod{sa: sa, dir: filepath.Join(work, sub, strconv.Itoa(i)), attrs: attrs}
			if err := os.MkdirAll(pods[i].dir, 0o750); err != nil {
				return nil, err
			}
		}
		return pods, nil
	}
	pods, err := newPods(o.pods, 0, "pods")
	if err != nil {
		return err
	}
	mountPod := func(p pod) error {
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := client.Mount(mctx, driverclient.MountRequest{Attributes: p.attrs, TargetPath: p.dir})
		return err
	}

	audit := auditCounter{v: v}
	if _, err := audit.mark(); err != nil {
		return err
	}
	cpu0 := cpuTime(pid)
	first, err := load(pods, o.concurrency, mountPod)
	if err != nil {
		return fmt.Errorf("first mount: %w", err)
	}
	cpu1 := cpuTime(pid)
	firstVault, err := audit.mark()
	if err != nil {
		return err
	}

	polls := func(n int) (result, error) {
		var rounds []time.Duration
		var wall time.Duration
		for r := 0; r < n; r++ {
			res, err := load(pods, o.concurrency, mountPod)
			if err != nil {
				return result{}, fmt.Errorf("rotation poll %d: %w", r+1, err)
			}
			rounds = append(rounds, res.latencies...)
			wall += res.wall
		}
		return result{latencies: rounds, wall: wall}, nil
	}
	cpu2 := cpuTime(pid)
	poll, err := polls(o.polls)
	if err != nil {
		return err
	}
	cpu3 := cpuTime(pid)
	pollVault, err := audit.mark()
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		// Outside the measured rounds: profiling costs the provider CPU.
		if err := profilePolls(healthURL, o.cpuProfile, o.profileSecs, func() error { _, err := polls(1); return err }); err != nil {
			return err
		}
		if _, err := audit.mark(); err != nil {
			return err
		}
	}

	// The floor: the same KV reads (a poll's certificate comes from the
	// provider's cache), made directly by this client with one token per
	// pod, the same number in flight, through a connection pool sized for
	// them.
	readDirect, err := directReader(ctx, v, iss, pods, o.objects, o.concurrency)
	if err != nil {
		return err
	}
	self0 := cpuTime(os.Getpid())
	direct, err := load(repeat(pods, o.polls), o.concurrency, readDirect)
	if err != nil {
		return err
	}
	self1 := cpuTime(os.Getpid())
	// Unloaded: one mount (or one pod's reads) at a time, where Vault is not
	// the bottleneck and the provider's own cost shows.
	serialPoll, err := load(repeat(pods, 2), 1, mountPod)
	if err != nil {
		return err
	}
	serialDirect, err := load(repeat(pods, 2), 1, readDirect)
	if err != nil {
		return err
	}
	if _, err := audit.mark(); err != nil {
		return err
	}

	mounts := float64(o.pods)
	pollMounts := float64(o.pods * o.polls)
	fmt.Printf("\n%-22s %10s %10s %10s   %s\n", "phase", "mounts/s", "p50", "p99", "Vault requests per mount (audit log)")
	fmt.Printf("%-22s %10.0f %10s %10s   %s\n", "first mount", first.rate(), ms(first.pct(50)), ms(first.pct(99)), firstVault.per(mounts))
	fmt.Printf("%-22s %10.0f %10s %10s   %s\n", "rotation poll", poll.rate(), ms(poll.pct(50)), ms(poll.pct(99)), pollVault.per(pollMounts))
	fmt.Printf("%-22s %10.0f %10s %10s   %d KV reads per pod, no provider\n", "direct Vault (floor)", direct.rate(), ms(direct.pct(50)), ms(direct.pct(99)), o.objects)
	fmt.Printf("%-22s %10.0f %10s %10s\n", "poll, 1 in flight", serialPoll.rate(), ms(serialPoll.pct(50)), ms(serialPoll.pct(99)))
	fmt.Printf("%-22s %10.0f %10s %10s\n", "direct, 1 in flight", serialDirect.rate(), ms(serialDirect.pct(50)), ms(serialDirect.pct(99)))
	fmt.Printf("\nrotation-poll throughput vs floor: %.0f%%  (target >= 70%%)\n", 100*poll.rate()/direct.rate())
	fmt.Printf("p99 provider overhead above direct reads: %s  (target < 1ms)\n", ms(poll.pct(99)-direct.pct(99)))
	fmt.Printf("p50 provider overhead above direct reads: %s\n", ms(poll.pct(50)-direct.pct(50)))
	fmt.Printf("unloaded provider overhead (1 in flight): p50 %s, p99 %s\n", ms(serialPoll.pct(50)-serialDirect.pct(50)), ms(serialPoll.pct(99)-serialDirect.pct(99)))

	if pid > 0 && cpu0 >= 0 && cpu3 >= 0 {
		fmt.Printf("\nprovider CPU per Mount (utime+stime from /proc/%d/stat): first mount %.2fms, rotation poll %.3fms  (target <= 0.5ms)\n",
			pid, perMount(cpu1-cpu0, o.pods), perMount(cpu3-cpu2, o.pods*o.polls))
		fmt.Printf("the floor's client (Vault's Go API client in this process, its %d reads of a pod) used %.3fms per pod\n",
			o.objects, perMount(self1-self0, o.pods*o.polls))
	}
	if pid > 0 {
		fmt.Printf("\nprovider RSS idle: %.1f MiB\n", idleRSS)
		fmt.Printf("provider RSS after %d pods: %.1f MiB  (target <= 30)\n", o.pods, rssMiB(pid))
		if healthURL != "" && o.cpuProfile != "" {
			fmt.Printf("  %s\n", goMemory(healthURL))
		}
		if o.identities > 0 {
			many, err := newPods(o.identities, 100000, "many")
			if err != nil {
				return err
			}
			if _, err := load(many, o.concurrency, mountPod); err != nil {
				return fmt.Errorf("mounting %d identities: %w", o.identities, err)
			}
			fmt.Printf("provider RSS after %d more identities: %.1f MiB  (target <= 60)\n", o.identities, rssMiB(pid))
			if healthURL != "" && o.cpuProfile != "" {
				fmt.Printf("  %s\n", goMemory(healthURL))
			}
		}
	}
	return nil
}

func benchSA(i int) testenv.ServiceAccount {
	return testenv.ServiceAccount{
		Namespace: "bench", Name: fmt.Sprintf("sa-%d", i),
		PodName: fmt.Sprintf("pod-%d", i), PodUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
	}
}

func setupVault(v *testenv.Vault, iss *testenv.Issuer, objects, pki int) error {
	if err := v.SetupJWTAuth("jwt", iss); err != nil {
		return err
	}
	if err := v.PutPolicy("bench", `path "secret/data/bench/*" { capabilities = ["read"] }
path "pki/issue/bench" { capabilities = ["update"] }`); err != nil {
		return err
	}
	if pki > 0 {
		if err := v.Mount("pki", "pki", map[string]string{"max-lease-ttl": "87600h"}); err != nil {
			return err
		}
		if _, err := v.Write("pki/root/generate/internal", map[string]any{"common_name": "bench CA", "key_type": "ec", "ttl": "87600h"}); err != nil {
			return err
		}
		// EC keys and no_store: the bench measures the provider, not
		// Vault's RSA key generation or its certificate storage.
		if _, err := v.Write("pki/roles/bench", map[string]any{
			"allowed_domains": "bench.example", "allow_subdomains": true,
			"key_type": "ec", "max_ttl": "72h", "no_store": true,
		}); err != nil {
			return err
		}
	}
	// One role for every bench pod: each still logs in as itself.
	if _, err := v.Write("auth/jwt/role/bench", map[string]any{
		"role_type":         "jwt",
		"user_claim":        "sub",
		"bound_audiences":   []string{"vault"},
		"bound_claims_type": "glob",
		"bound_claims":      map[string]any{"sub": "system:serviceaccount:bench:*"},
		"token_policies":    []string{"bench"},
		"token_ttl":         "1h",
	}); err != nil {
		return err
	}
	for i := 0; i < objects; i++ {
		if _, err := v.Write(fmt.Sprintf("secret/data/bench/s%d", i), map[string]any{"data": map[string]any{"value": fmt.Sprintf("value-%d", i)}}); err != nil {
			return err
		}
	}
	return v.EnableAudit()
}

func startProvider(ctx context.Context, bin, work string, pprof bool) (string, int, string, func(), error) {
	socket := filepath.Join(work, "providers", "vault.sock")
	port, err := testenv.FreePort()
	if err != nil {
		return "", 0, "", nil, err
	}
	key := filepath.Join(work, "hmac.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("b", 32)), 0o600); err != nil {
		return "", 0, "", nil, err
	}
	healthURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"-endpoint", socket, "-hmac-key-file", key, fmt.Sprintf("-health-addr=127.0.0.1:%d", port)}
	if pprof {
		args = append(args, "-pprof")
	}
	cmd := exec.Command(bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	logf, err := os.Create(filepath.Join(work, "provider.log"))
	if err != nil {
		return "", 0, "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", 0, "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); logf.Close() }
	if err := testenv.WaitHTTP(ctx, healthURL+"/readyz", 15*time.Second); err != nil {
		stop()
		return "", 0, "", nil, err
	}
	return socket, cmd.Process.Pid, healthURL, stop, nil
}

// profilePolls takes a CPU profile of secs seconds from the provider's
// -pprof endpoint while running poll until it is done, and writes it to
// path.
func profilePolls(healthURL, path string, secs int, poll func() error) error {
	type answer struct {
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", healthURL, secs))
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s", resp.Status)
		}
		done <- answer{b, err}
	}()
	rounds := 0
	for {
		select {
		case a := <-done:
			if a.err != nil {
				return fmt.Errorf("CPU profile: %w", a.err)
			}
			fmt.Printf("CPU profile of %ds (%d extra rotation polls) written to %s\n", secs, rounds, path)
			return os.WriteFile(path, a.body, 0o644)
		default:
		}
		if err := poll(); err != nil {
			return err
		}
		rounds++
	}
}

type result struct {
	latencies []time.Duration
	wall      time.Duration
}

func (r result) rate() float64 { return float64(len(r.latencies)) / r.wall.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.latencies...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// load runs f for every pod with at most conc in flight.
func load(pods []pod, conc int, f func(pod) error) (result, error) {
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, len(pods))
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, conc)
	start := time.Now()
	for _, p := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			err := f(p)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			lat = append(lat, d)
		}()
	}
	wg.Wait()
	return result{latencies: lat, wall: time.Since(start)}, firstErr
}

func repeat(pods []pod, n int) []pod {
	out := make([]pod, 0, len(pods)*n)
	for r := 0; r < n; r++ {
		out = append(out, pods...)
	}
	return out
}

// directReader logs every pod in once and returns a function doing one
// pod's KV reads straight against Vault, all at once: the floor any
// provider adds to.
func directReader(ctx context.Context, v *testenv.Vault, iss *testenv.Issuer, pods []pod, objects, concurrency int) (func(pod) error, error) {
	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	// api's default transport keeps GOMAXPROCS+1 idle connections to a
	// host: at this concurrency most reads would open a new one.
	if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = concurrency * max(objects, 1)
		t.MaxIdleConns = t.MaxIdleConnsPerHost
	}
	base, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	byPod := map[string]*api.Client{}
	for _, p := range pods {
		jwt, _, err := iss.Token(p.sa, "vault", time.Hour)
		if err != nil {
			return nil, err
		}
		c, _ := base.Clone()
		s, err := c.Logical().WriteWithContext(ctx, "auth/jwt/login", map[string]any{"role": "bench", "jwt": jwt})
		if err != nil {
			return nil, err
		}
		c.SetToken(s.Auth.ClientToken)
		byPod[p.sa.PodUID] = c
	}
	return func(p pod) error {
		c := byPod[p.sa.PodUID]
		errs := make(chan error, objects)
		for i := 0; i < objects; i++ {
			go func() {
				_, err := c.Logical().ReadWithContext(ctx, fmt.Sprintf("secret/data/bench/s%d", i))
				errs <- err
			}()
		}
		for i := 0; i < objects; i++ {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	}, nil
}

type auditCounter struct {
	v    *testenv.Vault
	seen int
}

type vaultWork struct{ logins, reads, issues, renewals, other int }

func (w vaultWork) per(mounts float64) string {
	return fmt.Sprintf("logins %.2f  reads %.2f  lease issues %.2f  renewals %.2f  other %.2f",
		float64(w.logins)/mounts, float64(w.reads)/mounts, float64(w.issues)/mounts, float64(w.renewals)/mounts, float64(w.other)/mounts)
}

// mark returns what Vault did since the previous mark.
func (a *auditCounter) mark() (vaultWork, error) {
	es, err := a.v.AuditRequests()
	if err != nil {
		return vaultWork{}, err
	}
	var w vaultWork
	for _, e := range es[a.seen:] {
		switch {
		case strings.HasPrefix(e.Path, "auth/") && strings.HasSuffix(e.Path, "/login"):
			w.logins++
		case e.Path == "auth/token/renew-self" || e.Path == "sys/leases/renew":
			w.renewals++
		case strings.HasPrefix(e.Path, "database/creds/") || strings.HasPrefix(e.Path, "pki/issue/"):
			w.issues++
		case e.Operation == "read":
			w.reads++
		default:
			w.other++
		}
	}
	a.seen = len(es)
	return w, nil
}

// cpuTime is the process's user and system CPU so far (utime+stime of
// /proc/<pid>/stat, all threads), or -1 when it cannot be read.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	// In clock ticks: USER_HZ, 100 on Linux.
	return time.Duration(utime+stime) * (time.Second / 100)
}

// goMemory summarizes the Go runtime's memory and goroutines, from the
// provider's -pprof endpoint.
func goMemory(healthURL string) string {
	get := func(path string) string {
		resp, err := http.Get(healthURL + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	out := []string{}
	for _, line := range strings.Split(get("/debug/pprof/heap?debug=1"), "\n") {
		for _, f := range []string{"# Sys = ", "# HeapInuse = ", "# Stack = "} {
			if v, ok := strings.CutPrefix(line, f); ok {
				v, _, _ = strings.Cut(v, " ") // Stack is "inuse / sys"
				n, _ := strconv.ParseFloat(v, 64)
				out = append(out, fmt.Sprintf("%s %.1f MiB", strings.TrimSuffix(f[2:], " = "), n/(1<<20)))
			}
		}
	}
	g, _, _ := strings.Cut(get("/debug/pprof/goroutine?debug=1"), "\n")
	return "Go runtime: " + strings.Join(out, ", ") + "; " + g
}

func perMount(d time.Duration, mounts int) float64 {
	return float64(d) / float64(time.Millisecond) / float64(max(mounts, 1))
}

func rssMiB(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
