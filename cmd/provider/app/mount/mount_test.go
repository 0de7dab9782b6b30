package mount

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app/mount/spcfile"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// makeJWT builds a compact JWT with these claims (unsigned: Vault verifies,
// these tests do not).
func makeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + ".c2lnbmF0dXJl"
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		check  func(t *testing.T, o *options)
		errSub string
	}{
		{
			name: "defaults",
			args: []string{"-token-file", "t", "spc.yaml"},
			check: func(t *testing.T, o *options) {
				if o.spcFile != "spc.yaml" || o.tokenFile != "t" || !o.revoke || o.showValues || o.out != "" ||
					o.timeout != DefaultTimeout || o.defaults.VaultAddress != "https://127.0.0.1:8200" || o.defaults.AuthMountPath != "kubernetes" {
					t.Errorf("options %+v", o)
				}
			},
		},
		{
			name: "flags after the file",
			args: []string{"spc.yaml", "-token-file", "t", "-out", "dir", "-show-values", "-name", "n"},
			check: func(t *testing.T, o *options) {
				if o.spcFile != "spc.yaml" || o.out != "dir" || !o.showValues || o.name != "n" {
					t.Errorf("options %+v", o)
				}
			},
		},
		{
			name: "-- ends the flags",
			args: []string{"-kubeconfig", "kc", "--", "-spc.yaml"},
			check: func(t *testing.T, o *options) {
				if o.spcFile != "-spc.yaml" || o.kubeconfig != "kc" {
					t.Errorf("options %+v", o)
				}
			},
		},
		{
			name: "Vault flags and environment as the server's",
			args: []string{"-token-file", "t", "-vault-mount", "jwt", "-vault-tls-skip-verify=false", "spc.yaml"},
			env:  map[string]string{"VAULT_ADDR": "http://vault.env:8200", "VAULT_NAMESPACE": "team", "VAULT_SKIP_VERIFY": "true", "VAULT_MAX_RETRIES": "7"},
			check: func(t *testing.T, o *options) {
				d := o.defaults
				if d.VaultAddress != "http://vault.env:8200" || d.VaultNamespace != "team" || d.AuthMountPath != "jwt" || d.TLS.SkipTLSVerify || o.vaultOpts.MaxRetries != 7 {
					t.Errorf("defaults %+v, retries %d", d, o.vaultOpts.MaxRetries)
				}
			},
		},
		{
			name: "flag overrides VAULT_ADDR",
			args: []string{"-vault-addr", "http://flag:8200", "-token-file", "t", "spc.yaml"},
			env:  map[string]string{"VAULT_ADDR": "http://vault.env:8200"},
			check: func(t *testing.T, o *options) {
				if o.defaults.VaultAddress != "http://flag:8200" {
					t.Errorf("VaultAddress %q", o.defaults.VaultAddress)
				}
			},
		},
		{
			name: "limit flags as the server's",
			args: []string{"-token-file", "t", "-max-objects", "3", "-max-template-bytes", "100", "spc.yaml"},
			check: func(t *testing.T, o *options) {
				want := config.DefaultLimits
				want.MaxObjects, want.MaxTemplateBytes = 3, 100
				if o.defaults.Limits != want {
					t.Errorf("limits %+v, want %+v", o.defaults.Limits, want)
				}
			},
		},
		{
			name: "pod identity flags",
			args: []string{"-token-file", "t", "-pod-name", "p", "-pod-namespace", "ns", "-pod-uid", "u", "-service-account", "sa", "-revoke=false", "-timeout", "5s", "spc.yaml"},
			check: func(t *testing.T, o *options) {
				if o.podName != "p" || o.podNamespace != "ns" || o.podUID != "u" || o.serviceAccount != "sa" || o.revoke || o.timeout != 5*time.Second {
					t.Errorf("options %+v", o)
				}
			},
		},

		{name: "no file", args: []string{"-token-file", "t"}, errSub: "no SecretProviderClass file"},
		{name: "two files", args: []string{"-token-file", "t", "a.yaml", "b.yaml"}, errSub: `one SecretProviderClass file, please; got ["a.yaml" "b.yaml"]`},
		{name: "no token source", args: []string{"spc.yaml"}, errSub: "no service account token: give -token-file"},
		{name: "SPC and token both from stdin", args: []string{"-token-file", "-", "-"}, errSub: "only one of SPC.yaml, -pod and -token-file can read standard input"},
		{name: "pod and token both from stdin", args: []string{"-token-file", "-", "-pod", "-", "spc.yaml"}, errSub: "only one of"},
		{name: "-volume without -pod", args: []string{"-token-file", "t", "-volume", "v", "spc.yaml"}, errSub: "-volume chooses a volume of the -pod file"},
		{name: "unknown flag", args: []string{"-token-file", "t", "-no-such-flag", "spc.yaml"}, errSub: "no-such-flag"},
		{name: "server-only flag", args: []string{"-token-file", "t", "-endpoint", "/x.sock", "spc.yaml"}, errSub: "endpoint"},
		{name: "bad timeout", args: []string{"-token-file", "t", "-timeout", "0s", "spc.yaml"}, errSub: "-timeout 0s must be positive"},
		{name: "bad fetch concurrency", args: []string{"-token-file", "t", "-fetch-concurrency", "0", "spc.yaml"}, errSub: "-fetch-concurrency 0"},
		{name: "credentials in VAULT_ADDR", args: []string{"-token-file", "t", "spc.yaml"}, env: map[string]string{"VAULT_ADDR": "https://admin:hunter2@vault:8200"}, errSub: "-vault-addr (or $VAULT_ADDR): address 1 of 1 carries user information"},
		{name: "bad allow-list entry", args: []string{"-token-file", "t", "-allowed-vault-addresses", "vault:8200", "spc.yaml"}, errSub: "-allowed-vault-addresses: entry 1"},
		{name: "client cache of 0", args: []string{"-token-file", "t", "-vault-client-cache-size", "0", "spc.yaml"}, errSub: "-vault-client-cache-size 0 must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.errSub != "" {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", o)
				}
				if !strings.Contains(err.Error(), tt.errSub) {
					t.Errorf("error %q does not contain %q", err, tt.errSub)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows a password", err)
				}
				if _, ok := err.(*usageError); !ok {
					t.Errorf("error %T is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	fs := newFlagSet(&options{}, noEnv)
	printUsage(&out, fs)
	usage := out.String()
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(usage, "\n  -"+f.Name+" ") && !strings.Contains(usage, "\n  -"+f.Name+"\n") {
			t.Errorf("usage does not list -%s", f.Name)
		}
	})
	for _, line := range strings.Split(usage, "\n") {
		if len(line) > usageWidth+8 { // the tab counts as one byte
			t.Errorf("usage line longer than %d: %q", usageWidth, line)
		}
	}
}

