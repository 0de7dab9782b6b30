package config

import (
	"strings"
	"testing"
)

// Mistakes in the decoded objects: names, paths, methods, encodings, clashes.
func TestParseObjectsValidationErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	testParseObjectsErrors(t, []parseErrorCase{
		{"empty objectName", "- objectName: \"\"\n  secretPath: b\n", "object #1: objectName is empty"},
		{"missing objectName", "- objectName: a\n  secretPath: b\n- secretPath: c\n", "object #2: objectName is empty"},
		{"missing secretPath", "- objectName: a\n", "secretPath is empty"},
		{"blank secretPath", "- objectName: a\n  secretPath: \"  \"\n", "secretPath is empty"},
		{"secretPath only slashes", "- objectName: a\n  secretPath: /v1/\n", "names no Vault path"},
		{"secretPath with fragment", "- objectName: a\n  secretPath: secret/a#b\n", "cannot have"},
		{"secretPath bad query", "- objectName: a\n  secretPath: secret/a?x=%zz\n", "query that does not parse"},
		{"duplicate objectName", "- objectName: a\n  secretPath: b\n- objectName: a\n  secretPath: c\n", `objects #1 and #2 both have objectName "a"`},
		{"file/dir clash", "- objectName: a\n  secretPath: b\n- objectName: a/b\n  secretPath: c\n", `object "a" is a file, but object "a/b" needs it to be a directory`},
		{"file/dir clash reversed, deep", "- objectName: a/b/c\n  secretPath: b\n- objectName: a\n  secretPath: c\n", `object "a" is a file, but object "a/b/c"`},
		{"dotdot", "- objectName: ..\n  secretPath: b\n", `must not contain ".."`},
		{"dotdot prefix", "- objectName: ../x\n  secretPath: b\n", `must not contain ".."`},
		{"dotdot inside", "- objectName: a/../../x\n  secretPath: b\n", `must not contain ".."`},
		{"absolute", "- objectName: /abs\n  secretPath: b\n", "not absolute"},
		{"double slash", "- objectName: a//b\n  secretPath: b\n", "is not clean"},
		{"dot slash", "- objectName: ./a\n  secretPath: b\n", "is not clean"},
		{"trailing slash", "- objectName: a/\n  secretPath: b\n", "is not clean"},
		{"dot", "- objectName: .\n  secretPath: b\n", "is not clean"},
		{"NUL byte", "- objectName: \"a\\0b\"\n  secretPath: b\n", "NUL byte"},
		{"256-byte element", "- objectName: d/" + long + "\n  secretPath: b\n", "256 bytes long"},
		{"..data", "- objectName: ..data\n  secretPath: b\n", `must not start with ".."`},
		{"..2024_01_01", "- objectName: ..2024_01_01\n  secretPath: b\n", `must not start with ".."`},
		{"method DELETE", "- objectName: a\n  secretPath: b\n  method: DELETE\n", `method "DELETE" is not supported`},
		{"method LIST", "- objectName: a\n  secretPath: b\n  method: list\n", `method "LIST" is not supported`},
		{"encoding rot13", "- objectName: a\n  secretPath: b\n  encoding: rot13\n", `encoding "rot13" is not supported`},
	})
}

func TestParseObjectsSiblingsDoNotClash(t *testing.T) {
	objs, err := ParseObjects(`
- objectName: ab
  secretPath: s
- objectName: a/b
  secretPath: s
- objectName: a/c
  secretPath: s
- objectName: a.b
  secretPath: s
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("%d objects, want 4", len(objs))
	}
}

func TestValidateFileName(t *testing.T) {
	tests := []struct {
		name   string
		errSub string // empty: valid
	}{
		{"a", ""},
		{"a/b/c", ""},
		{"a..b", ""},
		{"a/..data", ""},
		{"", "is empty"},
		{"..", `".."`},
		{"../x", `".."`},
		{"x/..", `".."`},
		{"/abs", "absolute"},
		{"a//b", "not clean"},
		{"./a", "not clean"},
		{"a/./b", "not clean"},
		{"a/", "not clean"},
		{".", "not clean"},
		{"a\x00b", "NUL"},
		{strings.Repeat("z", 256), "256 bytes long"},
		{strings.Repeat("z", 255), ""},
		{strings.Repeat(strings.Repeat("z", 200)+"/", 21) + "z", "bytes long; the driver allows 4096"},
		{"..data", `must not start with ".."`},
		{"...", `must not start with ".."`},
	}
	for _, tt := range tests {
		name := tt.name
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(name, func(t *testing.T) {
			err := ValidateFileName(tt.name)
			if tt.errSub == "" {
				if err != nil {
					t.Fatalf("ValidateFileName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("ValidateFileName = %v, want error containing %q", err, tt.errSub)
			}
		})
	}
}
