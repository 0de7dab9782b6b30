// Package testenv starts the real components the integration tests, the demo
// and the benchmark run against: a Vault dev server built from source by
// scripts/build-vault.sh, a PostgreSQL cluster from Debian's packages, and a
// JWT issuer standing in for the Kubernetes API server's token signer.
package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// VaultBinaryEnv names the variable holding the Vault binary's path.
const VaultBinaryEnv = "VCP_VAULT_BIN"

// Vault is a running Vault dev server.
type Vault struct {
	Addr      string
	RootToken string
	// Root is a client holding the root token, for set-up and assertions.
	Root     *api.Client
	AuditLog string

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	bin  string
	port int
}

// FreePort returns a TCP port on 127.0.0.1 that is free now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartVault starts `vault server -dev` on a free port of 127.0.0.1, in a
// fresh temporary directory, and waits until it is unsealed and active.
func StartVault(ctx context.Context, bin string) (*Vault, error) {
	if bin == "" {
		return nil, fmt.Errorf("no Vault binary: run scripts/build-vault.sh and set $%s", VaultBinaryEnv)
	}
	dir, err := os.MkdirTemp("", "vcp-vault-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	v := &Vault{RootToken: "root-" + randomHex(8), dir: dir, bin: bin, port: port, Addr: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := v.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return v, nil
}

func (v *Vault) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(v.dir, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(v.bin, "server", "-dev",
		"-dev-root-token-id="+v.RootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port),
		"-dev-no-store-token")
	cmd.Env = cleanEnv("HOME=" + v.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting vault: %w", err)
	}
	v.cmd, v.log, v.done = cmd, logf, make(chan struct{})
	go func() { _ = cmd.Wait(); close(v.done) }()

	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		v.Stop()
		return err
	}
	c.SetToken(v.RootToken)
	v.Root = c
	deadline := time.Now().Add(30 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		h, err := c.Sys().HealthWithContext(hctx)
		cancel()
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		select {
		case <-v.done:
			return fmt.Errorf("vault exited during start-up; log: %s", tail(filepath.Join(v.dir, "vault.log")))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			v.Stop()
			return fmt.Errorf("vault not ready after 30s: %v", err)
		}
	}
}

// Stop kills Vault and removes its directory.
func (v *Vault) Stop() {
	v.Kill()
	os.RemoveAll(v.dir)
}

// Kill stops the Vault process, leaving its address unanswered.
func (v *Vault) Kill() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.done
	v.log.Close()
	v.cmd = nil
}

// Dir is Vault's scratch directory (also usable for test files).
func (v *Vault) Dir() string { return v.dir }

// EnableAudit turns on a file audit device, so tests can count the requests
// Vault really received.
func (v *Vault) EnableAudit() error {
	v.AuditLog = filepath.Join(v.dir, "audit.log")
	return v.Root.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": v.AuditLog, "log_raw": "false"},
	})
}

// AuditEntry is one request seen by Vault's audit device.
type AuditEntry struct {
	Operation string
	Path      string
	MountType string
}

// AuditRequests returns the requests logged so far. A log that is missing
// or holds no request at all is an error, not an empty answer: a count of
// zero must mean Vault saw nothing, not that nothing was recorded.
func (v *Vault) AuditRequests() ([]AuditEntry, error) {
	if v.AuditLog == "" {
		return nil, fmt.Errorf("no audit device: EnableAudit was not called")
	}
	f, err := os.Open(v.AuditLog)
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
				MountType string `json:"mount_type"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", v.AuditLog, err)
		}
		if e.Type != "request" {
			continue
		}
		out = append(out, AuditEntry{Operation: e.Request.Operation, Path: e.Request.Path, MountType: e.Request.MountType})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", v.AuditLog, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit log %s holds no requests: the audit device records nothing", v.AuditLog)
	}
	return out, nil
}

// AuditFrom returns the requests logged after the first from ones, and the
// position after them for the next call. It first sends a request of its
// own (a read of a fresh cubbyhole path) and requires to find it: Vault logs
// a request before answering it, so everything sent before the probe is
// in the log, and an empty answer proves Vault saw nothing, rather than that
// the audit device stopped writing.
func (v *Vault) AuditFrom(from int) (entries []AuditEntry, next int, err error) {
	probe := "cubbyhole/vcp-audit-probe-" + randomHex(8)
	if _, err := v.Root.Logical().Read(probe); err != nil {
		return nil, 0, fmt.Errorf("audit probe: %w", err)
	}
	es, err := v.AuditRequests()
	if err != nil {
		return nil, 0, err
	}
	at := -1
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Path == probe {
			at = i
			break
		}
	}
	switch {
	case at < 0:
		return nil, 0, fmt.Errorf("audit log %s lacks the probe request %s: the audit device is not recording", v.AuditLog, probe)
	case at < from:
		return nil, 0, fmt.Errorf("audit log %s: position %d is past the probe at %d (was the log replaced?)", v.AuditLog, from, at)
	}
	return es[from:at], at + 1, nil
}

// CountRequests counts audited requests of an operation ("read", "update",
// ...; empty for any) whose path starts with prefix.
func (v *Vault) CountRequests(op, prefix string) (int, error) {
	es, err := v.AuditRequests()
	if err != nil {
		return 0, err
	}
	return CountEntries(es, op, prefix), nil
}

// CountEntries counts the entries of an operation (empty for any) whose
// path starts with prefix.
func CountEntries(es []AuditEntry, op, prefix string) int {
	n := 0
	for _, e := range es {
		if strings.HasPrefix(e.Path, prefix) && (op == "" || e.Operation == op) {
			n++
		}
	}
	return n
}

// Logical writes data at path with the root token.
func (v *Vault) Write(path string, data map[string]any) (*api.Secret, error) {
	return v.Root.Logical().Write(path, data)
}

// Mount enables a secrets engine.
func (v *Vault) Mount(path, typ string, options map[string]string) error {
	return v.Root.Sys().Mount(path, &api.MountInput{Type: typ, Options: options})
}

// EnableAuth enables an auth method at path.
func (v *Vault) EnableAuth(path, typ string) error {
	return v.Root.Sys().EnableAuthWithOptions(path, &api.EnableAuthOptions{Type: typ})
}

// PutPolicy writes an ACL policy.
func (v *Vault) PutPolicy(name, hcl string) error {
	return v.Root.Sys().PutPolicy(name, hcl)
}

// cleanEnv is the environment without VAULT_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}
