package tmpl

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzTemplate: for any template text, Parse never panics; a template it
// accepts executes within its limits and the deadline, and no error quotes
// a value.
//
//	go test -run '^$' -fuzz FuzzTemplate -fuzztime 30s ./internal/tmpl
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ .Values.pw }}", "{{ range $k, $v := .Values }}{{ $k }}{{ end }}", "{{ range .Values.db }}{{ range $.Values }}{{ . }}{{ end }}{{ end }}",
		`{{ index .Values "db" "username" | quote }}`, "{{ toJSON .Values | base64enc | base64dec }}", "{{ with .Values.db }}{{ .password }}{{ else }}x{{ end }}",
		"{{ range 10 }}{{ end }}", "{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", "{{ if and .Values.pw (eq (len .Values.db) 2) }}y{{ end }}",
		"{{ printf \"%v %s %d\" .Values .Values.pw 3 }}", "{{ range $i, $e := .Values.db }}{{ break }}{{ continue }}{{ end }}", "{{/* c */}}{{- .Values.b64 -}}",
		"{{ $x := .Values.db }}{{ range $x }}{{ . | trim }}{{ end }}", "{{ .Values.pw.nope }}", "{{ index .Values.db .Values.pw }}", "{{ range .Values.pw }}{{ end }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := Parse("obj", src)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err = tp.Execute(ctx, values(), Limits{MaxOutput: 1 << 16, MaxWork: 1 << 20, MaxIterations: 10_000})
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("Execute took %s", took)
		}
		if err == nil {
			return
		}
		for _, secret := range []string{pw, user, b64} {
			if strings.Contains(err.Error(), secret) && !strings.Contains(src, secret) {
				t.Fatalf("error quotes a value: %v", err)
			}
		}
	})
}
