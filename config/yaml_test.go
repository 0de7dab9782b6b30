package config

import (
	"reflect"
	"strings"
	"testing"
)

// parseErrorCase is objects YAML that ParseObjects must refuse with an
// input error whose message contains errSub.
type parseErrorCase struct {
	name   string
	yaml   string
	errSub string
}

func testParseObjectsErrors(t *testing.T, tests []parseErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err == nil {
				t.Fatalf("ParseObjects succeeded with %+v, want error containing %q", objs, tt.errSub)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
			if !IsInputError(err) {
				t.Errorf("error %q (%T) is not an input error", err, err)
			}
		})
	}
}

// Mistakes found while decoding the YAML.
func TestParseObjectsDecodeErrors(t *testing.T) {
	testParseObjectsErrors(t, []parseErrorCase{
		{"empty", "", `"objects" is empty`},
		{"blank", "  \n\t", `"objects" is empty`},
		{"empty list", "[]", "lists no objects"},
		{"null", "null", "lists no objects"},
		{"not a list", "objectName: a\nsecretPath: b\n", "not a valid YAML list"},
		{"not YAML", "- objectName: [a\n", "not a valid YAML list"},
		{"unknown field", "- objectName: a\n  secretPath: b\n  bogus: 1\n", "bogus"},
		{"field names are case-sensitive", "- objectName: a\n  secretPath: b\n  secretkey: c\n", "secretkey"},
		{"multiple documents", "- objectName: a\n  secretPath: b\n---\n- objectName: c\n  secretPath: d\n", "more than one YAML document"},
		{"filePermission decimal 600", "- objectName: a\n  secretPath: b\n  filePermission: 600\n", "leading zero, e.g. 0600"},
		{"filePermission 0", "- objectName: a\n  secretPath: b\n  filePermission: 0\n", "between 0001 and 0777"},
		{"filePermission 01000", "- objectName: a\n  secretPath: b\n  filePermission: 01000\n", "between 0001 and 0777"},
		{"filePermission string 1000", "- objectName: a\n  secretPath: b\n  filePermission: \"1000\"\n", "between 0001 and 0777"},
		{"filePermission string not octal", "- objectName: a\n  secretPath: b\n  filePermission: \"0680\"\n", "not an octal file mode"},
		{"filePermission symbolic", "- objectName: a\n  secretPath: b\n  filePermission: rw-r--r--\n", "not an octal file mode"},
		{"filePermission negative", "- objectName: a\n  secretPath: b\n  filePermission: -1\n", "not an octal file mode"},
		{"filePermission float", "- objectName: a\n  secretPath: b\n  filePermission: 6.0\n", "not an octal file mode"},
		{"filePermission list", "- objectName: a\n  secretPath: b\n  filePermission: [1]\n", "octal number"},
	})
}

func TestParseObjectsHintNoDecimalHintForLeadingZero(t *testing.T) {
	_, err := ParseObjects("- objectName: a\n  secretPath: b\n  filePermission: 01000\n")
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), "decimal") {
		t.Errorf("01000 is octal in YAML, yet the error %q hints at decimal", err)
	}
}

func TestParseObjectsUnknownFieldListsFields(t *testing.T) {
	_, err := ParseObjects("- objectName: a\n  secretPath: b\n  secretkey: c\n")
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"secretKey", "filePermission", "encoding"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not list the field %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "config.Object") {
		t.Errorf("error %q names a Go type", err)
	}
}

func TestParseObjectsValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Object
	}{
		{
			name: "minimal defaults to GET and no encoding",
			yaml: "- objectName: a\n  secretPath: secret/data/app\n",
			want: Object{ObjectName: "a", SecretPath: "secret/data/app", Method: "GET"},
		},
		{
			name: "nested name",
			yaml: "- objectName: dir/sub/file.txt\n  secretPath: secret/data/app\n",
			want: Object{ObjectName: "dir/sub/file.txt", SecretPath: "secret/data/app", Method: "GET"},
		},
		{
			name: "..data below the top level",
			yaml: "- objectName: dir/..data\n  secretPath: s\n",
			want: Object{ObjectName: "dir/..data", SecretPath: "s", Method: "GET"},
		},
		{
			name: "dotfile",
			yaml: "- objectName: .env\n  secretPath: s\n",
			want: Object{ObjectName: ".env", SecretPath: "s", Method: "GET"},
		},
		{
			name: "255-byte element",
			yaml: "- objectName: " + strings.Repeat("y", 255) + "\n  secretPath: s\n",
			want: Object{ObjectName: strings.Repeat("y", 255), SecretPath: "s", Method: "GET"},
		},
		{
			name: "method get normalized",
			yaml: "- objectName: a\n  secretPath: s\n  method: get\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "method post normalized",
			yaml: "- objectName: a\n  secretPath: s\n  method: \" post \"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "POST"},
		},
		{
			name: "method PUT",
			yaml: "- objectName: a\n  secretPath: s\n  method: PUT\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "PUT"},
		},
		{
			name: "encoding utf-8",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: utf-8\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "encoding UTF8",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: UTF8\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET"},
		},
		{
			name: "encoding base64",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: base64\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingBase64},
		},
		{
			name: "encoding BASE64",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: BASE64\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingBase64},
		},
		{
			name: "encoding HEX",
			yaml: "- objectName: a\n  secretPath: s\n  encoding: HEX\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", Encoding: EncodingHex},
		},
		{
			name: "filePermission 0600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0600\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission 0o600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0o600\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 0600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"0600\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 600",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"600\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o600},
		},
		{
			name: "filePermission string 0o440",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: \"0o440\"\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o440},
		},
		{
			name: "filePermission 0777",
			yaml: "- objectName: a\n  secretPath: s\n  filePermission: 0777\n",
			want: Object{ObjectName: "a", SecretPath: "s", Method: "GET", FilePermission: 0o777},
		},
		{
			name: "secretArgs and key kept",
			yaml: "- objectName: a\n  secretPath: pki/issue/r\n  secretKey: certificate\n  method: POST\n  secretArgs:\n    common_name: x.example\n",
			want: Object{ObjectName: "a", SecretPath: "pki/issue/r", SecretKey: "certificate", Method: "POST", SecretArgs: map[string]any{"common_name": "x.example"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseObjects(tt.yaml)
			if err != nil {
				t.Fatalf("ParseObjects: %v", err)
			}
			if len(objs) != 1 {
				t.Fatalf("%d objects, want 1", len(objs))
			}
			got := objs[0]
			got.derived = nil // computed from the fields compared
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("object =\n%#v\nwant\n%#v", objs[0], tt.want)
			}
		})
	}
}
