package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mountcmd "github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app/mount"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// `provider mount` against the real Vault: the command's entry function in
// this process, and once the built binary.

const mountSPC = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
  namespace: apps
spec:
  provider: vault
  parameters:
    roleName: %ROLE%
    vaultAuthMountPath: jwt%EXTRA%
    objects: |
      - objectName: password
        secretPath: secret/data/app
        secretKey: password
        filePermission: 0600
      - objectName: nested/dir/username
        secretPath: secret/data/app
        secretKey: username
      - objectName: decoded
        secretPath: secret/data/app
        secretKey: b64
        encoding: base64
`

const mountPod = `apiVersion: v1
kind: Pod
metadata:
  name: app-0
  namespace: apps
  uid: 11111111-2222-3333-4444-555555555555
spec:
  serviceAccountName: app
  containers: [{name: app, image: busybox}]
  volumes:
  - name: secrets
    csi:
      driver: secrets-store.csi.k8s.io
      readOnly: true
      volumeAttributes:
        secretProviderClass: app-secrets
        roleName: app
`

func spcWith(role, extra string) string {
	return strings.NewReplacer("%ROLE%", role, "%EXTRA%", extra).Replace(mountSPC)
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tokenFile(t *testing.T, dir, audience string) (path, jwt string) {
	t.Helper()
	jwt, _, err := issuer.Token(appSA, audience, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, dir, "token-"+audience, jwt+"\n"), jwt
}

func runMountCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := map[string]string{"VAULT_ADDR": vlt.Addr}
	code = mountcmd.Main(ctx, args, mountcmd.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestMountCommand(t *testing.T) {
	needWorld(t)
	dir := t.TempDir()
	vaultTok, jwt := tokenFile(t, dir, "vault")
	customTok, customJWT := tokenFile(t, dir, "custom-aud")
	good := writeTestFile(t, dir, "good.yaml", spcWith("app", ""))
	noRole := writeTestFile(t, dir, "no-such-role.yaml", spcWith("no-such-role", ""))
	otherAud := writeTestFile(t, dir, "other-aud.yaml", spcWith("app-custom-aud", ""))
	customAud := writeTestFile(t, dir, "custom-aud.yaml", spcWith("app-custom-aud", "\n    audience: custom-aud"))
	denied := writeTestFile(t, dir, "denied.yaml", strings.Replace(spcWith("app", ""), "secretPath: secret/data/app\n        secretKey: username", "secretPath: secret/data/other\n        secretKey: username", 1))
	invalid := writeTestFile(t, dir, "invalid.yaml", strings.Replace(spcWith("app", ""), "secretKey: password", "secretkey: password", 1))
	unclean := writeTestFile(t, dir, "unclean.yaml", strings.Replace(spcWith("app", ""), "objectName: decoded", "objectName: ../decoded", 1))
	pod := writeTestFile(t, dir, "pod.yaml", mountPod)
	identity := []string{"-pod-namespace", "apps", "-service-account", "app"}

	want := map[string]struct {
		content string
		mode    os.FileMode
	}{
		"password":            {"s3cr3t-pw", 0o600},
		"nested/dir/username": {"app", 0o644},
		"decoded":             {"hello world", 0o644},
	}
	tests := []struct {
		name        string
		args        []string
		write       bool
		wantCode    int
		wantOut     []string
		wantErr     []string
		notWant     []string // in stdout or stderr
		wantLogins  int
		wantRevokes int
		vaultIdle   bool // Vault sees no request at all
	}{
		{
			name:        "writes the files with the driver's writer",
			args:        append([]string{"-token-file", vaultTok}, append(identity, good)...),
			write:       true,
			wantOut:     []string{"Wrote 3 files to", `as Vault role "app"`, "password             0600  9", "<hidden, 9 bytes>", "nested/dir/username  0644  3", "decoded              0644  11"},
			notWant:     []string{"s3cr3t-pw", "hello world", jwt},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:        "prints, values hidden",
			args:        append([]string{"-token-file", vaultTok}, append(identity, good)...),
			wantOut:     []string{"PATH", "<hidden, 9 bytes>", "<hidden, 3 bytes>", "<hidden, 11 bytes>"},
			wantErr:     []string{"only indicative"},
			notWant:     []string{"s3cr3t-pw", "hello world", jwt, "Wrote"},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:        "prints values with -show-values",
			args:        append([]string{"-show-values", "-token-file", vaultTok}, append(identity, good)...),
			wantOut:     []string{`"s3cr3t-pw"`, `"app"`, `"hello world"`},
			notWant:     []string{"hidden", jwt},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:        "the pod's volumeAttributes override the class's roleName",
			args:        []string{"-token-file", vaultTok, "-pod", pod, noRole},
			wantOut:     []string{`as Vault role "app"`, "pod apps/app-0", "volume secrets"},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:        "the class's audience picks the token's key",
			args:        append([]string{"-token-file", customTok}, append(identity, customAud)...),
			wantOut:     []string{`as Vault role "app-custom-aud"`},
			notWant:     []string{customJWT},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:       "no such role: PermissionDenied",
			args:       append([]string{"-token-file", vaultTok}, append(identity, noRole)...),
			wantCode:   mountcmd.ExitFailed,
			wantErr:    []string{`PermissionDenied: Vault refused login as role "no-such-role" at auth/jwt`},
			notWant:    []string{jwt, "PATH"},
			wantLogins: 1,
		},
		{
			name:       "a role for another audience: PermissionDenied",
			args:       append([]string{"-token-file", vaultTok}, append(identity, otherAud)...),
			wantCode:   mountcmd.ExitFailed,
			wantErr:    []string{`PermissionDenied: Vault refused login as role "app-custom-aud" at auth/jwt`, "aud"},
			wantLogins: 1,
		},
		{
			name:        "the policy denies a path: PermissionDenied, token revoked",
			args:        append([]string{"-token-file", vaultTok}, append(identity, denied)...),
			wantCode:    mountcmd.ExitFailed,
			wantErr:     []string{`PermissionDenied: object "nested/dir/username"`, "secret/data/other", `check that the policies of Vault role "app" allow this path`},
			notWant:     []string{"s3cr3t-pw"},
			wantLogins:  1,
			wantRevokes: 1,
		},
		{
			name:      "an invalid class: InvalidArgument without touching Vault",
			args:      append([]string{"-token-file", vaultTok}, append(identity, invalid)...),
			wantCode:  mountcmd.ExitFailed,
			wantErr:   []string{"InvalidArgument: ", "secretkey"},
			vaultIdle: true,
		},
		{
			name:      "an unclean file name: InvalidArgument without touching Vault",
			args:      append([]string{"-token-file", vaultTok}, append(identity, unclean)...),
			wantCode:  mountcmd.ExitFailed,
			wantErr:   []string{"InvalidArgument: ", "../decoded"},
			vaultIdle: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			out := filepath.Join(t.TempDir(), "mount")
			if tt.write {
				args = append([]string{"-out", out}, args...)
			}
			audit := newAuditCursor(t)
			code, stdout, stderr := runMountCmd(t, args...)
			t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			seen := audit.next()
			logins := testenv.CountEntries(seen, "", "auth/jwt/login")
			revokes := testenv.CountEntries(seen, "", "auth/token/revoke-self")

			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output holds %q", w)
				}
			}
			if tt.vaultIdle && len(seen) != 0 {
				t.Errorf("Vault saw %d requests, want none: %v", len(seen), seen)
			}
			if !tt.vaultIdle && (logins != tt.wantLogins || revokes != tt.wantRevokes) {
				t.Errorf("Vault saw %d logins and %d revocations, want %d and %d", logins, revokes, tt.wantLogins, tt.wantRevokes)
			}
			if !tt.write {
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%s was created without -out", out)
				}
				return
			}
			for name, w := range want {
				p := filepath.Join(out, name)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if string(b) != w.content {
					t.Errorf("%s holds %q, want %q", name, b, w.content)
				}
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != w.mode {
					t.Errorf("%s mode %v (%v), want %o", name, fi.Mode().Perm(), err, w.mode)
				}
			}
			if fi, err := os.Lstat(filepath.Join(out, "..data")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("no ..data link of the driver's atomic writer: %v", err)
			}
		})
	}
}

// TestMountCommandVersionsMatchTheServer mounts the same class through the
// running provider (over its socket, as the driver does) and with `provider
// mount` given the same HMAC key: the same pipeline gives the same versions.
func TestMountCommandVersionsMatchTheServer(t *testing.T) {
	needWorld(t)
	dir := t.TempDir()
	vaultTok, _ := tokenFile(t, dir, "vault")
	keyFile := writeTestFile(t, dir, "hmac.key", "0123456789abcdef0123456789abcdef")
	spc := spcWith("app", "")

	req := volume(t, appSA, "vault", map[string]string{"roleName": "app", "vaultAuthMountPath": "jwt", "objects": objectsOf(spc)})
	server := mustMount(t, req)

	code, stdout, stderr := runMountCmd(t, "-token-file", vaultTok, "-pod-namespace", "apps", "-service-account", "app", "-hmac-key-file", keyFile, writeTestFile(t, dir, "spc.yaml", spc))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "indicative") {
		t.Errorf("with -hmac-key-file the versions are not indicative: %s", stderr)
	}
	rows := regexp.MustCompile(`(?m)^(\S+)\s+0[0-7]{3}\s+\d+\s+(\S+)\s+<hidden`).FindAllStringSubmatch(stdout, -1)
	if len(rows) != len(server) {
		t.Fatalf("%d rows, the server reported %d versions:\n%s", len(rows), len(server), stdout)
	}
	for _, r := range rows {
		if server[r[1]] != r[2] {
			t.Errorf("%s: version %s, the server's %s", r[1], r[2], server[r[1]])
		}
	}
}

