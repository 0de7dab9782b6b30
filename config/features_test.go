package config

import (
	"strings"
	"testing"
)

// Tests for all-keys objects (secretKey "*"), template objects and
// writeFile.

func TestParseObjectsAllKeysAndTemplatesValid(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, objs []Object)
	}{
		{
			name: "all keys",
			yaml: "- objectName: creds\n  secretPath: secret/data/app\n  secretKey: \"*\"\n  encoding: base64\n  filePermission: 0400\n",
			check: func(t *testing.T, objs []Object) {
				o := objs[0]
				if !o.IsAllKeys() || o.IsTemplate() || !o.Written() || o.Method != "GET" || o.Encoding != EncodingBase64 {
					t.Errorf("object = %+v", o)
				}
			},
		},
		{
			name: "all keys in flow style, single quotes",
			yaml: "- {objectName: creds, secretPath: secret/data/app, secretKey: '*'}",
			check: func(t *testing.T, objs []Object) {
				if !objs[0].IsAllKeys() {
					t.Errorf("object = %+v", objs[0])
				}
			},
		},
		{
			name: "an object inside an all-keys directory is left to the provider",
			yaml: "- {objectName: creds, secretPath: s, secretKey: \"*\"}\n- {objectName: creds/extra, secretPath: t, secretKey: k}\n- {objectName: creds/sub, secretPath: t, secretKey: \"*\"}",
			check: func(t *testing.T, objs []Object) {
				if len(objs) != 3 {
					t.Errorf("%d objects", len(objs))
				}
			},
		},
		{
			name: "template over an unwritten object",
			yaml: `
- objectName: db
  secretPath: database/creds/app
  secretKey: "*"
  writeFile: false
- objectName: config/db.conf
  filePermission: 0400
  template: |
    user={{ .Values.db.username }}
    password={{ .Values.db.password }}
`,
			check: func(t *testing.T, objs []Object) {
				db, tpl := objs[0], objs[1]
				if db.Written() || !db.IsAllKeys() {
					t.Errorf("db = %+v", db)
				}
				if !tpl.IsTemplate() || !tpl.Written() || tpl.Method != "" || tpl.FilePermission != 0o400 {
					t.Errorf("template object = %+v", tpl)
				}
				pt, err := tpl.ParsedTemplate()
				if err != nil || len(pt.Refs()) != 1 || pt.Refs()[0].Object != "db" {
					t.Errorf("parsed template refs: %v, %v", pt, err)
				}
				if _, err := tpl.Request(); err == nil {
					t.Error("a template object has a Vault request")
				}
			},
		},
		{
			name: "index names objects whose names are not identifiers",
			yaml: "- {objectName: db/password, secretPath: s, secretKey: p, writeFile: false}\n- {objectName: out, template: '{{ index .Values \"db/password\" }}'}",
		},
		{
			name: "unwritten object and written object below its name do not clash",
			yaml: "- {objectName: a, secretPath: s, secretKey: p, writeFile: false}\n- {objectName: a/b, template: '{{ .Values.a }}'}",
		},
		{
			name: "unwritten objects used dynamically",
			yaml: "- {objectName: a, secretPath: s, secretKey: p, writeFile: false}\n- {objectName: all.json, template: '{{ toJSON .Values }}'}",
		},
		{
			name: "a written object may also feed a template",
			yaml: "- {objectName: pw, secretPath: s, secretKey: p}\n- {objectName: pw.b64, template: '{{ .Values.pw | base64enc }}'}",
		},
		{
			name: "template with no values",
			yaml: "- {objectName: static, template: 'hello'}",
		},
		{
			name: "writeFile true is the default and is dropped",
			yaml: "- {objectName: a, secretPath: s, writeFile: true}",
			check: func(t *testing.T, objs []Object) {
				if objs[0].WriteFile != nil || !objs[0].Written() {
					t.Errorf("WriteFile = %v", objs[0].WriteFile)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err != nil {
				t.Fatalf("ParseObjects: %v", err)
			}
			if tt.check != nil {
				tt.check(t, objs)
			}
		})
	}
}

