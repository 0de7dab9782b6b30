package spcfile

import (
	"maps"
	"strings"
	"testing"
)

const spcApp = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app
  namespace: apps
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: password
        secretPath: secret/data/app
        secretKey: password
`

const spcOther = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: other
spec:
  provider: vault
  parameters:
    roleName: other
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  unknownToUs: [1, 2]
`

func TestSecretProviderClass(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		pick     string
		wantName string
		wantRole string
		errSub   []string
	}{
		{name: "the only class", file: spcApp, wantName: "app", wantRole: "app"},
		{name: "other kinds are skipped", file: configMap + "---\n" + spcApp, wantName: "app", wantRole: "app"},
		{name: "-name picks one of several", file: spcApp + "---\n" + spcOther, pick: "other", wantName: "other", wantRole: "other"},
		{name: "-name matching the only class", file: spcApp, pick: "app", wantName: "app", wantRole: "app"},
		{name: "empty documents and comments", file: "---\n# nothing here\n---\n" + spcApp + "---\n", wantName: "app", wantRole: "app"},
		{name: "JSON", file: `{"apiVersion":"secrets-store.csi.x-k8s.io/v1","kind":"SecretProviderClass","metadata":{"name":"j"},"spec":{"provider":"vault","parameters":{"roleName":"r"}}}`, wantName: "j", wantRole: "r"},
		{name: "kubectl get -o yaml List", file: "apiVersion: v1\nkind: List\nitems:\n- " + indent(spcOther, "  ")[2:] + "- " + indent(spcApp, "  ")[2:], pick: "app", wantName: "app", wantRole: "app"},
		{name: "deprecated v1alpha1", file: strings.Replace(spcApp, "/v1\n", "/v1alpha1\n", 1), wantName: "app", wantRole: "app"},

		{name: "several without -name", file: spcApp + "---\n" + spcOther, errSub: []string{"holds 2 SecretProviderClasses (app, other): choose one with -name"}},
		{name: "-name not found", file: spcApp + "---\n" + spcOther, pick: "nope", errSub: []string{`no SecretProviderClass named "nope"`, "app, other"}},
		{name: "same name twice", file: spcApp + "---\n" + spcApp, pick: "app", errSub: []string{`2 SecretProviderClasses named "app"`, "document 1, document 2"}},
		{name: "no class", file: configMap, errSub: []string{"no SecretProviderClass in it", "ConfigMap settings (document 1)"}},
		{name: "empty file", file: "", errSub: []string{"no SecretProviderClass in it (no objects at all)"}},
		{name: "not an object", file: "- a\n- b\n", errSub: []string{"document 1 is not an object"}},
		{name: "YAML syntax error", file: spcApp + "---\nkind: [\n", errSub: []string{"document 2"}},
		{name: "wrong apiVersion", file: strings.Replace(spcApp, "secrets-store.csi.x-k8s.io/v1", "secrets-store.csi.x-k8s.io/v2", 1), errSub: []string{`apiVersion is "secrets-store.csi.x-k8s.io/v2", want secrets-store.csi.x-k8s.io/v1`}},
		{name: "unknown field", file: strings.Replace(spcApp, "  parameters:", "  parameter:", 1), errSub: []string{`unknown field "spec.parameter"`, "SecretProviderClass app (document 1)"}},
		{name: "field in the wrong case", file: strings.Replace(spcApp, "  provider: vault", "  Provider: vault", 1), errSub: []string{`unknown field "spec.Provider"`}},
		{name: "duplicate field", file: strings.Replace(spcApp, "  provider: vault", "  provider: vault\n  provider: vault", 1), errSub: []string{"provider"}},
		{name: "unquoted boolean parameter", file: strings.Replace(spcApp, "    roleName: app", "    roleName: app\n    vaultSkipTLSVerify: true", 1), errSub: []string{"every value in spec.parameters is a string"}},
		{name: "other provider", file: strings.Replace(spcApp, "provider: vault", "provider: azure", 1), errSub: []string{`spec.provider is "azure"`, `"azure" provider`}},
		{name: "no provider", file: strings.Replace(spcApp, "  provider: vault\n", "", 1), errSub: []string{"spec.provider is not set"}},
		{name: "no parameters", file: "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: p}\nspec: {provider: vault}\n", errSub: []string{"spec.parameters is empty"}},
		{name: "no name", file: "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nspec: {provider: vault, parameters: {roleName: r}}\n", errSub: []string{"metadata.name is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spc, err := SecretProviderClass([]byte(tt.file), tt.pick)
			if len(tt.errSub) > 0 {
				if err == nil {
					t.Fatalf("got class %s, want an error", spc.Name)
				}
				for _, s := range tt.errSub {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if spc.Name != tt.wantName || spc.Spec.Parameters["roleName"] != tt.wantRole {
				t.Errorf("got class %s with roleName %q, want %s with %q", spc.Name, spc.Spec.Parameters["roleName"], tt.wantName, tt.wantRole)
			}
		})
	}
}

func TestSecretProviderClassKeepsObjectsVerbatim(t *testing.T) {
	spc, err := SecretProviderClass([]byte(spcApp), "")
	if err != nil {
		t.Fatal(err)
	}
	want := "- objectName: password\n  secretPath: secret/data/app\n  secretKey: password\n"
	if got := spc.Spec.Parameters["objects"]; got != want {
		t.Errorf("objects = %q, want %q", got, want)
	}
	if spc.Namespace != "apps" {
		t.Errorf("namespace = %q", spc.Namespace)
	}
}

const podApp = `apiVersion: v1
kind: Pod
metadata:
  name: app-0
  namespace: apps
  uid: 11111111-2222-3333-4444-555555555555
spec:
  serviceAccountName: app
  containers:
  - name: app
    image: busybox
    volumeMounts:
    - {name: secrets, mountPath: /mnt/secrets, readOnly: true}
  volumes:
  - name: cache
    emptyDir: {}
  - name: secrets
    csi:
      driver: secrets-store.csi.k8s.io
      readOnly: true
      volumeAttributes:
        secretProviderClass: app
        roleName: app-override
status:
  phase: Running
  someFieldFromANewerKubernetes: 1
`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccount: web-legacy
      containers: [{name: web, image: nginx}]
      volumes:
      - name: a
        csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: class-a}}
      - name: b
        csi:
          driver: secrets-store.csi.k8s.io
          readOnly: true
          volumeAttributes: {secretProviderClass: class-b}
          nodePublishSecretRef: {name: creds}