// objectsOf extracts the objects block of an SPC made by spcWith.
func objectsOf(spc string) string {
	_, after, _ := strings.Cut(spc, "objects: |\n")
	var b strings.Builder
	for _, l := range strings.SplitAfter(after, "\n") {
		b.WriteString(strings.TrimPrefix(l, "      "))
	}
	return b.String()
}

// TestMountCommandBinary runs the built binary: `provider mount` is its
// subcommand, its exit status is the check's result.
func TestMountCommandBinary(t *testing.T) {
	needWorld(t)
	dir := t.TempDir()
	bin := buildProvider(t, dir)
	vaultTok, jwt := tokenFile(t, dir, "vault")
	good := writeTestFile(t, dir, "good.yaml", spcWith("app", ""))
	noRole := writeTestFile(t, dir, "no-role.yaml", spcWith("no-such-role", ""))
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "success", args: []string{"mount", "-token-file", vaultTok, "-pod-namespace", "apps", "-service-account", "app", good}, wantOut: "<hidden, 9 bytes>"},
		{name: "token from standard input", args: []string{"mount", "-token-file", "-", "-pod-namespace", "apps", "-service-account", "app", good}, stdin: jwt, wantOut: "<hidden, 9 bytes>"},
		{name: "refused login", args: []string{"mount", "-token-file", vaultTok, noRole}, wantCode: 1, wantErr: `PermissionDenied: Vault refused login as role "no-such-role"`},
		{name: "usage", args: []string{"mount", "-token-file", vaultTok}, wantCode: 2, wantErr: "no SecretProviderClass file"},
		{name: "help", args: []string{"mount", "-h"}, wantOut: "Usage: provider mount [flags] SPC.yaml"},
		{name: "the server's flags still parse", args: []string{"-version"}, wantOut: ""},
		{name: "mount after server flags", args: []string{"-debug", "mount", good}, wantCode: 2, wantErr: "the mount subcommand comes first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Env = append(withoutVaultEnv(), "VAULT_ADDR="+vlt.Addr)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout lacks %q", tt.wantOut)
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q", tt.wantErr)
			}
			if strings.Contains(out.String()+errb.String(), jwt) || strings.Contains(out.String()+errb.String(), "s3cr3t-pw") {
				t.Errorf("the output holds the token or a secret value")
			}
		})
	}
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
