package tmpl

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// leaks are the values and what a template can make of them: no error
// may contain any. The derived ones are not values, so the last-resort
// scrub of values in messages does not hide them: only errors that never
// print what was computed keep them out.
func leaks() []string {
	out := []string{"hello world"} // b64 decoded
	for _, s := range []string{pw, user, b64} {
		out = append(out, s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))),
			base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return out
}

func checkNoLeak(t *testing.T, src string, err error) {
	t.Helper()
	for _, l := range leaks() {
		if strings.Contains(err.Error(), l) && !strings.Contains(src, l) {
			t.Errorf("%s: error %q contains %q", src, err, l)
		}
	}
}

var located = regexp.MustCompile(`^template: obj:\d+:\d+: `)

// issue #11 row 8: errors name the template and the place, never a value
// nor a key computed from one.
func TestErrorsCarryNoValue(t *testing.T) {
	for _, src := range []string{
		`{{ index .Values.db (trim .Values.db.password) }}`,
		`{{ index .Values.db (printf "%x" .Values.pw) }}`,
		`{{ index .Values.db (printf "%X" .Values.pw) }}`,
		`{{ index .Values.db (printf "%s-x" .Values.pw) }}`,
		`{{ index .Values (base64enc .Values.pw) }}`,
		`{{ index .Values.db (base64dec .Values.b64) }}`,
		`{{ index .Values.db (quote .Values.db.username) "x" }}`,
		`{{ printf "%x" .Values.pw | index .Values.db }}`,
		`{{ with $k := printf "%x" .Values.pw }}{{ index $.Values $k }}{{ end }}`,
		`{{ range $k, $v := .Values.db }}{{ index $.Values.db (printf "%x" $v) }}{{ end }}`,
		`{{ if index .Values.db (printf "%x" .Values.pw) }}{{ end }}`,
		`{{ index .Values.pw "x" }}`,
		`{{ index .Values.db 1 }}`,
		`{{ index .Values.db .Values.db }}`,
		`{{ eq .Values.db .Values.db }}`,
		`{{ eq .Values.db .Values }}`,
		`{{ eq .Values .Values.db }}`,
		`{{ ne .Values.db .Values.db }}`,
		`{{ eq .Values.db .Values.pw }}`,
		`{{ eq .Values.pw 1 }}`,
		`{{ lt .Values.pw 1 }}`,
		`{{ lt .Values.db .Values.db }}`,
		`{{ le .Values.pw true }}`,
		`{{ gt .Values.db.password 1.5 }}`,
		`{{ ge (printf "%x" .Values.pw) 1 }}`,
		`{{ len 3 }}`,
		`{{ base64dec .Values.pw }}`,
		`{{ base64dec (printf "%x!" .Values.pw) }}`,
		`{{ base64enc .Values.db }}`,
		`{{ quote .Values }}`,
		`{{ toJSON 2i }}`,
		`{{ range .Values.pw }}{{ end }}`,
		`{{ range (printf "%x" .Values.pw) }}{{ end }}`,
		`{{ range $i, $c := len .Values.pw }}{{ end }}`,
		`{{ .Values.pw.x }}`,
		`{{ .Values.db.password.x }}`,
		`{{ .Values.nope }}`,
		`{{ (printf "%x" .Values.pw).x }}`,
		`{{ $x := printf "%x" .Values.pw }}{{ $x.y }}`,
		`{{ printf "%x" .Values.pw | printf "%s" | base64dec }}`,
		`{{ template "x" }}`,
	} {
		tp, err := Parse("obj", src)
		if err != nil {
			// Parse errors quote source only.
			checkNoLeak(t, src, err)
			continue
		}
		out, err := tp.Execute(context.Background(), values(), Limits{})
		if err == nil {
			t.Errorf("%s: Execute succeeded with %q", src, out)
			continue
		}
		checkNoLeak(t, src, err)
		if !located.MatchString(err.Error()) {
			t.Errorf("%s: error %q does not start with the template and place", src, err)
		}
		if strings.Contains(err.Error(), "executing") {
			t.Errorf("%s: error %q shows the rewritten node", src, err)
		}
	}
}

// What a literal key was is still said; a computed key is not.
func TestErrorsNameLiteralKeys(t *testing.T) {
	for src, want := range map[string]string{
		`{{ index .Values "db" "nope" }}`:                   `no entry for key "nope" (keys present: password, username)`,
		`{{ $k := "nope" }}{{ index .Values.db $k }}`:       `no entry for key "nope"`,
		`{{ index .Values.db (printf "%s" "nope") }}`:       `no entry for key "nope"`,
		`{{ index .Values.db (printf "%s-x" .Values.pw) }}`: `no entry for the key computed here`,
		`{{ .Values.db.nope }}`:                             `map has no entry for key "nope"`,
		"x\n\n{{ eq .Values.pw 1 }}":                        "template: obj:3:3: error calling eq: incompatible types for comparison: string and int",
	} {
		tp, err := Parse("obj", src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tp.Execute(context.Background(), values(), Limits{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}

// The error wraps what it was caused by, for errors.Is, and nothing that
// still holds text/template's message.
func TestErrorsUnwrap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		src   string
		ctx   context.Context
		lim   Limits
		cause error
	}{
		{`{{ index .Values.db (printf "%x" .Values.pw) }}`, context.Background(), Limits{}, nil},
		{`{{ toJSON .Values }}`, context.Background(), Limits{MaxWork: 10}, ErrLimit},
		{`{{ .Values.pw }}{{ .Values.pw }}`, context.Background(), Limits{MaxOutput: 20}, ErrLimit},
		{`{{ eq 1 1 }}`, ctx, Limits{}, context.Canceled},
	} {
		tp, err := Parse("obj", tt.src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tp.Execute(tt.ctx, values(), tt.lim)
		if err == nil {
			t.Fatalf("%s: no error", tt.src)
		}
		if got := errors.Unwrap(err); got != tt.cause {
			t.Errorf("%s: errors.Unwrap = %v, want %v", tt.src, got, tt.cause)
		}
	}
}

// Should a value reach a message all the same, it is cut out.
func TestScrub(t *testing.T) {
	got := scrub("a "+pw+" b "+user+" c pw", values())
	if strings.Contains(got, pw) || strings.Contains(got, user) || !strings.HasSuffix(got, " c pw") {
		t.Errorf("scrub = %q", got)
	}
}
