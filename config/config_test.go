package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// attrs builds the attributes JSON the driver sends, with a valid baseline
// (role and one object) that each case overrides. A value of "\x00unset"
// removes the key.
func attrs(t *testing.T, over map[string]string) string {
	t.Helper()
	m := map[string]string{
		ParamRoleName:          "app",
		ParamObjects:           "- objectName: a\n  secretPath: secret/data/app\n",
		AttrPodName:            "app-0",
		AttrPodNamespace:       "apps",
		AttrPodUID:             "uid-1",
		AttrServiceAccountName: "app-sa",
	}
	for k, v := range over {
		if v == unset {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const unset = "\x00unset"

var testDefaults = Defaults{
	VaultAddress:   "https://vault.default:8200",
	VaultNamespace: "default-ns",
	AuthMountPath:  "kubernetes",
	TLS: TLS{
		CACert:     "/etc/default/ca.pem",
		ServerName: "default.server",
	},
}

func TestParseInputs(t *testing.T) {
	tests := []struct {
		name        string
		attributes  string
		secrets     string
		permission  string
		wantErr     string // substring; empty means success
		wantMode    os.FileMode
		wantObjects int
	}{
		{name: "secrets null", secrets: "null", permission: "420", wantMode: 0o644, wantObjects: 1},
		{name: "secrets empty", secrets: "", permission: "420", wantMode: 0o644, wantObjects: 1},
		{name: "secrets blank", secrets: "  \n", permission: "420", wantMode: 0o644, wantObjects: 1},
		{name: "secrets object", secrets: `{"foo":"bar"}`, permission: "420", wantMode: 0o644, wantObjects: 1},
		{name: "permission JSON number", secrets: "null", permission: "420", wantMode: 0o644, wantObjects: 1},
		{name: "permission JSON number with spaces", secrets: "null", permission: " 384\n", wantMode: 0o600, wantObjects: 1},
		{name: "permission JSON string", secrets: "null", permission: `"420"`, wantMode: 0o644, wantObjects: 1},
		{name: "permission 0777", secrets: "null", permission: "511", wantMode: 0o777, wantObjects: 1},
		{name: "permission 1", secrets: "null", permission: "1", wantMode: 0o001, wantObjects: 1},

		{name: "attributes not JSON", attributes: "{", secrets: "null", permission: "420", wantErr: "attributes are not a JSON object"},
		{name: "attributes not strings", attributes: `{"roleName": 5}`, secrets: "null", permission: "420", wantErr: "attributes are not a JSON object"},
		{name: "attributes a list", attributes: `[]`, secrets: "null", permission: "420", wantErr: "attributes are not a JSON object"},
		{name: "secrets not JSON", secrets: "{nope", permission: "420", wantErr: "node publish secrets are not a JSON object"},
		{name: "secrets not strings", secrets: `{"a":1}`, permission: "420", wantErr: "node publish secrets are not a JSON object"},
		{name: "permission missing", secrets: "null", permission: "", wantErr: "no file permission"},
		{name: "permission not JSON", secrets: "null", permission: "rw-r--r--", wantErr: "is not JSON"},
		{name: "permission zero", secrets: "null", permission: "0", wantErr: "outside 0001-0777"},
		{name: "permission too large", secrets: "null", permission: "512", wantErr: "outside 0001-0777"},
		{name: "permission negative", secrets: "null", permission: "-1", wantErr: "not a file mode"},
		{name: "permission fractional", secrets: "null", permission: "420.5", wantErr: "not a file mode"},
		{name: "permission bool", secrets: "null", permission: "true", wantErr: "not a file mode"},
		{name: "permission null", secrets: "null", permission: "null", wantErr: "not a file mode"},
		{name: "permission string not decimal", secrets: "null", permission: `"0x1a4"`, wantErr: "not a file mode"},
		// A string holds the decimal number; "0644" is decimal 644 > 0777.
		{name: "permission string octal-looking", secrets: "null", permission: `"0644"`, wantErr: "outside 0001-0777"},
		{name: "permission string negative", secrets: "null", permission: `"-420"`, wantErr: "not a file mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.attributes
			if a == "" {
				a = attrs(t, nil)
			}
			c, err := Parse(a, tt.secrets, tt.permission, testDefaults)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse succeeded, want error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if !IsInputError(err) {
					t.Errorf("error %q (%T) is not an input error", err, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.DefaultMode != tt.wantMode {
				t.Errorf("DefaultMode = %o, want %o", c.DefaultMode, tt.wantMode)
			}
			if len(c.Objects) != tt.wantObjects {
				t.Errorf("%d objects, want %d", len(c.Objects), tt.wantObjects)
			}
		})
	}
}

func TestParseDefaultsAndOverrides(t *testing.T) {
	tests := []struct {
		name   string
		over   map[string]string
		want   func(c *Config) // adjusts the expected config from the defaults
		errSub string
	}{
		{
			name: "defaults apply",
			want: func(c *Config) {},
		},
		{
			name: "vaultAddress overrides",
			over: map[string]string{ParamVaultAddress: "http://other:8200"},
			want: func(c *Config) { c.VaultAddress = "http://other:8200" },
		},
		{
			name: "empty vaultAddress keeps default",
			over: map[string]string{ParamVaultAddress: ""},
			want: func(c *Config) {},
		},
		{
			name:   "vaultAddress without scheme",
			over:   map[string]string{ParamVaultAddress: "vault:8200"},
			errSub: "is not a URL",
		},
		{
			name:   "vaultAddress with bad scheme",
			over:   map[string]string{ParamVaultAddress: "ftp://vault:8200"},
			errSub: "is not a URL",
		},
		{
			name:   "vaultAddress without host",
			over:   map[string]string{ParamVaultAddress: "https://"},
			errSub: "is not a URL",
		},
		{
			name: "vaultNamespace overrides",
			over: map[string]string{ParamVaultNamespace: "team-a"},
			want: func(c *Config) { c.VaultNamespace = "team-a" },
		},
		{
			name: "empty vaultNamespace overrides to root",
			over: map[string]string{ParamVaultNamespace: ""},
			want: func(c *Config) { c.VaultNamespace = "" },
		},
		{
			name: "vaultAuthMountPath overrides",
			over: map[string]string{ParamVaultAuthMountPath: "jwt"},
			want: func(c *Config) { c.AuthMountPath = "jwt" },
		},
		{
			name: "vaultKubernetesMountPath overrides",
			over: map[string]string{ParamVaultKubernetesMountPath: "k8s-prod"},
			want: func(c *Config) { c.AuthMountPath = "k8s-prod" },
		},
		{
			name:   "both mount path parameters",
			over:   map[string]string{ParamVaultAuthMountPath: "jwt", ParamVaultKubernetesMountPath: "k8s"},
			errSub: "are both set",
		},
		{
			name:   "both mount path parameters even if equal",
			over:   map[string]string{ParamVaultAuthMountPath: "k8s", ParamVaultKubernetesMountPath: "k8s"},
			errSub: "are both set",
		},
		{
			name: "auth/ prefix stripped",
			over: map[string]string{ParamVaultAuthMountPath: "auth/x"},
			want: func(c *Config) { c.AuthMountPath = "x" },
		},
		{
			name: "slashes trimmed",
			over: map[string]string{ParamVaultAuthMountPath: "/x/"},
			want: func(c *Config) { c.AuthMountPath = "x" },
		},
		{
			name: "leading slash and auth/ prefix",
			over: map[string]string{ParamVaultKubernetesMountPath: "/auth/x/"},
			want: func(c *Config) { c.AuthMountPath = "x" },
		},
		{
			name: "nested mount kept",
			over: map[string]string{ParamVaultAuthMountPath: "auth/clusters/prod"},
			want: func(c *Config) { c.AuthMountPath = "clusters/prod" },
		},
		{
			name:   "empty mount path",
			over:   map[string]string{ParamVaultAuthMountPath: ""},
			errSub: "is empty",
		},
		{
			name:   "mount path of only slashes",
			over:   map[string]string{ParamVaultAuthMountPath: "//"},
			errSub: "is empty",
		},
		{
			name: "TLS parameters override",
			over: map[string]string{
				ParamVaultCACertPath:        "/ca.pem",
				ParamVaultCADirectory:       "/cas",
				ParamVaultTLSServerName:     "vault.internal",
				ParamVaultTLSClientCertPath: "/tls.crt",
				ParamVaultTLSClientKeyPath:  "/tls.key",
			},
			want: func(c *Config) {
				c.TLS = TLS{CACert: "/ca.pem", CADirectory: "/cas", ServerName: "vault.internal", ClientCert: "/tls.crt", ClientKey: "/tls.key"}
			},
		},
		{
			name: "empty TLS parameters clear defaults",
			over: map[string]string{ParamVaultCACertPath: "", ParamVaultTLSServerName: ""},
			want: func(c *Config) { c.TLS = TLS{} },
		},
		{
			name:   "client cert without key",
			over:   map[string]string{ParamVaultTLSClientCertPath: "/tls.crt"},
			errSub: "must be set together",
		},
		{
			name:   "client key without cert",
			over:   map[string]string{ParamVaultTLSClientKeyPath: "/tls.key"},
			errSub: "must be set together",
		},
		{
			name: "vaultSkipTLSVerify true",
			over: map[string]string{ParamVaultSkipTLSVerify: "true"},
			want: func(c *Config) { c.TLS.SkipTLSVerify = true },
		},
		{
			name: "vaultSkipTLSVerify 1",
			over: map[string]string{ParamVaultSkipTLSVerify: "1"},
			want: func(c *Config) { c.TLS.SkipTLSVerify = true },
		},
		{
			name: "vaultSkipTLSVerify empty keeps default",
			over: map[string]string{ParamVaultSkipTLSVerify: ""},
			want: func(c *Config) {},
		},
		{
			name:   "vaultSkipTLSVerify invalid",
			over:   map[string]string{ParamVaultSkipTLSVerify: "yes"},
			errSub: `use "true" or "false"`,
		},
		{
			name:   "missing roleName",
			over:   map[string]string{ParamRoleName: unset},
			errSub: `"roleName" is required`,
		},
		{
			name:   "empty roleName",
			over:   map[string]string{ParamRoleName: ""},
			errSub: `"roleName" is required`,
		},
		{
			name:   "missing objects",
			over:   map[string]string{ParamObjects: unset},
			errSub: `"objects" is empty`,
		},
		{
			name: "audience",
			over: map[string]string{ParamAudience: "my-aud"},
			want: func(c *Config) { c.Audience = "my-aud" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(attrs(t, tt.over), "null", "420", testDefaults)
			if tt.errSub != "" {
				if err == nil {
					t.Fatalf("Parse succeeded, want error containing %q", tt.errSub)
				}
				if !strings.Contains(err.Error(), tt.errSub) {
					t.Errorf("error %q does not contain %q", err, tt.errSub)
				}
				if !IsInputError(err) {
					t.Errorf("error %q (%T) is not an input error", err, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Config{
				VaultAddress:   testDefaults.VaultAddress,
				VaultNamespace: testDefaults.VaultNamespace,
				AuthMountPath:  testDefaults.AuthMountPath,
				RoleName:       "app",
				TLS:            testDefaults.TLS,
				Pod:            Pod{Name: "app-0", Namespace: "apps", UID: "uid-1", ServiceAccountName: "app-sa"},
				DefaultMode:    0o644,
			}
			tt.want(&want)
			got := *c
			got.Objects = nil
			if got.VaultAddress != want.VaultAddress || got.VaultNamespace != want.VaultNamespace ||
				got.AuthMountPath != want.AuthMountPath || got.RoleName != want.RoleName ||
				got.Audience != want.Audience || got.TLS != want.TLS || got.Pod != want.Pod ||
				got.DefaultMode != want.DefaultMode || got.Token != want.Token {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseNoAddress(t *testing.T) {
	d := testDefaults
	d.VaultAddress = ""
	_, err := Parse(attrs(t, nil), "null", "420", d)
	if err == nil || !strings.Contains(err.Error(), "no Vault address") || !IsInputError(err) {
		t.Fatalf("err = %v, want an input error about the missing address", err)
	}
}

func TestParseDefaultMountPathNormalized(t *testing.T) {
	d := testDefaults
	d.AuthMountPath = "/auth/kubernetes/"
	c, err := Parse(attrs(t, nil), "null", "420", d)
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMountPath != "kubernetes" {
		t.Errorf("AuthMountPath = %q, want %q", c.AuthMountPath, "kubernetes")
	}
}

func TestParseObjectsPassedThrough(t *testing.T) {
	c, err := Parse(attrs(t, map[string]string{ParamObjects: `
- objectName: user
  secretPath: secret/data/db
  secretKey: username
- objectName: pass
  secretPath: secret/data/db
  secretKey: password
  filePermission: 0400
`}), "null", "420", testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Objects) != 2 || c.Objects[0].ObjectName != "user" || c.Objects[1].SecretKey != "password" {
		t.Fatalf("Objects = %+v", c.Objects)
	}
	if got := c.Objects[0].Mode(c.DefaultMode); got != 0o644 {
		t.Errorf("mode of object without filePermission = %o, want the default 0644", got)
	}
	if got := c.Objects[1].Mode(c.DefaultMode); got != 0o400 {
		t.Errorf("mode of object with filePermission 0400 = %o, want 0400", got)
	}
}

func TestParseObjectsErrorIsInputError(t *testing.T) {
	_, err := Parse(attrs(t, map[string]string{ParamObjects: "- objectName: ../x\n  secretPath: a\n"}), "null", "420", testDefaults)
	if err == nil || !IsInputError(err) {
		t.Fatalf("err = %v, want an input error", err)
	}
}

func TestParseSkipTLSVerifyOverridesDefault(t *testing.T) {
	d := testDefaults
	d.TLS.SkipTLSVerify = true
	for _, tt := range []struct {
		value string
		want  bool
	}{
		{unset, true},
		{"", true},
		{"false", false},
		{"true", true},
	} {
		c, err := Parse(attrs(t, map[string]string{ParamVaultSkipTLSVerify: tt.value}), "null", "420", d)
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		if c.TLS.SkipTLSVerify != tt.want {
			t.Errorf("vaultSkipTLSVerify=%q over default true: SkipTLSVerify = %v, want %v", tt.value, c.TLS.SkipTLSVerify, tt.want)
		}
	}
}