const testSPC = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app-secrets
  namespace: apps
spec:
  provider: vault
  parameters:
    roleName: wrong-role
    vaultAuthMountPath: jwt
    objects: |
      - objectName: password
        secretPath: secret/data/app
        secretKey: password
`

const testPod = `apiVersion: v1
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

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	exp := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	jwt := makeJWT(t, map[string]any{"aud": []string{"vault"}, "exp": exp.Unix(), "sub": "system:serviceaccount:apps:app"})
	tokenFile := writeFile(t, dir, "token", jwt+"\n")
	spcFile := writeFile(t, dir, "spc.yaml", testSPC)
	podFile := writeFile(t, dir, "pod.yaml", testPod)
	customAud := writeFile(t, dir, "aud.yaml", strings.Replace(testSPC, "    roleName: wrong-role\n", "    roleName: wrong-role\n    audience: custom\n", 1))
	podAud := writeFile(t, dir, "pod-aud.yaml", strings.Replace(testPod, "        roleName: app\n", "        roleName: app\n        audience: from-pod\n", 1))
	otherJWT := makeJWT(t, map[string]any{"aud": "vault", "exp": exp.Unix(), "sub": "system:serviceaccount:team:robot"})
	otherTok := writeFile(t, dir, "other-token", otherJWT)
	noSubJWT := makeJWT(t, map[string]any{"aud": "vault", "exp": exp.Unix()})
	noSubTok := writeFile(t, dir, "nosub-token", noSubJWT)
	noNamespace := writeFile(t, dir, "nons.yaml", strings.Replace(testSPC, "  namespace: apps\n", "", 1))
	tokensFor := func(aud string) string {
		return `{"` + aud + `":{"token":"` + jwt + `","expirationTimestamp":"2031-02-03T04:05:06Z"}}`
	}
	objects := "- objectName: password\n  secretPath: secret/data/app\n  secretKey: password\n"
	tests := []struct {
		name      string
		args      []string
		wantAttrs map[string]string
		wantPath  string
		wantNotes []string
		errSub    string
	}{
		{
			name: "flags give the pod",
			args: []string{"-token-file", tokenFile, "-pod-name", "p-1", "-pod-uid", "u-1", "-service-account", "app", spcFile},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              "p-1",
				"csi.storage.k8s.io/pod.namespace":         "apps", // the class's namespace
				"csi.storage.k8s.io/pod.uid":               "u-1",
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("vault"),
			},
			wantPath: "/var/lib/kubelet/pods/u-1/volumes/kubernetes.io~csi/secrets-store-inline/mount",
		},
		{
			name: "defaults: the service account is the token's",
			args: []string{"-token-file", tokenFile, spcFile},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              DefaultPodName,
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               FakePodUID,
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("vault"),
			},
			wantPath: "/var/lib/kubelet/pods/" + FakePodUID + "/volumes/kubernetes.io~csi/secrets-store-inline/mount",
		},
		{
			name: "a class without namespace: the token's namespace",
			args: []string{"-token-file", otherTok, noNamespace},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              DefaultPodName,
				"csi.storage.k8s.io/pod.namespace":         "team",
				"csi.storage.k8s.io/pod.uid":               FakePodUID,
				"csi.storage.k8s.io/serviceAccount.name":   "robot",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": `{"vault":{"token":"` + otherJWT + `","expirationTimestamp":"2031-02-03T04:05:06Z"}}`,
			},
			wantPath: "/var/lib/kubelet/pods/" + FakePodUID + "/volumes/kubernetes.io~csi/secrets-store-inline/mount",
		},
		{
			name: "no subject, no namespace: default/default",
			args: []string{"-token-file", noSubTok, noNamespace},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              DefaultPodName,
				"csi.storage.k8s.io/pod.namespace":         "default",
				"csi.storage.k8s.io/pod.uid":               FakePodUID,
				"csi.storage.k8s.io/serviceAccount.name":   DefaultServiceAccount,
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": `{"vault":{"token":"` + noSubJWT + `","expirationTimestamp":"2031-02-03T04:05:06Z"}}`,
			},
			wantPath: "/var/lib/kubelet/pods/" + FakePodUID + "/volumes/kubernetes.io~csi/secrets-store-inline/mount",
		},
		{
			name: "a service account other than the token's",
			args: []string{"-token-file", tokenFile, "-service-account", "web", spcFile},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              DefaultPodName,
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               FakePodUID,
				"csi.storage.k8s.io/serviceAccount.name":   "web",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("vault"),
			},
			wantPath:  "/var/lib/kubelet/pods/" + FakePodUID + "/volumes/kubernetes.io~csi/secrets-store-inline/mount",
			wantNotes: []string{"the token from -token-file is for system:serviceaccount:apps:app, but the pod runs as system:serviceaccount:apps:web"},
		},
		{
			name: "the pod's volumeAttributes override the class's parameters",
			args: []string{"-token-file", tokenFile, "-pod", podFile, spcFile},
			wantAttrs: map[string]string{
				"roleName": "app", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              "app-0",
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               "11111111-2222-3333-4444-555555555555",
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("vault"),
			},
			wantPath: "/var/lib/kubelet/pods/11111111-2222-3333-4444-555555555555/volumes/kubernetes.io~csi/secrets/mount",
		},
		{
			name: "flags override the Pod file",
			args: []string{"-token-file", tokenFile, "-pod", podFile, "-pod-name", "other", "-pod-uid", "u-2", spcFile},
			wantAttrs: map[string]string{
				"roleName": "app", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              "other",
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               "u-2",
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("vault"),
			},
			wantPath: "/var/lib/kubelet/pods/u-2/volumes/kubernetes.io~csi/secrets/mount",
		},
		{
			name: "the token goes under the class's audience",
			args: []string{"-token-file", tokenFile, "-pod-namespace", "apps", "-service-account", "app", customAud},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects, "audience": "custom",
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              DefaultPodName,
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               FakePodUID,
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("custom"),
			},
			wantPath:  "/var/lib/kubelet/pods/" + FakePodUID + "/volumes/kubernetes.io~csi/secrets-store-inline/mount",
			wantNotes: []string{`the token from -token-file is for audience ["vault"], but is passed as the token for audience "custom"`},
		},
		{
			name: "an audience in the volumeAttributes wins",
			args: []string{"-token-file", tokenFile, "-pod", podAud, customAud},
			wantAttrs: map[string]string{
				"roleName": "app", "vaultAuthMountPath": "jwt", "objects": objects, "audience": "from-pod",
				"secretProviderClass":                      "app-secrets",
				"csi.storage.k8s.io/pod.name":              "app-0",
				"csi.storage.k8s.io/pod.namespace":         "apps",
				"csi.storage.k8s.io/pod.uid":               "11111111-2222-3333-4444-555555555555",
				"csi.storage.k8s.io/serviceAccount.name":   "app",
				"csi.storage.k8s.io/ephemeral":             "true",
				"csi.storage.k8s.io/serviceAccount.tokens": tokensFor("from-pod"),
			},
			wantPath:  "/var/lib/kubelet/pods/11111111-2222-3333-4444-555555555555/volumes/kubernetes.io~csi/secrets/mount",
			wantNotes: []string{`the token from -token-file is for audience ["vault"], but is passed as the token for audience "from-pod"`},
		},
		{
			name: "kubeconfig: no token attribute, the provider asks the API server",
			args: []string{"-kubeconfig", "/nonexistent", "-pod-name", "p", "-pod-uid", "u", spcFile},
			wantAttrs: map[string]string{
				"roleName": "wrong-role", "vaultAuthMountPath": "jwt", "objects": objects,
				"secretProviderClass":                    "app-secrets",
				"csi.storage.k8s.io/pod.name":            "p",
				"csi.storage.k8s.io/pod.namespace":       "apps",
				"csi.storage.k8s.io/pod.uid":             "u",
				"csi.storage.k8s.io/serviceAccount.name": "default",
				"csi.storage.k8s.io/ephemeral":           "true",
			},
			wantPath:  "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/secrets-store-inline/mount",
			wantNotes: []string{"no -token-file: the provider requests a token for service account apps/default bound to pod p (uid u)"},
		},

		{name: "class in another namespace", args: []string{"-token-file", tokenFile, "-pod-namespace", "other", spcFile}, errSub: `SecretProviderClass app-secrets is in namespace "apps" but the pod is in "other"`},
		{name: "pod names another class", args: []string{"-token-file", tokenFile, "-pod", writeFile(t, dir, "pod-other.yaml", strings.Replace(testPod, "secretProviderClass: app-secrets", "secretProviderClass: nope", 1)), spcFile}, errSub: `no SecretProviderClass named "nope" in it (it has app-secrets); the pod's volume secrets uses class "nope"`},
		{name: "-name and the pod disagree", args: []string{"-token-file", tokenFile, "-pod", podFile, "-name", "other", spcFile}, errSub: `no secrets-store.csi.k8s.io CSI volume uses SecretProviderClass "other"`},
		{name: "missing class file", args: []string{"-token-file", tokenFile, filepath.Join(dir, "nope.yaml")}, errSub: "reading the SecretProviderClass: open "},
		{name: "missing token file", args: []string{"-token-file", filepath.Join(dir, "nope"), spcFile}, errSub: "reading -token-file: open "},
		{name: "empty token file", args: []string{"-token-file", writeFile(t, dir, "empty", "\n"), spcFile}, errSub: "is empty"},
		{name: "token file is no JWT", args: []string{"-token-file", writeFile(t, dir, "kubeconfig", "apiVersion: v1\nkind: Config\n"), spcFile}, errSub: "not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(tt.args, noEnv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			pl, err := prepare(o, nil)
			if tt.errSub != "" {
				if err == nil {
					t.Fatalf("prepared %+v, want an error", pl.request.Attributes)
				}
				if !strings.Contains(err.Error(), tt.errSub) {
					t.Errorf("error %q does not contain %q", err, tt.errSub)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows a password", err)
				}
				if _, ok := err.(*usageError); !ok {
					t.Errorf("error %T is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(pl.request.Attributes, tt.wantAttrs) {
				for k := range mergedKeys(pl.request.Attributes, tt.wantAttrs) {
					if g, w := pl.request.Attributes[k], tt.wantAttrs[k]; g != w {
						t.Errorf("attribute %s = %q, want %q", k, g, w)
					}
				}
			}
			if pl.request.TargetPath != tt.wantPath {
				t.Errorf("target path %q, want %q", pl.request.TargetPath, tt.wantPath)
			}
			// The wire encoding is the driver's: attributes as a JSON object
			// of strings, secrets null, permission 420 (0644).
			req, err := pl.request.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if req.Secrets != "null" || req.Permission != "420" {
				t.Errorf("secrets %q permission %q, want null and 420", req.Secrets, req.Permission)
			}
			if _, err := config.Parse(req.Attributes, req.Secrets, req.Permission, config.Defaults{VaultAddress: "http://v:8200", AuthMountPath: "kubernetes"}); err != nil {
				t.Errorf("the provider's parser refuses the request: %v", err)
			}
			notes := strings.Join(pl.notes, "\n")
			for _, n := range tt.wantNotes {
				if !strings.Contains(notes, n) {
					t.Errorf("notes %q lack %q", notes, n)
				}
			}
			if len(tt.wantNotes) == 0 && len(pl.notes) > 0 {
				t.Errorf("unexpected notes %q", pl.notes)
			}
			if strings.Contains(notes, jwt) || strings.Contains(notes, strings.Split(jwt, ".")[1]) {
				t.Errorf("notes quote the token")
			}
		})
	}
}

func mergedKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func TestInspectJWT(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := identity{name: "p", namespace: "apps", serviceAccount: "app"}
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name      string
		tok       string
		errSub    string
		wantExp   time.Time
		wantNotes []string
	}{
		{name: "good token", tok: makeJWT(t, map[string]any{"aud": []string{"vault"}, "exp": now.Add(time.Hour).Unix(), "sub": "system:serviceaccount:apps:app"}), wantExp: now.Add(time.Hour)},
		{name: "aud as a string", tok: makeJWT(t, map[string]any{"aud": "vault", "exp": now.Add(time.Hour).Unix()}), wantExp: now.Add(time.Hour)},
		{name: "no exp: an hour from now", tok: makeJWT(t, map[string]any{"aud": "vault"}), wantExp: now.Add(time.Hour)},
		{name: "expired", tok: makeJWT(t, map[string]any{"exp": now.Add(-time.Minute).Unix()}), wantExp: now.Add(-time.Minute), wantNotes: []string{"expired at 2029-12-31T23:59:00Z: Vault will refuse it"}},
		{name: "other audience", tok: makeJWT(t, map[string]any{"aud": []string{"https://kubernetes.default.svc"}}), wantExp: now.Add(time.Hour), wantNotes: []string{`is for audience ["https://kubernetes.default.svc"], but is passed as the token for audience "vault"`}},
		{name: "other service account", tok: makeJWT(t, map[string]any{"sub": "system:serviceaccount:apps:other"}), wantExp: now.Add(time.Hour), wantNotes: []string{"is for system:serviceaccount:apps:other, but the pod runs as system:serviceaccount:apps:app"}},
		{name: "a subject that is no service account is not judged", tok: makeJWT(t, map[string]any{"sub": "user@example.com"}), wantExp: now.Add(time.Hour)},

		{name: "two parts", tok: "aGVsbG8.d29ybGQ", errSub: "got 2 part(s)"},
		{name: "a password", tok: "hunter2", errSub: "got 1 part(s)"},
		{name: "header not base64url", tok: "!!!." + enc([]byte(`{}`)) + ".sig", errSub: "header is not base64url"},
		{name: "payload not base64url", tok: enc([]byte(`{}`)) + ".s3cr3t!!.sig", errSub: "payload is not base64url"},
		{name: "payload not JSON", tok: enc([]byte(`{}`)) + "." + enc([]byte("s3cr3t")) + ".sig", errSub: "payload is not a JSON object of claims"},
		{name: "aud not strings", tok: makeJWT(t, map[string]any{"aud": 5}), errSub: "payload is not a JSON object of claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := inspectJWT(tt.tok)
			if tt.errSub != "" {
				if err == nil {
					t.Fatalf("claims %+v, want an error", c)
				}
				if !strings.Contains(err.Error(), tt.errSub) {
					t.Errorf("error %q does not contain %q", err, tt.errSub)
				}
				for _, part := range strings.Split(tt.tok, ".") {
					if len(part) > 3 && strings.Contains(err.Error(), part) {
						t.Errorf("error %q quotes the token", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.expiry(now); !got.Equal(tt.wantExp) {
				t.Errorf("expiry %v, want %v", got, tt.wantExp)
			}
			notes := c.check("vault", pod, now)
			if len(notes) != len(tt.wantNotes) {
				t.Fatalf("notes %q, want %q", notes, tt.wantNotes)
			}
			for i := range notes {
				if !strings.Contains(notes[i], tt.wantNotes[i]) {
					t.Errorf("note %q does not contain %q", notes[i], tt.wantNotes[i])
				}
			}
		})
	}
}

func TestTokenServiceAccount(t *testing.T) {
	tests := []struct {
		sub, namespace, name string
		ok                   bool
	}{
		{"system:serviceaccount:apps:app", "apps", "app", true},
		{"system:serviceaccount:apps", "", "", false},
		{"system:serviceaccount::app", "", "", false},
		{"system:serviceaccount:apps:", "", "", false},
		{"system:serviceaccount:a:b:c", "", "", false},
		{"user@example.com", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		ns, name, ok := (&jwtClaims{Sub: tt.sub}).serviceAccount()
		if ns != tt.namespace || name != tt.name || ok != tt.ok {
			t.Errorf("serviceAccount(%q) = %q, %q, %v; want %q, %q, %v", tt.sub, ns, name, ok, tt.namespace, tt.name, tt.ok)
		}
	}
}

func TestCheckOutDir(t *testing.T) {
	base := t.TempDir()
	nonEmpty := filepath.Join(base, "work")
	earlier := filepath.Join(base, "earlier")
	for _, d := range []string{nonEmpty, earlier, filepath.Join(base, "empty")} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, nonEmpty, "main.go", "package main")
	if err := os.Symlink("..2030_01_01", filepath.Join(earlier, dataLink)); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, base, "file", "x")
	tests := []struct {
		name   string
		dir    string
		errSub string
	}{
		{name: "new directory", dir: filepath.Join(base, "new", "deeper")},
		{name: "empty directory", dir: filepath.Join(base, "empty")},
		{name: "an earlier mount", dir: earlier},
		{name: "a directory with other files", dir: nonEmpty, errSub: "is neither empty nor an earlier mount"},
		{name: "a file", dir: file, errSub: "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkOutDir(tt.dir)
			switch {
			case tt.errSub == "" && err != nil:
				t.Errorf("checkOutDir: %v", err)
			case tt.errSub != "" && (err == nil || !strings.Contains(err.Error(), tt.errSub)):
				t.Errorf("checkOutDir error %v, want one containing %q", err, tt.errSub)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(nonEmpty, "main.go")); err != nil {
		t.Errorf("checking touched the directory: %v", err)
	}
}

func TestReport(t *testing.T) {
	pl := &plan{pod: identity{name: "app-0", namespace: "apps", serviceAccount: "app"}, volume: "secrets"}
	pl.spc, _ = spcfile.SecretProviderClass([]byte(testSPC), "")
	cfg := &config.Config{VaultAddress: "http://127.0.0.1:8200", AuthMountPath: "jwt", RoleName: "app"}
	resp := &pb.MountResponse{
		Files: []*pb.File{
			{Path: "password", Mode: 0o600, Contents: []byte("s3cr3t-pw")},
			{Path: "tls/tls.key", Mode: 0o644, Contents: []byte("line1\nline2\x1b[31m")},
		},
		ObjectVersion: []*pb.ObjectVersion{{Id: "password", Version: "v-pw"}, {Id: "tls/tls.key", Version: "v-key"}},
	}
	tests := []struct {
		name    string
		o       options
		want    []string
		notWant []string
	}{
		{
			name:    "values hidden",
			want:    []string{`as Vault role "app" (http://127.0.0.1:8200 at auth/jwt)`, "pod apps/app-0", "PATH", "password     0600  9     v-pw     <hidden, 9 bytes>", "tls/tls.key  0644  16    v-key    <hidden, 16 bytes>"},
			notWant: []string{"s3cr3t", "line1", "Wrote"},
		},
		{
			name:    "values shown, quoted",
			o:       options{showValues: true},
			want:    []string{`"s3cr3t-pw"`, `"line1\nline2\x1b[31m"`},
			notWant: []string{"hidden", "\x1b"},
		},
		{
			name: "written",
			o:    options{out: "/tmp/out"},
			want: []string{"Wrote 2 files to /tmp/out", "<hidden, 9 bytes>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			report(&b, pl, cfg, resp, &tt.o)
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output holds %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestSecretObjectWarnings(t *testing.T) {
	spc, err := spcfile.SecretProviderClass([]byte(testSPC+`  secretObjects:
  - secretName: app
    type: Opaque
    data:
    - {objectName: password, key: password}
    - {objectName: username, key: username}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{name: "all present", files: []string{"password", "username"}},
		{name: "one missing", files: []string{"password"}, want: []string{`spec.secretObjects[0] (Secret "app") data[1]: objectName "username" is not a mounted file`}},
		{name: "none", want: []string{`objectName "password"`, `objectName "username"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []*pb.File
			for _, f := range tt.files {
				files = append(files, &pb.File{Path: f})
			}
			got := secretObjectWarnings(spc, files)
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("warning %q does not contain %q", got[i], tt.want[i])
				}
			}
		})
	}
}

// newVault is a Vault with jwt auth for role "app" (this JWT only), a KV
// v2 secret at secret/data/app and database credentials at
// database/creds/app (the first is v-app-1); the role's policy denies
// secret/data/other.
func newVault(t *testing.T, jwt string) *vaulttest.Server {
	v := vaulttest.New(t)
	v.EnableAuth("jwt").Role("app", vaulttest.Role{JWTs: []string{jwt}, TTL: time.Hour})
	v.PutKV2("secret/data/app", map[string]any{"password": "s3cr3t-pw", "username": "app"})
	v.Deny("secret/data/other")
	return v
}

// fakeVaultURL stands for the URL of each subtest's fake Vault in
// arguments and environment.
const fakeVaultURL = "<fake Vault URL>"

// fakeKube is an API server answering TokenRequests for apps/app with jwt,
// and refusing any other service account with 403. It records the requests.
type fakeKube struct {
	*httptest.Server
	jwt string

	mu   sync.Mutex
	reqs []tokenRequest
}

type tokenRequest struct {
	Path string
	Spec struct {
		Audiences         []string `json:"audiences"`
		ExpirationSeconds int64    `json:"expirationSeconds"`
		BoundObjectRef    struct {
			Kind, Name, UID string
		} `json:"boundObjectRef"`
	} `json:"spec"`
}

func newFakeKube(t *testing.T, jwt string) *fakeKube {
	fk := &fakeKube{jwt: jwt}
	fk.Server = httptest.NewTLSServer(fk) // client-go sends credentials over TLS only
	t.Cleanup(fk.Close)
	return fk
}

func (fk *fakeKube) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var tr tokenRequest
	_ = json.NewDecoder(r.Body).Decode(&tr)
	tr.Path = r.Method + " " + r.URL.Path
	fk.mu.Lock()
	fk.reqs = append(fk.reqs, tr)
	fk.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer kube-admin" || r.URL.Path != "/api/v1/namespaces/apps/serviceaccounts/app/token" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"serviceaccounts \"x\" is forbidden"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
		"status": map[string]any{"token": fk.jwt, "expirationTimestamp": time.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339)},
	})
}

