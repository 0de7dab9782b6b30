package integration

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// buildProvider builds cmd/provider, the binary the DaemonSet runs, into
// dir and returns its path.
func buildProvider(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "provider")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vault-csi-provider/vault-csi-provider/cmd/provider").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/provider: %v\n%s", err, out)
	}
	return bin
}

// TestVaultHelmAgentSocket runs the provider binary as vault-helm's CSI
// DaemonSet runs it by default (csi.agent.enabled): its exact args, and
// VAULT_ADDR pointing at a Vault Agent sidecar's Unix socket — a real
// `vault agent` with `cache {}` and a `listener "unix"`, in front of the
// real Vault. The probe answers, pods mount KV, PKI and database secrets
// through the socket, and a rotation poll costs Vault no login and no new
// credential or certificate: the provider still caches per pod, and Vault's
// audit log and the provider's own metrics both show it.
func TestVaultHelmAgentSocket(t *testing.T) {
	needWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agent, err := vlt.StartAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()

	dir := t.TempDir()
	bin := buildProvider(t, dir)
	key, err := hmac.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeTestFile(t, dir, "hmac.key", hex.EncodeToString(key))
	// The socket directory stands in for the DaemonSet's /provider mount;
	// short, as a socket path must be.
	sockDir, err := os.MkdirTemp("", "vcp-helm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "vault.sock")
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	health := "127.0.0.1:" + strconv.Itoa(port)

	// vault-helm's csi DaemonSet args, verbatim but for the paths; then
	// what it takes to run outside Kubernetes (the HMAC key from a file)
	// and a free probe port instead of :8080.
	args := []string{
		"--endpoint=" + socket,
		"--log-level=info",
		"--hmac-secret-name=vault-csi-provider-hmac-key",
		"-hmac-key-file=" + keyFile,
		"-health-addr=" + health,
	}
	logPath := filepath.Join(dir, "provider.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "VAULT_") && !strings.HasPrefix(k, "KUBERNETES_") && !strings.HasPrefix(k, "POD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+agent.Addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("provider log:\n%s\nagent log:\n%s", b, agent.Log())
		}
	}()

	// vault-helm's liveness and readiness probe.
	if err := testenv.WaitHTTP(ctx, "http://"+health+"/health/ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	client, err := driverclient.Dial(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	pod := appSA
	pod.PodName, pod.PodUID = "helm-agent-0", "uid-helm-agent-0"
	// vault-helm sets no -vault-mount: the class names the jwt mount.
	params := map[string]string{"roleName": "app", "vaultAuthMountPath": jwtMount, "objects": pollObjects}
	poll := func() (dir string, versions map[string]string) {
		t.Helper()
		req := volume(t, pod, "vault", params)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := client.Mount(mctx, req)
		if err != nil {
			t.Fatalf("mount through the agent's socket: %v", err)
		}
		return req.TargetPath, v
	}

	cnt := newCounter(t)
	dir1, first := poll()
	cnt.want("first mount", map[string]int{"auth/jwt/login": 1, "database/creds/app": 1, "pki/issue/example-com": 1, "secret/data/app": 1})
	if got := readFile(t, dir1, "password"); got != "s3cr3t-pw" {
		t.Errorf("password = %q", got)
	}
	user := readFile(t, dir1, "db/username")
	cert := readFile(t, dir1, "tls/cert.pem")
	if !strings.HasPrefix(user, "v-") || !strings.Contains(cert, "BEGIN CERTIFICATE") || !strings.Contains(readFile(t, dir1, "tls/key.pem"), "PRIVATE KEY") {
		t.Errorf("database user %q, certificate %.40q: not what Vault issues", user, cert)
	}

	before := scrape(t, health)
	dir2, second := poll()
	after := scrape(t, health)
	// Vault's word: the poll cost one KV read and nothing else.
	cnt.want("rotation poll", map[string]int{"auth/jwt/login": 0, "database/creds/app": 0, "pki/issue/example-com": 0, "secret/data/app": 1, "auth/token/renew-self": 0, "sys/leases/renew": 0})
	// The provider's word: it did not even ask the agent (whose own cache
	// would answer a repeated login or credential request, and hide it
	// from Vault): no login sent, the token and both leases from its cache.
	for _, d := range []struct {
		series string
		labels []string
		want   float64
	}{
		{"vault_csi_provider_vault_requests_total", []string{`kind="login"`}, 0},
		{"vault_csi_provider_vault_requests_total", []string{`kind="write"`}, 0},
		{"vault_csi_provider_vault_requests_total", []string{`kind="read"`}, 1},
		{"vault_csi_provider_token_cache_total", []string{`outcome="hit"`}, 1},
		{"vault_csi_provider_token_cache_total", []string{`outcome="login"`}, 0},
		{"vault_csi_provider_lease_cache_total", []string{`outcome="hit"`}, 2},
		{"vault_csi_provider_lease_cache_total", []string{`outcome="issued"`}, 0},
	} {
		if got := metric(after, d.series, d.labels...) - metric(before, d.series, d.labels...); got != d.want {
			t.Errorf("rotation poll: %s%v rose by %v, want %v", d.series, d.labels, got, d.want)
		}
	}
	if readFile(t, dir2, "db/username") != user || readFile(t, dir2, "tls/cert.pem") != cert {
		t.Error("the rotation poll handed the pod a new database user or certificate")
	}
	for id, v := range first {
		if second[id] != v {
			t.Errorf("object %s: version %s on the poll, %s before", id, second[id], v)
		}
	}

	// Another pod is another identity: its own login and credentials.
	other := appSA
	other.PodName, other.PodUID = "helm-agent-1", "uid-helm-agent-1"
	req := volume(t, other, "vault", params)
	if _, err := client.Mount(ctx, req); err != nil {
		t.Fatalf("second pod: %v", err)
	}
	cnt.want("another pod", map[string]int{"auth/jwt/login": 1, "database/creds/app": 1, "pki/issue/example-com": 1})
	if readFile(t, req.TargetPath, "db/username") == user {
		t.Error("two pods share a database user")
	}

	// The trust rule: a class may name the trusted socket explicitly, but
	// no other socket on the node.
	named := map[string]string{"roleName": "app", "vaultAuthMountPath": jwtMount, "vaultAddress": agent.Addr,
		"objects": "- {objectName: password, secretPath: secret/data/app, secretKey: password}"}
	if _, err := client.Mount(ctx, volume(t, pod, "vault", named)); err != nil {
		t.Errorf("class naming the default socket: %v", err)
	}
	named["vaultAddress"] = "unix://" + socket // the provider's own socket, say
	_, err = client.Mount(ctx, volume(t, pod, "vault", named))
	wantCode(t, err, codes.InvalidArgument, "unix://"+socket+" is a Unix socket on the provider's node", "-allowed-vault-addresses")

	// vault-helm stops the pod with SIGTERM: a clean exit.
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("provider exited with %v on SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Error("provider still running 30s after SIGTERM")
	}
}

// scrape reads the provider's /metrics on its health address.
func scrape(t *testing.T, health string) string {
	t.Helper()
	resp, err := http.Get("http://" + health + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metric sums the samples of the series name (Prometheus text format)
// whose labels include every one of labels (`key="value"`); a series not
// yet exported counts 0.
func metric(exposition, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, "} ")
		if !ok {
			series, value, _ = strings.Cut(line, " ")
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			sum += f
		}
	}
	return sum
}
