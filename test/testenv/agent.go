package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Agent is a running `vault agent` in front of a Vault, as vault-helm's CSI
// DaemonSet runs it beside the provider: a listener on a Unix socket with
// TLS off, `cache {}`, and no auto_auth, so it passes every request through
// with the caller's own token (caching the tokens that logins through it
// create, and the leases made with those).
type Agent struct {
	// Socket is the agent's listener socket; Addr is "unix://" + Socket,
	// the address a client is given (vault-helm's VAULT_ADDR).
	Socket string
	Addr   string

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// StartAgent starts `vault agent` (the same binary as v) in front of v, in
// a fresh temporary directory, and waits until its socket answers
// sys/health from Vault.
func (v *Vault) StartAgent(ctx context.Context) (*Agent, error) {
	// A short directory: a socket path holds at most 107 bytes.
	dir, err := os.MkdirTemp("", "vcp-agent-")
	if err != nil {
		return nil, err
	}
	a := &Agent{dir: dir, Socket: filepath.Join(dir, "agent.sock")}
	a.Addr = "unix://" + a.Socket
	if err := a.start(ctx, v.bin, v.Addr); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

func (a *Agent) start(ctx context.Context, bin, vaultAddr string) error {
	conf := filepath.Join(a.dir, "agent.hcl")
	hcl := fmt.Sprintf(`vault {
  address = %q
}
cache {}
listener "unix" {
  address     = %q
  tls_disable = true
}
`, vaultAddr, a.Socket)
	if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(a.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "agent", "-config="+conf)
	cmd.Env = cleanEnv("HOME=" + a.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting vault agent: %w", err)
	}
	a.cmd, a.log, a.done = cmd, logf, make(chan struct{})
	go func() { _ = cmd.Wait(); close(a.done) }()

	hc := a.HTTPClient()
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for {
		last = a.health(ctx, hc)
		if last == nil {
			return nil
		}
		select {
		case <-a.done:
			return fmt.Errorf("vault agent exited during start-up; log: %s", tail(filepath.Join(a.dir, "agent.log")))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault agent not answering on %s after 30s: %v; log: %s", a.Socket, last, tail(filepath.Join(a.dir, "agent.log")))
		}
	}
}

// health asks Vault's sys/health through the agent.
func (a *Agent) health(ctx context.Context, hc *http.Client) error {
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, "http://localhost/v1/sys/health", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sys/health through the agent: status %d", resp.StatusCode)
	}
	return nil
}

// HTTPClient is an HTTP client whose every connection goes to the agent's
// socket, whatever the URL's host.
func (a *Agent) HTTPClient() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", a.Socket)
		},
	}}
}

// Log is what the agent logged so far (its last 2,000 bytes).
func (a *Agent) Log() string { return tail(filepath.Join(a.dir, "agent.log")) }

// Stop kills the agent and removes its directory, socket included.
func (a *Agent) Stop() {
	if a.cmd != nil && a.cmd.Process != nil {
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
		a.log.Close()
		a.cmd = nil
	}
	os.RemoveAll(a.dir)
}