func (fk *fakeKube) requests() []tokenRequest {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	return append([]tokenRequest(nil), fk.reqs...)
}

func kubeconfig(t *testing.T, dir string, server *httptest.Server) string {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})
	return writeFile(t, dir, "kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+server.URL+`", certificate-authority-data: `+base64.StdEncoding.EncodeToString(ca)+`}}]
users: [{name: u, user: {token: kube-admin}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`)
}

func runMain(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = Main(ctx, args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestMountAgainstFakeVault(t *testing.T) {
	dir := t.TempDir()
	jwt := makeJWT(t, map[string]any{"aud": []string{"vault"}, "exp": time.Now().Add(time.Hour).Unix(), "sub": "system:serviceaccount:apps:app"})
	tokenFile := writeFile(t, dir, "token", jwt)
	spc := func(name, params string) string {
		return writeFile(t, dir, name, "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: app, namespace: apps}\nspec:\n  provider: vault\n  parameters:\n"+indent(params, "    "))
	}
	good := spc("good.yaml", `roleName: app
vaultAuthMountPath: jwt
objects: |
  - objectName: password
    secretPath: secret/data/app
    secretKey: password
    filePermission: 0600
  - objectName: db/username
    secretPath: database/creds/app
    secretKey: username
`)
	kvOnly := spc("kv.yaml", "roleName: app\nvaultAuthMountPath: jwt\nobjects: |\n  - {objectName: user, secretPath: secret/data/app, secretKey: username}\n")
	wrongRole := spc("wrong-role.yaml", "roleName: nope\nvaultAuthMountPath: jwt\nobjects: |\n  - {objectName: p, secretPath: secret/data/app, secretKey: password}\n")
	denied := spc("denied.yaml", "roleName: app\nvaultAuthMountPath: jwt\nobjects: |\n  - {objectName: p, secretPath: secret/data/other, secretKey: password}\n")
	invalid := spc("invalid.yaml", "roleName: app\nvaultAuthMountPath: jwt\nobjects: |\n  - {objectName: p, secretPath: secret/data/app, secretkey: password}\n")
	noRole := spc("no-role.yaml", "vaultAuthMountPath: jwt\nobjects: |\n  - {objectName: p, secretPath: secret/data/app}\n")
	notVault := writeFile(t, dir, "azure.yaml", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: app}\nspec: {provider: azure, parameters: {roleName: app}}\n")
	fk := newFakeKube(t, jwt)
	kc := kubeconfig(t, dir, fk.Server)
	env := map[string]string{"VAULT_ADDR": fakeVaultURL}
	base := []string{"-token-file", tokenFile, "-pod-namespace", "apps", "-service-account", "app"}

	tests := []struct {
		name          string
		args          []string
		env           map[string]string
		wantCode      int
		wantOut       []string
		wantErr       []string
		notWant       []string // in stdout or stderr; nor may any Vault token be
		wantCalls     []string // Vault requests, in order; nil: not checked
		wantFiles     map[string]string
		wantFileModes map[string]os.FileMode
		outDir        string
		wantKube      []string // TokenRequests: "METHOD path audiences boundKind/name/uid"; nil: none
	}{
		{
			name:      "print, values hidden",
			args:      append(base, good),
			wantOut:   []string{"PATH", "password     0600  9", "<hidden, 9 bytes>", "db/username  0644  7", "<hidden, 7 bytes>", `as Vault role "app"`},
			wantErr:   []string{"note: the versions are made with a random key"},
			notWant:   []string{"s3cr3t-pw", "v-app-1", jwt},
			wantCalls: []string{"POST auth/jwt/login", "GET database/creds/app", "GET secret/data/app", "POST auth/token/revoke-self"},
		},
		{
			name:    "print, values shown",
			args:    append(base, "-show-values", good),
			wantOut: []string{`"s3cr3t-pw"`, `"v-app-1"`},
			notWant: []string{"hidden", jwt},
		},
		{
			name:          "write with the driver's writer; leases revoked",
			args:          append(base, good),
			outDir:        "out",
			wantOut:       []string{"Wrote 2 files to", "<hidden, 9 bytes>"},
			wantErr:       []string{"the Vault token was revoked, and with it the leases it created"},
			notWant:       []string{"s3cr3t-pw", jwt},
			wantFiles:     map[string]string{"password": "s3cr3t-pw", "db/username": "v-app-1"},
			wantFileModes: map[string]os.FileMode{"password": 0o600, "db/username": 0o644},
		},
		{
			name:      "-revoke=false keeps the token",
			args:      append(base, "-revoke=false", "-hmac-key-file", writeFile(t, dir, "key", strings.Repeat("k", 32)), kvOnly),
			outDir:    "kept",
			wantFiles: map[string]string{"user": "app"},
			notWant:   []string{"revoked", "random key"},
			wantCalls: []string{"POST auth/jwt/login", "GET secret/data/app"},
		},
		{
			name:      "VAULT_ADDR from the environment, the flag wins",
			args:      append(base, "-vault-addr", fakeVaultURL, kvOnly),
			env:       map[string]string{"VAULT_ADDR": closedAddr(t)},
			wantOut:   []string{"user  0644  3"},
			wantCalls: []string{"POST auth/jwt/login", "GET secret/data/app", "POST auth/token/revoke-self"},
		},
		{
			name:      "-kubeconfig: the provider requests a pod-bound token",
			args:      []string{"-kubeconfig", kc, "-pod-namespace", "apps", "-service-account", "app", "-pod-name", "app-0", "-pod-uid", "uid-1", kvOnly},
			wantOut:   []string{"user  0644  3"},
			wantErr:   []string{"note: no -token-file: the provider requests a token for service account apps/app bound to pod app-0 (uid uid-1)"},
			notWant:   []string{jwt, "kube-admin"},
			wantCalls: []string{"POST auth/jwt/login", "GET secret/data/app", "POST auth/token/revoke-self"},
			wantKube:  []string{"POST /api/v1/namespaces/apps/serviceaccounts/app/token [] Pod/app-0/uid-1 900s"},
		},
		{
			name:      "-kubeconfig: a refused TokenRequest is FailedPrecondition",
			args:      []string{"-kubeconfig", kc, "-pod-namespace", "apps", "-service-account", "other", kvOnly},
			wantCode:  ExitFailed,
			wantErr:   []string{"FailedPrecondition: requesting a token for service account apps/other (the provider's service account needs RBAC `create` on serviceaccounts/token"},
			wantCalls: []string{},
			wantKube:  []string{"POST /api/v1/namespaces/apps/serviceaccounts/other/token [] Pod/mount-check/" + FakePodUID + " 900s"},
		},
		{
			name:      "-token-file wins over -kubeconfig",
			args:      append(base, "-kubeconfig", kc, kvOnly),
			wantErr:   []string{"note: -kubeconfig is not used"},
			wantCalls: []string{"POST auth/jwt/login", "GET secret/data/app", "POST auth/token/revoke-self"},
		},
		{
			name:      "wrong role: PermissionDenied",
			args:      append(base, wrongRole),
			wantCode:  ExitFailed,
			wantErr:   []string{`PermissionDenied: Vault refused login as role "nope" at auth/jwt`, `Vault answered 400: role "nope" could not be found`},
			notWant:   []string{jwt, "PATH"},
			wantCalls: []string{"POST auth/jwt/login"},
		},
		{
			name:      "policy denies a path: PermissionDenied, the token still revoked",
			args:      append(base, denied),
			wantCode:  ExitFailed,
			wantErr:   []string{`PermissionDenied: object "p": `, `check that the policies of Vault role "app" allow this path`},
			wantCalls: []string{"POST auth/jwt/login", "GET secret/data/other", "POST auth/token/revoke-self"},
		},
		{
			name:      "invalid class: InvalidArgument, Vault untouched",
			args:      append(base, invalid),
			wantCode:  ExitFailed,
			wantErr:   []string{"InvalidArgument: ", "secretkey"},
			wantCalls: []string{},
		},
		{
			name:      "no roleName: InvalidArgument, Vault untouched",
			args:      append(base, noRole),
			wantCode:  ExitFailed,
			wantErr:   []string{`InvalidArgument: parameter "roleName" is required`},
			wantCalls: []string{},
		},
		{
			name:      "Vault unreachable: Unavailable",
			args:      append(base, "-vault-addr", closedAddr(t), "-vault-max-retries", "0", kvOnly),
			wantCode:  ExitFailed,
			wantErr:   []string{"Unavailable: "},
			wantCalls: []string{},
		},
		{
			name:      "another provider's class: usage error",
			args:      append(base, notVault),
			wantCode:  ExitUsage,
			wantErr:   []string{`spec.provider is "azure"`, "provider mount -h"},
			wantCalls: []string{},
		},
		{
			name:      "token file holding something else: refused before Vault",
			args:      []string{"-token-file", writeFile(t, dir, "not-a-jwt", "s3cr3t-pw"), good},
			wantCode:  ExitUsage,
			wantErr:   []string{"not a JWT"},
			notWant:   []string{"s3cr3t-pw"},
			wantCalls: []string{},
		},
		{
			name:      "a bad -hmac-key-file",
			args:      append(base, "-hmac-key-file", writeFile(t, dir, "short-key", "abc"), good),
			wantCode:  ExitUsage,
			wantErr:   []string{"-hmac-key-file"},
			wantCalls: []string{},
		},
		{
			name:     "-h",
			args:     []string{"-h"},
			wantCode: ExitOK,
			wantOut:  []string{"Usage: provider mount [flags] SPC.yaml", "-token-file FILE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVault(t, jwt)
			fill := func(s string) string { return strings.ReplaceAll(s, fakeVaultURL, v.URL()) }
			var args []string
			for _, a := range tt.args {
				args = append(args, fill(a))
			}
			var out string
			if tt.outDir != "" {
				out = filepath.Join(t.TempDir(), tt.outDir)
				args = append([]string{"-out", out}, args...)
			}
			e := map[string]string{}
			if tt.env == nil {
				tt.env = env
			}
			for k, val := range tt.env {
				e[k] = fill(val)
			}
			kubeBefore := len(fk.requests())
			code, stdout, stderr := runMain(t, args, e)
			t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
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
			if tt.wantCalls != nil {
				var calls []string
				for _, c := range v.Calls() {
					calls = append(calls, c.String())
				}
				// The two reads run concurrently: compare as sets
				// between login and revocation.
				if strings.Join(sortedMiddle(calls), ",") != strings.Join(sortedMiddle(tt.wantCalls), ",") {
					t.Errorf("Vault saw %q, want %q", calls, tt.wantCalls)
				}
			}
			// Unless told to keep it, the command revokes its token, and
			// Vault with it the leases the token created.
			keep := slices.Contains(args, "-revoke=false")
			for _, tok := range v.Logins() {
				if strings.Contains(stdout+stderr, tok.Value) {
					t.Errorf("output holds the Vault token")
				}
				if tok.Live != keep {
					t.Errorf("Vault token live %v after the command, want %v", tok.Live, keep)
				}
			}
			for _, l := range v.Leases() {
				if l.Live != keep {
					t.Errorf("lease %s live %v after the command, want %v", l.ID, l.Live, keep)
				}
			}
			var kube []string
			for _, r := range fk.requests()[kubeBefore:] {
				b := r.Spec.BoundObjectRef
				kube = append(kube, fmt.Sprintf("%s %v %s/%s/%s %ds", r.Path, r.Spec.Audiences, b.Kind, b.Name, b.UID, r.Spec.ExpirationSeconds))
			}
			if strings.Join(kube, "\n") != strings.Join(tt.wantKube, "\n") {
				t.Errorf("TokenRequests %q, want %q", kube, tt.wantKube)
			}
			for name, want := range tt.wantFiles {
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if string(b) != want {
					t.Errorf("%s holds %q, want %q", name, b, want)
				}
			}
			for name, want := range tt.wantFileModes {
				fi, err := os.Stat(filepath.Join(out, name))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s mode %o, want %o", name, fi.Mode().Perm(), want)
				}
			}
			if tt.outDir != "" && len(tt.wantFiles) > 0 {
				if fi, err := os.Lstat(filepath.Join(out, dataLink)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("%s is not the atomic writer's link: %v", dataLink, err)
				}
			}
		})
	}
}

// sortedMiddle sorts calls except the first and the last.
func sortedMiddle(calls []string) []string {
	c := append([]string(nil), calls...)
	if len(c) > 2 {
		slices.Sort(c[1 : len(c)-1])
	}
	return c
}

func indent(s, pre string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "")
}
