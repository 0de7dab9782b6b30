package tmpl

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fuzzAlloc bounds what one execution under fuzzLimits may allocate: its
// budgets are a MiB; text/template's own work per node, charged through
// the loop bodies' lengths, comes on top.
const fuzzAlloc = 32 << 20

var fuzzLimits = Limits{MaxOutput: 1 << 16, MaxWork: 1 << 20, MaxIterations: 10_000}

// FuzzTemplate: for any template text, Parse never panics; a template it
// accepts executes within its limits, the deadline and an allocation
// bound, and no error quotes a value or what a template can make of one.
//
//	go test -run '^$' -fuzz FuzzTemplate -fuzztime 30s ./internal/tmpl
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{{ .Values.pw }}", "{{ range $k, $v := .Values }}{{ $k }}{{ end }}", "{{ range .Values.db }}{{ range $.Values }}{{ . }}{{ end }}{{ end }}",
		`{{ index .Values "db" "username" | quote }}`, "{{ toJSON .Values | base64enc | base64dec }}", "{{ with .Values.db }}{{ .password }}{{ else }}x{{ end }}",
		"{{ range 10 }}{{ end }}", "{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", "{{ if and .Values.pw (eq (len .Values.db) 2) }}y{{ end }}",
		"{{ printf \"%v %s %d\" .Values .Values.pw 3 }}", "{{ range $i, $e := .Values.db }}{{ break }}{{ continue }}{{ end }}", "{{/* c */}}{{- .Values.b64 -}}",
		"{{ $x := .Values.db }}{{ range $x }}{{ . | trim }}{{ end }}", "{{ .Values.pw.nope }}", "{{ index .Values.db .Values.pw }}", "{{ range .Values.pw }}{{ end }}",
		`{{ printf "%[1]*[2]d%[1]*[2]d" 999999 1 }}`, `{{ printf "%[1]s%[1]s%[1]s%[1]s" .Values.big }}`, `{{ $a := print .Values.big .Values.big }}{{ quote $a | toJSON }}`,
		`{{ index .Values.db (printf "%x" .Values.pw) }}`, `{{ eq .Values.db .Values.db }}`, `{{ range .Values.db }}{{ if or (lt . "m") (ge . "x") }}{{ end }}{{ end }}`,
		`{{ 1 | and 2 | or 0 | not }}`,
	} {
		f.Add(s)
	}
	vals := values()
	vals["big"] = strings.Repeat("\x01big", 1<<14) // 64 KiB, 6x in JSON
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := Parse("obj", src)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		out, err := tp.Execute(ctx, vals, fuzzLimits)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if took > 3*time.Second {
			t.Fatalf("Execute took %s", took)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > fuzzAlloc {
			t.Fatalf("Execute allocated %d MiB", n>>20)
		}
		if len(out) > fuzzLimits.MaxOutput {
			t.Fatalf("Execute rendered %d bytes", len(out))
		}
		if err == nil {
			return
		}
		for _, l := range leaks() {
			if strings.Contains(err.Error(), l) && !strings.Contains(src, l) {
				t.Fatalf("error quotes a value or what was made of one (%q): %v", l, err)
			}
		}
	})
}