func TestParseObjectsAllKeysAndTemplatesErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unquoted * is a YAML alias", "- objectName: a\n  secretPath: s\n  secretKey: *\n", []string{`write secretKey: "*"`}},
		{"unknown field lists the new fields", "- {objectName: a, secretPath: s, templat: x}", []string{"templat", "template, writeFile"}},
		{"file inside an all-keys object that is not", "- {objectName: a, secretPath: s, secretKey: k}\n- {objectName: a/b, secretPath: s, secretKey: \"*\"}", []string{`object "a" is a file, but object "a/b" needs it to be a directory`}},
		{"all-keys object and a file of the same name", "- {objectName: a, secretPath: s, secretKey: \"*\"}\n- {objectName: a, template: x}", []string{`both have objectName "a"`}},
		{"template with secretPath", "- {objectName: t, template: x, secretPath: s}", []string{`object "t"`, "cannot have secretPath", "writeFile: false"}},
		{"template with everything", "- {objectName: t, template: x, secretPath: s, secretKey: k, method: PUT, secretArgs: {a: 1}, encoding: base64}", []string{"cannot have secretPath, secretKey, method, secretArgs, encoding"}},
		{"template not written", "- {objectName: t, template: x, writeFile: false}", []string{`object "t"`, "templates cannot use other templates"}},
		{"template syntax error names object and line", "- objectName: conf\n  template: |\n    a\n    {{ .Values.x\n", []string{`object "conf": template: conf:`, "unclosed action started at conf:2"}},
		{"template function not available", "- {objectName: conf, template: '{{ env \"HOME\" }}'}", []string{`object "conf": template: conf:1:`, `"env" not defined`}},
		{"template uses a missing object", "- {objectName: a, secretPath: s, secretKey: k}\n- objectName: conf\n  template: |\n    x\n    {{ .Values.b }}\n",
			[]string{`object "conf": template: conf:2:`, `uses object "b", which is not in this SecretProviderClass`, "objects it can use: a"}},
		{"template uses a missing object via index", "- {objectName: a, secretPath: s, secretKey: k}\n- {objectName: conf, template: '{{ index .Values \"db/pw\" }}'}", []string{`uses object "db/pw"`}},
		{"template uses a template", "- {objectName: a, secretPath: s, secretKey: k}\n- {objectName: t1, template: '{{ .Values.a }}'}\n- {objectName: t2, template: '{{ .Values.t1 }}'}",
			[]string{`object "t2"`, `uses object "t1", which is a template`}},
		{"template uses itself", "- {objectName: t, template: '{{ .Values.t }}'}", []string{`uses object "t", which is a template`}},
		{"template uses a missing object, no inputs at all", "- {objectName: t, template: '{{ .Values.x }}'}", []string{"none: every object is a template"}},
		{"unwritten object without templates", "- {objectName: a, secretPath: s, writeFile: false}", []string{`object "a" has writeFile: false, but no object has a template`}},
		{"unwritten object no template uses", "- {objectName: a, secretPath: s, writeFile: false}\n- {objectName: b, secretPath: s, writeFile: false}\n- {objectName: t, template: '{{ .Values.a }}'}",
			[]string{`object "b" has writeFile: false, but no template uses it (templates: t)`}},
		{"unwritten object with filePermission", "- {objectName: a, secretPath: s, writeFile: false, filePermission: 0600}\n- {objectName: t, template: '{{ .Values.a }}'}", []string{"filePermission has no effect"}},
		{"writeFile not a boolean", "- {objectName: a, secretPath: s, writeFile: maybe}", []string{"`maybe` into bool"}},
		{"template not a string", "- {objectName: a, template: [x]}", []string{"!!seq into string"}},
		{"empty template is no template", "- {objectName: a, template: ''}", []string{"secretPath is empty", "or a template"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err == nil {
				t.Fatalf("ParseObjects accepted %+v", objs)
			}
			if !IsInputError(err) {
				t.Errorf("error %q (%T) is not an input error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// Parse (the whole request) refuses a bad template before anything else
// happens: InvalidArgument, no Vault.
func TestParseRefusesBadTemplate(t *testing.T) {
	_, err := Parse(attrs(t, map[string]string{ParamObjects: "- {objectName: t, template: '{{ .Values.nope }}'}"}), "null", "420", Defaults{VaultAddress: "https://v:8200", AuthMountPath: "kubernetes"})
	if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), `uses object "nope"`) {
		t.Fatalf("Parse = %v, want an input error naming the object", err)
	}
}
