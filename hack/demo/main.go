// Command demo shows the provider end to end on one machine: it starts a real
// Vault dev server, seeds a secret and a jwt auth role, runs the provider
// binary on a Unix socket, and mounts a volume through the driver's client
// path (same gRPC settings, same request encoding, the driver's own atomic
// file writer), then prints the mounted tree and object versions, rotates the
// secret and mounts again. Everything runs on 127.0.0.1 and is removed at the
// end. Run it with `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const spcObjects = `- objectName: db/username
  secretPath: secret/data/demo
  secretKey: username
- objectName: db/password
  secretPath: secret/data/demo
  secretKey: password
  filePermission: 0400
- objectName: config.json
  secretPath: secret/data/demo
  secretKey: config
`

func main() {
	providerBin := flag.String("provider", "bin/provider", "provider binary")
	vaultBin := flag.String("vault", os.Getenv(testenv.VaultBinaryEnv), "vault binary")
	flag.Parse()
	if err := run(*providerBin, *vaultBin); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(providerBin, vaultBin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work, err := os.MkdirTemp("", "vcp-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("Starting a Vault dev server (%s)", vaultBin)
	v, err := testenv.StartVault(ctx, vaultBin)
	if err != nil {
		return err
	}
	defer v.Stop()
	fmt.Println("    Vault listening on", v.Addr)

	sa := testenv.ServiceAccount{Namespace: "demo", Name: "app", PodName: "app-7d4b9c", PodUID: "4a1c2e1e-5f0e-4bd1-9a53-0d7f8c7e2b11"}
	step("Configuring Vault: jwt auth trusting a local token signer, role %q for %s, a KV v2 secret", "demo", sa.Subject())
	iss, err := testenv.NewIssuer("https://kubernetes.default.svc")
	if err != nil {
		return err
	}
	if err := v.SetupJWTAuth("jwt", iss); err != nil {
		return err
	}
	if err := v.PutPolicy("demo", `path "secret/data/demo" { capabilities = ["read"] }`); err != nil {
		return err
	}
	if err := v.JWTRole("jwt", "demo", sa, "vault", "demo"); err != nil {
		return err
	}
	if err := v.EnableAudit(); err != nil {
		return err
	}
	if err := writeSecret(v, "p4ssw0rd-1"); err != nil {
		return err
	}

	providersDir := filepath.Join(work, "secrets-store-csi-providers")
	socket := filepath.Join(providersDir, "vault.sock")
	healthPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(work, "hmac.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		return err
	}
	step("Starting the provider: %s -endpoint %s", providerBin, socket)
	cmd := exec.Command(providerBin,
		"-endpoint", socket,
		"-vault-addr", v.Addr,
		"-vault-mount", "jwt",
		"-hmac-key-file", keyFile,
		fmt.Sprintf("-health-addr=127.0.0.1:%d", healthPort),
		"-v=2")
	cmd.Env = withoutVaultEnv()
	logPath := filepath.Join(work, "provider.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := testenv.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort), 15*time.Second); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("provider not ready: %v\n%s", err, b)
	}

	client, err := driverclient.Dial(socket)
	if err != nil {
		return err
	}
	defer client.Close()
	ver, err := client.Version(ctx, &pb.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		return err
	}
	fmt.Printf("    Version: %s %s (API %s); /readyz on 127.0.0.1:%d answers OK\n", ver.RuntimeName, ver.RuntimeVersion, ver.Version, healthPort)

	target := filepath.Join(work, "kubelet/pods", sa.PodUID, "volumes/kubernetes.io~csi/secrets/mount")
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	mountOnce := func() (map[string]string, error) {
		tok, exp, err := iss.Token(sa, "vault", 10*time.Minute)
		if err != nil {
			return nil, err
		}
		return client.Mount(ctx, driverclient.MountRequest{
			TargetPath: target,
			Attributes: map[string]string{
				"roleName":                    "demo",
				"objects":                     spcObjects,
				config.AttrPodName:            sa.PodName,
				config.AttrPodNamespace:       sa.Namespace,
				config.AttrPodUID:             sa.PodUID,
				config.AttrServiceAccountName: sa.Name,
				config.AttrServiceAccountToks: testenv.DriverTokens("vault", tok, exp),
				"secretProviderClass":         "demo-secrets",
			},
		})
	}

	step("Mounting: the SecretProviderClass parameters are\n    roleName: demo\n    objects: |\n%s", indent(spcObjects, "      "))
	v1, err := mountOnce()
	if err != nil {
		return err
	}
	fmt.Println("    Mounted tree at", target)
	if err := printTree(target); err != nil {
		return err
	}
	printVersions(v1)

	step("Rotation poll with the secret unchanged: versions stay the same")
	v2, err := mountOnce()
	if err != nil {
		return err
	}
	printChanges(v1, v2)

	step("Changing db/password in Vault, then the next rotation poll")
	if err := writeSecret(v, "p4ssw0rd-2"); err != nil {
		return err
	}
	v3, err := mountOnce()
	if err != nil {
		return err
	}
	printChanges(v2, v3)
	b, _ := os.ReadFile(filepath.Join(target, "db/password"))
	fmt.Printf("    db/password now reads %q\n", b)

	logins, _ := v.CountRequests("update", "auth/jwt/login")
	reads, _ := v.CountRequests("read", "secret/data/demo")
	fmt.Printf("\n    Vault's audit log: %d logins, %d reads of secret/data/demo for 3 mounts of 3 objects\n", logins, reads)
	step("Cleaning up (SIGTERM to the provider, Vault stopped, %s removed)", work)
	return nil
}

func writeSecret(v *testenv.Vault, password string) error {
	_, err := v.Write("secret/data/demo", map[string]any{"data": map[string]any{
		"username": "demo-user",
		"password": password,
		"config":   map[string]any{"host": "db.demo.svc", "port": 5432},
	}})
	return err
}

func withoutVaultEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

// printTree lists what a pod sees. The driver's atomic writer keeps the
// files in a timestamped directory behind the ..data symlink and links the
// top-level names to it, so walk that directory.
func printTree(root string) error {
	data, err := filepath.EvalSymlinks(filepath.Join(root, "..data"))
	if err != nil {
		return err
	}
	return filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == data {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Printf("    %s  %s/\n", fi.Mode().Perm(), rel)
			return nil
		}
		b, err := os.ReadFile(filepath.Join(root, rel)) // through the pod-visible path
		if err != nil {
			return err
		}
		fmt.Printf("    %s  %-14s %q\n", fi.Mode().Perm(), rel, b)
		return nil
	})
}

func printVersions(v map[string]string) {
	fmt.Println("    Object versions (HMAC of config and contents; reveal nothing):")
	for _, id := range sortedKeys(v) {
		fmt.Printf("      %-12s %s\n", id, v[id])
	}
}

func printChanges(before, after map[string]string) {
	for _, id := range sortedKeys(after) {
		state := "unchanged"
		if before[id] != after[id] {
			state = "CHANGED"
		}
		fmt.Printf("      %-12s %s  %s\n", id, after[id], state)
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}
