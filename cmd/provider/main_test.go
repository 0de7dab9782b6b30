package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/server"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

func parse(t *testing.T, args []string, env map[string]string) (*options, error) {
	t.Helper()
	fs := flag.NewFlagSet("provider", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseFlags(fs, args, func(k string) string { return env[k] })
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"endpoint", o.endpoint, "/var/run/secrets-store-csi-providers/vault.sock"},
		{"health-addr", o.healthAddr, ":8080"},
		{"pprof", o.pprof, false},
		{"vault-addr", o.defaults.VaultAddress, "https://127.0.0.1:8200"},
		{"vault-mount", o.defaults.AuthMountPath, "kubernetes"},
		{"vault-namespace", o.defaults.VaultNamespace, ""},
		{"skip verify", o.defaults.TLS.SkipTLSVerify, false},
		{"max retries", o.vaultOpts.MaxRetries, vault.DefaultOptions.MaxRetries},
		{"timeout", o.vaultOpts.Timeout, vault.DefaultOptions.Timeout},
		{"client cache", o.vaultOpts.MaxClients, vault.DefaultOptions.MaxClients},
		{"vault max connections", o.vaultOpts.MaxConnections, vault.DefaultOptions.MaxConnections},
		{"allowed addresses", len(o.defaults.AllowedVaultAddresses), 0},
		{"fetch concurrency", o.fetchConc, provider.DefaultFetchConcurrency},
		{"max response", o.maxResponse, provider.MaxResponseBytes},
		{"grace", o.grace, 20 * time.Second},
		{"max concurrent mounts", o.grpc.MaxConcurrentMounts, server.DefaultMaxConcurrentMounts},
		{"max concurrent mounts per pod", o.grpc.MaxConcurrentMountsPerPod, server.DefaultMaxConcurrentMountsPerPod},
		{"max queued mounts", o.grpc.MaxQueuedMounts, server.DefaultMaxQueuedMounts},
		{"hmac name", o.hmacName, "vault-csi-provider-hmac-key"},
		{"hmac namespace", o.hmacNamespace, ""},
		{"max identities per pod", o.idsPerPod, cache.DefaultMaxTokensPerPod},
		{"max leases per pod", o.leasesPerPod, cache.DefaultMaxLeasesPerPod},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseFlagsEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o *options)
	}{
		{
			name: "VAULT_ADDR is the default",
			env:  map[string]string{"VAULT_ADDR": "https://vault.env:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.env:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "flag overrides VAULT_ADDR",
			args: []string{"-vault-addr", "https://vault.flag:8200"},
			env:  map[string]string{"VAULT_ADDR": "https://vault.env:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.flag:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "flag with = form",
			args: []string{"--vault-addr=https://vault.flag:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://vault.flag:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "TLS and namespace from the environment",
			env: map[string]string{
				"VAULT_NAMESPACE":       "ns-env",
				"VAULT_CACERT":          "/ca.pem",
				"VAULT_CAPATH":          "/cas",
				"VAULT_TLS_SERVER_NAME": "vault.internal",
				"VAULT_CLIENT_CERT":     "/tls.crt",
				"VAULT_CLIENT_KEY":      "/tls.key",
				"VAULT_SKIP_VERIFY":     "true",
				"VAULT_MAX_RETRIES":     "5",
			},
			check: func(t *testing.T, o *options) {
				d := o.defaults
				if d.VaultNamespace != "ns-env" || d.TLS.CACert != "/ca.pem" || d.TLS.CADirectory != "/cas" ||
					d.TLS.ServerName != "vault.internal" || d.TLS.ClientCert != "/tls.crt" || d.TLS.ClientKey != "/tls.key" ||
					!d.TLS.SkipTLSVerify {
					t.Errorf("defaults = %+v", d)
				}
				if o.vaultOpts.MaxRetries != 5 {
					t.Errorf("MaxRetries = %d", o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "flags override TLS environment",
			args: []string{"-vault-namespace", "ns-flag", "-vault-tls-skip-verify=false", "-vault-max-retries", "0"},
			env:  map[string]string{"VAULT_NAMESPACE": "ns-env", "VAULT_SKIP_VERIFY": "1", "VAULT_MAX_RETRIES": "5"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultNamespace != "ns-flag" || o.defaults.TLS.SkipTLSVerify || o.vaultOpts.MaxRetries != 0 {
					t.Errorf("namespace %q skip %v retries %d", o.defaults.VaultNamespace, o.defaults.TLS.SkipTLSVerify, o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "malformed environment values fall back to defaults",
			env:  map[string]string{"VAULT_SKIP_VERIFY": "maybe", "VAULT_MAX_RETRIES": "lots"},
			check: func(t *testing.T, o *options) {
				if o.defaults.TLS.SkipTLSVerify || o.vaultOpts.MaxRetries != vault.DefaultOptions.MaxRetries {
					t.Errorf("skip %v retries %d", o.defaults.TLS.SkipTLSVerify, o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "empty VAULT_ADDR keeps the built-in default",
			env:  map[string]string{"VAULT_ADDR": ""},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "https://127.0.0.1:8200" {
					t.Errorf("VaultAddress = %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "POD_NAMESPACE is the HMAC Secret namespace",
			env:  map[string]string{"POD_NAMESPACE": "csi"},
			check: func(t *testing.T, o *options) {
				if o.hmacNamespace != "csi" {
					t.Errorf("hmacNamespace = %q", o.hmacNamespace)
				}
			},
		},
		{
			name: "flag overrides POD_NAMESPACE",
			args: []string{"-hmac-secret-namespace", "other"},
			env:  map[string]string{"POD_NAMESPACE": "csi"},
			check: func(t *testing.T, o *options) {
				if o.hmacNamespace != "other" {
					t.Errorf("hmacNamespace = %q", o.hmacNamespace)
				}
			},
		},
		{
			name: "allowed Vault addresses",
			args: []string{"-allowed-vault-addresses", " https://vault-2:8200, ,https://vault-* ", "-vault-client-cache-size", "9", "-vault-max-connections", "7"},
			check: func(t *testing.T, o *options) {
				if got := strings.Join(o.defaults.AllowedVaultAddresses, "|"); got != "https://vault-2:8200|https://vault-*" {
					t.Errorf("AllowedVaultAddresses = %q", o.defaults.AllowedVaultAddresses)
				}
				if o.vaultOpts.MaxClients != 9 || o.vaultOpts.MaxConnections != 7 {
					t.Errorf("MaxClients = %d, MaxConnections = %d", o.vaultOpts.MaxClients, o.vaultOpts.MaxConnections)
				}
			},
		},
		{
			name: "other flags",
			args: []string{"-endpoint", "unix:///tmp/v.sock", "-health-addr", "", "-shutdown-grace", "3s", "-fetch-concurrency", "9", "-max-response-bytes", "1024", "-debug", "-vault-mount", "jwt", "-vault-timeout", "7s", "-pprof"},
			check: func(t *testing.T, o *options) {
				if o.endpoint != "unix:///tmp/v.sock" || o.healthAddr != "" || o.grace != 3*time.Second || !o.pprof ||
					o.fetchConc != 9 || o.maxResponse != 1024 || !o.debug || o.defaults.AuthMountPath != "jwt" ||
					o.vaultOpts.Timeout != 7*time.Second {
					t.Errorf("options = %+v", o)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestParseFlagsMountLimits(t *testing.T) {
	o, err := parse(t, []string{"-max-concurrent-mounts=8", "-max-concurrent-mounts-per-pod", "2", "-max-queued-mounts=100"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := server.Options{MaxConcurrentMounts: 8, MaxConcurrentMountsPerPod: 2, MaxQueuedMounts: 100}
	if o.grpc != want {
		t.Errorf("mount limits = %+v, want %+v", o.grpc, want)
	}
}

func TestParseFlagsCacheQuotas(t *testing.T) {
	o, err := parse(t, []string{"-cache-size", "500", "-lease-cache-size=2000", "-max-identities-per-pod", "3", "-max-leases-per-pod=40"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cacheSize != 500 || o.leaseSize != 2000 || o.idsPerPod != 3 || o.leasesPerPod != 40 {
		t.Errorf("cache %d, leases %d, identities per pod %d, leases per pod %d; want 500, 2000, 3, 40", o.cacheSize, o.leaseSize, o.idsPerPod, o.leasesPerPod)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"positional argument", []string{"serve"}, `unexpected arguments: ["serve"]`},
		{"positional after flags", []string{"-debug", "extra", "more"}, `unexpected arguments: ["extra" "more"]`},
		{"mount after server flags", []string{"-debug", "mount", "spc.yaml"}, "the mount subcommand comes first: provider mount [flags] SPC.yaml"},
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
		{"bad duration", []string{"-shutdown-grace", "soon"}, "shutdown-grace"},
		{"bad int", []string{"-fetch-concurrency", "many"}, "fetch-concurrency"},
		{"unknown log format", []string{"-log-format", "xml"}, "-log-format"},
		{"refresh fraction 1", []string{"-refresh-fraction", "1"}, "-refresh-fraction"},
		{"refresh fraction 0", []string{"-refresh-fraction", "0"}, "-refresh-fraction"},
		{"cache size 0", []string{"-cache-size", "0"}, "-cache-size"},
		{"max concurrent mounts 0", []string{"-max-concurrent-mounts", "0"}, "-max-concurrent-mounts 0 must be at least 1"},
		{"max concurrent mounts per pod 0", []string{"-max-concurrent-mounts-per-pod", "0"}, "-max-concurrent-mounts-per-pod 0 must be at least 1"},
		{"max queued mounts negative", []string{"-max-queued-mounts", "-1"}, "-max-queued-mounts -1 must be at least 1"},
		{"credentials in -vault-addr", []string{"-vault-addr", "https://admin:hunter2@vault:8200"}, "-vault-addr (or $VAULT_ADDR): address 1 of 1 carries user information"},
		{"bad allow-list entry", []string{"-allowed-vault-addresses", "https://vault:8200/v1"}, "-allowed-vault-addresses: entry 1"},
		{"allow-list entry with credentials", []string{"-allowed-vault-addresses", "https://admin:hunter2@vault:8200"}, "(not shown: it contains '@')"},
		{"client cache of 0", []string{"-vault-client-cache-size", "0"}, "-vault-client-cache-size 0"},
		{"no Vault connections", []string{"-vault-max-connections", "0"}, "-vault-max-connections 0 must be at least 1"},
		{"relative socket in -vault-addr", []string{"-vault-addr", "unix://agent.sock"}, `address 1 of 1, "unix://agent.sock", is not a usable unix:// address: its socket path is not absolute`},
		{"socket prefix in the allow-list", []string{"-allowed-vault-addresses", "unix:///var/run/*"}, "a Unix socket is trusted only when listed exactly"},
		{"max identities per pod 0", []string{"-max-identities-per-pod", "0"}, "-max-identities-per-pod 0 must be at least 1"},
		{"max leases per pod 0", []string{"-max-leases-per-pod", "0"}, "-max-leases-per-pod 0 must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(t, tt.args, nil)
			if err == nil {
				t.Fatalf("parseFlags succeeded with %+v", o)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestParseFlagsCredentialsInVaultAddrEnvironment(t *testing.T) {
	_, err := parse(t, nil, map[string]string{"VAULT_ADDR": "https://admin:hunter2@vault:8200"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "$VAULT_ADDR") {
		t.Errorf("err = %v, want a refusal naming $VAULT_ADDR without the password", err)
	}
}

// vaultHelmArgs are the provider's args in vault-helm v0.34.1's CSI
// DaemonSet (templates/csi-daemonset.yaml) for a release named "vault",
// with csi.logLevel (or --log-level=debug with csi.debug).
func vaultHelmArgs(level string) []string {
	return []string{"--endpoint=/provider/vault.sock", "--log-level=" + level, "--hmac-secret-name=vault-csi-provider-hmac-key"}
}

func TestParseFlagsVaultHelm(t *testing.T) {
	for _, tt := range []struct {
		level     string
		env       map[string]string
		verbosity int
		vaultAddr string
	}{
		// The default: a Vault agent sidecar on a Unix socket.
		{"info", map[string]string{"VAULT_ADDR": "unix:///var/run/vault/agent.sock"}, 0, "unix:///var/run/vault/agent.sock"},
		{"debug", map[string]string{"VAULT_ADDR": "unix:///var/run/vault/agent.sock"}, 4, "unix:///var/run/vault/agent.sock"},
		// csi.agent.enabled=false: the Vault service.
		{"info", map[string]string{"VAULT_ADDR": "https://vault.vault.svc:8200"}, 0, "https://vault.vault.svc:8200"},
		// csi.logLevel: "" renders --log-level= .
		{"", nil, 0, "https://127.0.0.1:8200"},
	} {
		t.Run(tt.level+" "+tt.vaultAddr, func(t *testing.T) {
			o, err := parse(t, vaultHelmArgs(tt.level), tt.env)
			if err != nil {
				t.Fatalf("vault-helm's args %q: %v", vaultHelmArgs(tt.level), err)
			}
			if o.endpoint != "/provider/vault.sock" || o.hmacName != "vault-csi-provider-hmac-key" ||
				o.logLevel.verbosity != tt.verbosity || o.logLevel.threshold != "" || o.defaults.VaultAddress != tt.vaultAddr ||
				o.healthAddr != ":8080" {
				t.Errorf("endpoint %q hmac %q level %+v vaultAddr %q health %q", o.endpoint, o.hmacName, o.logLevel, o.defaults.VaultAddress, o.healthAddr)
			}
		})
	}
}

// Every flag of hashicorp/vault-csi-provider v1.7.4, in both spellings
// vault-helm's csi.extraArgs may use.
func TestParseFlagsHashicorpFlags(t *testing.T) {
	args := []string{
		"-endpoint=/provider/vault.sock",
		"-debug",
		"-log-level=warn",
		"-version",
		"-output=json-pretty",
		"-health-addr=:9090",
		"-hmac-secret-name=key",
		"-cache-size=7",
		"-vault-addr=https://vault.example:8200",
		"-vault-mount=jwt",
		"-vault-namespace=team",
		"-vault-tls-ca-cert=/ca.pem",
		"-vault-tls-ca-directory=/cas",
		"-vault-tls-server-name=vault.internal",
		"-vault-tls-client-cert=/tls.crt",
		"-vault-tls-client-key=/tls.key",
		"-vault-tls-skip-verify=true",
	}
	for _, dashes := range []string{"-", "--"} {
		t.Run(dashes, func(t *testing.T) {
			a := make([]string, len(args))
			for i, arg := range args {
				a[i] = dashes + strings.TrimPrefix(arg, "-")
			}
			o, err := parse(t, a, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := o.defaults
			checks := []struct {
				name      string
				got, want any
			}{
				{"endpoint", o.endpoint, "/provider/vault.sock"},
				{"debug", o.debug, true},
				{"log-level (wins over -debug)", o.logLevel.name, "warn"},
				{"version", o.showVersion, true},
				{"output", o.versionOutput, "json-pretty"},
				{"health-addr", o.healthAddr, ":9090"},
				{"hmac-secret-name", o.hmacName, "key"},
				{"cache-size", o.cacheSize, 7},
				{"vault-addr", d.VaultAddress, "https://vault.example:8200"},
				{"vault-mount", d.AuthMountPath, "jwt"},
				{"vault-namespace", d.VaultNamespace, "team"},
				{"vault-tls-ca-cert", d.TLS.CACert, "/ca.pem"},
				{"vault-tls-ca-directory", d.TLS.CADirectory, "/cas"},
				{"vault-tls-server-name", d.TLS.ServerName, "vault.internal"},
				{"vault-tls-client-cert", d.TLS.ClientCert, "/tls.crt"},
				{"vault-tls-client-key", d.TLS.ClientKey, "/tls.key"},
				{"vault-tls-skip-verify", d.TLS.SkipTLSVerify, true},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestParseFlagsLogLevelAndOutput(t *testing.T) {
	for _, tt := range []struct {
		args      []string
		level     string
		verbosity int
		output    string
	}{
		{nil, "info", 0, ""},
		{[]string{"-debug"}, "debug", 4, ""},
		{[]string{"-log-level", "trace"}, "trace", 6, ""},
		{[]string{"--log-level=OFF"}, "off", 0, ""},
		{[]string{"-version", "-output", "yaml"}, "info", 0, "yaml"},
		{[]string{"--version", "--output=json"}, "info", 0, "json"},
	} {
		o, err := parse(t, tt.args, nil)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if o.logLevel.name != tt.level || o.logLevel.verbosity != tt.verbosity || o.versionOutput != tt.output {
			t.Errorf("%q: level %+v output %q, want %s (-v=%d) and %q", tt.args, o.logLevel, o.versionOutput, tt.level, tt.verbosity, tt.output)
		}
	}
	for _, tt := range []struct {
		args   []string
		errSub string
	}{
		{[]string{"-log-level", "verbose"}, `-log-level "verbose": use trace, debug, info, warn, error or off`},
		{[]string{"-version", "-output", "xml"}, `-output: unknown output format "xml"`},
	} {
		if _, err := parse(t, tt.args, nil); err == nil || !strings.Contains(err.Error(), tt.errSub) {
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.errSub)
		}
	}
}

// runMainEnv, set to a JSON list of arguments, makes the test binary run
// main() with them instead of the tests: the provider as a process, with
// its exit codes, signals and logging set-up, without a separate build.
const runMainEnv = "VCP_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(runMainEnv); ok {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Args = append([]string{"provider"}, a...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error // Wait's; read after done
}

// startProvider runs main() with args in a child process, with env as its
// only VAULT_*, KUBERNETES_* and POD_* variables (so it runs without
// Kubernetes).
func startProvider(t *testing.T, args []string, env map[string]string) *process {
	t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "VAULT_") && !strings.HasPrefix(k, "KUBERNETES_") && !strings.HasPrefix(k, "POD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"="+string(a))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the process's exit code.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the provider did not exit; stderr:\n%s", p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// The provider as vault-helm runs it: its args (the socket moved to a
// temporary directory, as /provider is the DaemonSet's hostPath mount, and
// the health address moved off :8080), its VAULT_ADDR, and its probe path.
func TestRunAsVaultHelmDaemonSet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the provider")
	}
	for _, tt := range []struct {
		level    string
		env      map[string]string
		infoLogs bool
	}{
		{"info", map[string]string{"VAULT_ADDR": "unix:///var/run/vault/agent.sock"}, true},
		{"debug", map[string]string{"VAULT_ADDR": "https://vault.vault.svc:8200"}, true},
		// Not vault-helm's choices, but csi.logLevel's other values.
		{"error", nil, false},
		{"off", nil, false},
	} {
		t.Run(tt.level, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "vcp")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			socket := filepath.Join(dir, "vault.sock")
			health := freeAddr(t)
			args := vaultHelmArgs(tt.level)
			args[0] = "--endpoint=" + socket
			args = append(args, "--health-addr="+health)
			p := startProvider(t, args, tt.env)

			ready := "http://" + health + "/health/ready"
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, body, err := httpGet(ready)
				if err == nil && code == http.StatusOK {
					if !strings.Contains(body, "ok vault-csi-provider") {
						t.Errorf("/health/ready body %q", body)
					}
					break
				}
				select {
				case <-p.done:
					t.Fatalf("the provider exited (%v); stderr:\n%s", p.err, p.stderr)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("/health/ready never answered 200 (last: %d %q %v); stderr:\n%s", code, body, err, p.stderr)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				if code, body, err := httpGet("http://" + health + path); err != nil || code != http.StatusOK {
					t.Errorf("%s = %d %q %v", path, code, body, err)
				}
			}

			// The socket's file removed: the liveness probe fails, so the
			// kubelet restarts the container, which recreates it.
			if err := os.Remove(socket); err != nil {
				t.Fatal(err)
			}
			if code, body, err := httpGet(ready); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "no longer exists") {
				t.Errorf("/health/ready after the socket was removed = %d %q %v, want 503", code, body, err)
			}

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t); code != 0 {
				t.Errorf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr)
			}
			logs := p.stderr.String()
			if got := strings.Contains(logs, "Serving the provider API"); got != tt.infoLogs {
				t.Errorf("info records logged = %v, want %v; stderr:\n%s", got, tt.infoLogs, logs)
			}
			if !tt.infoLogs && logs != "" {
				t.Errorf("-log-level=%s logged:\n%s", tt.level, logs)
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the provider")
	}
	for _, tt := range []struct {
		args  []string
		check func(t *testing.T, out string)
	}{
		{[]string{"-version"}, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "vault-csi-provider ") || strings.Count(out, "\n") != 1 {
				t.Errorf("-version printed %q, want one line of text", out)
			}
		}},
		{[]string{"--version", "--output=json"}, func(t *testing.T, out string) {
			var i buildinfo.Info
			if err := json.Unmarshal([]byte(out), &i); err != nil || i.Version == "" || i.GoVersion == "" || i.Platform == "" {
				t.Errorf("--output=json printed %q (%v)", out, err)
			}
		}},
		{[]string{"-version", "-output", "json-pretty"}, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "{\n  \"version\": ") {
				t.Errorf("json-pretty printed %q", out)
			}
		}},
		{[]string{"-version", "-output", "yaml"}, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "version: ") || !strings.Contains(out, "\ngoVersion: ") {
				t.Errorf("yaml printed %q", out)
			}
		}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			p := startProvider(t, tt.args, nil)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
			}
			tt.check(t, p.stdout.String())
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the provider")
	}
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--log-level=verbose"}, `-log-level "verbose"`},
		{[]string{"-version", "-output=xml"}, `unknown output format "xml"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
	} {
		p := startProvider(t, tt.args, nil)
		if code := p.wait(t); code != 2 || !strings.Contains(p.stderr.String(), tt.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, p.stderr, tt.stderr)
		}
	}
}
