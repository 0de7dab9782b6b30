package config

import (
	"strings"
	"testing"
)

func TestSecretPathSegments(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
		want string // request path when ok
	}{
		{"secret/data/app", true, "secret/data/app"},
		{"/v1/secret/data/app/", true, "secret/data/app"},
		{"secret/data/../../sys/mounts", false, ""},
		{"secret/./data/app", false, ""},
		{"secret//data/app", false, ""},
		{"..", false, ""},
		{"secret/data/app/..?version=1", false, ""},
		{"secret/data/app..x", true, "secret/data/app..x"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			objs, err := ParseObjects("- {objectName: a, secretPath: '" + tc.path + "'}")
			if !tc.ok {
				if err == nil {
					t.Fatalf("secretPath %q accepted", tc.path)
				}
				if !IsInputError(err) || !strings.Contains(err.Error(), "segment") {
					t.Errorf("error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := objs[0].Request()
			if err != nil || r.Path != tc.want {
				t.Errorf("Request() = %q, %v; want %q", r.Path, err, tc.want)
			}
		})
	}
}