`

const cronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: batch}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
          volumes:
          - name: s
            csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: nightly}}
`

func TestFindPod(t *testing.T) {
	tests := []struct {
		name          string
		file          string
		volume, class string
		want          Pod
		errSub        []string
	}{
		{
			name: "a Pod's only secrets-store volume",
			file: podApp,
			want: Pod{Kind: "Pod", Name: "app-0", Namespace: "apps", UID: "11111111-2222-3333-4444-555555555555", ServiceAccountName: "app",
				Volume: "secrets", VolumeAttributes: map[string]string{"secretProviderClass": "app", "roleName": "app-override"}},
		},
		{
			name: "the Pod in a file with its class",
			file: spcApp + "---\n" + podApp, volume: "secrets", class: "app",
			want: Pod{Kind: "Pod", Name: "app-0", Namespace: "apps", UID: "11111111-2222-3333-4444-555555555555", ServiceAccountName: "app",
				Volume: "secrets", VolumeAttributes: map[string]string{"secretProviderClass": "app", "roleName": "app-override"}},
		},
		{
			name: "no serviceAccountName is default",
			file: strings.Replace(podApp, "  serviceAccountName: app\n", "", 1),
			want: Pod{Kind: "Pod", Name: "app-0", Namespace: "apps", UID: "11111111-2222-3333-4444-555555555555", ServiceAccountName: "default",
				Volume: "secrets", VolumeAttributes: map[string]string{"secretProviderClass": "app", "roleName": "app-override"}},
		},
		{
			name: "a Deployment's template, volume by name",
			file: deployment, volume: "b",
			want: Pod{Kind: "Deployment", Name: "web", Namespace: "shop", ServiceAccountName: "web-legacy",
				Volume: "b", VolumeAttributes: map[string]string{"secretProviderClass": "class-b"}, NodePublishSecretRef: "creds"},
		},
		{
			name: "a Deployment's template, volume by class",
			file: deployment, class: "class-a",
			want: Pod{Kind: "Deployment", Name: "web", Namespace: "shop", ServiceAccountName: "web-legacy",
				Volume: "a", VolumeAttributes: map[string]string{"secretProviderClass": "class-a"}},
		},
		{
			name: "a CronJob's job template",
			file: cronJob,
			want: Pod{Kind: "CronJob", Name: "nightly", Namespace: "batch", ServiceAccountName: "default",
				Volume: "s", VolumeAttributes: map[string]string{"secretProviderClass": "nightly"}},
		},
		{
			name: "one of several workloads by class",
			file: podApp + "---\n" + deployment + "---\n" + cronJob, class: "nightly",
			want: Pod{Kind: "CronJob", Name: "nightly", Namespace: "batch", ServiceAccountName: "default",
				Volume: "s", VolumeAttributes: map[string]string{"secretProviderClass": "nightly"}},
		},

		{name: "several volumes", file: deployment, errSub: []string{"2 secrets-store CSI volumes match, choose one with -volume", "Deployment web volume a", "volume b"}},
		{name: "several workloads", file: podApp + "---\n" + cronJob, errSub: []string{"2 secrets-store CSI volumes match"}},
		{name: "no such volume", file: podApp, volume: "nope", errSub: []string{`no volume named "nope"`, "Pod app-0 volume secrets"}},
		{name: "volume is not the driver's", file: podApp, volume: "cache", errSub: []string{`volume "cache" of Pod app-0 (document 1) is not a secrets-store.csi.k8s.io CSI volume`}},
		{name: "class not used", file: podApp, class: "other", errSub: []string{`no secrets-store.csi.k8s.io CSI volume uses SecretProviderClass "other"`, `(class "app")`}},
		{name: "no CSI volume", file: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n", errSub: []string{"no secrets-store.csi.k8s.io CSI volume in Pod p"}},
		{name: "another driver's CSI volume", file: strings.Replace(podApp, "driver: secrets-store.csi.k8s.io", "driver: other.csi.k8s.io", 1), errSub: []string{"no secrets-store.csi.k8s.io CSI volume"}},
		{name: "no pod", file: spcApp, errSub: []string{"no Pod or workload", "SecretProviderClass app (document 1)"}},
		{name: "not read-only", file: strings.Replace(podApp, "      readOnly: true\n", "", 1), errSub: []string{"must set readOnly: true", "Readonly is not true in request"}},
		{name: "read-only false", file: strings.Replace(podApp, "      readOnly: true\n", "      readOnly: false\n", 1), errSub: []string{"must set readOnly: true"}},
		{name: "no class attribute", file: strings.Replace(podApp, "        secretProviderClass: app\n", "", 1), errSub: []string{"has no volumeAttributes.secretProviderClass"}},
		{name: "malformed volume", file: strings.Replace(podApp, "        roleName: app-override", "        roleName: [1]", 1), errSub: []string{"Pod app-0 (document 1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FindPod([]byte(tt.file), tt.volume, tt.class)
			if len(tt.errSub) > 0 {
				if err == nil {
					t.Fatalf("got %+v, want an error", p)
				}
				for _, s := range tt.errSub {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(p.VolumeAttributes, tt.want.VolumeAttributes) {
				t.Errorf("volume attributes %v, want %v", p.VolumeAttributes, tt.want.VolumeAttributes)
			}
			type fields struct{ Kind, Name, Namespace, UID, ServiceAccountName, Volume, NodePublishSecretRef string }
			got := fields{p.Kind, p.Name, p.Namespace, p.UID, p.ServiceAccountName, p.Volume, p.NodePublishSecretRef}
			want := fields{tt.want.Kind, tt.want.Name, tt.want.Namespace, tt.want.UID, tt.want.ServiceAccountName, tt.want.Volume, tt.want.NodePublishSecretRef}
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if p.SecretProviderClass() != tt.want.VolumeAttributes["secretProviderClass"] {
				t.Errorf("SecretProviderClass() = %q", p.SecretProviderClass())
			}
		})
	}
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
