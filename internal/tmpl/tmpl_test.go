package tmpl

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// secret values the tests feed templates; no error may quote them.
const (
	pw   = "hunter2-secret-pw"
	user = "db-user-4711"
	b64  = "aGVsbG8gd29ybGQ=" // "hello world"
)

func values() map[string]any {
	return map[string]any{
		"pw":          pw,
		"b64":         b64,
		"db":          map[string]string{"username": user, "password": pw},
		"db/password": pw,
		"empty":       map[string]string{},
	}
}

func TestExecute(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"field", `{{ .Values.pw }}`, pw},
		{"all-keys object field", `{{ .Values.db.username }}`, user},
		{"root variable", `{{ $.Values.db.username }}`, user},
		{"index for names that are not identifiers", `{{ index .Values "db/password" }}`, pw},
		{"index into an all-keys object", `{{ index .Values "db" "username" }}`, user},
		{"text around values", "user={{ .Values.db.username }}\npass={{ .Values.db.password }}\n", "user=" + user + "\npass=" + pw + "\n"},
		{"toJSON of a map sorts keys", `{{ toJSON .Values.db }}`, `{"password":"` + pw + `","username":"` + user + `"}`},
		{"toJSON of a string", `{{ toJSON "a\"<b>" }}`, `"a\"<b>"`},
		{"base64enc", `{{ "hello world" | base64enc }}`, b64},
		{"base64dec", `{{ .Values.b64 | base64dec }}`, "hello world"},
		{"base64dec trims", `{{ " aGk= " | base64dec }}`, "hi"},
		{"quote", `{{ quote "a\"b\n" }}`, `"a\"b\n"`},
		{"trim", `{{ trim "  x \n" }}`, "x"},
		{"printf", `{{ printf "%s:%s" .Values.db.username .Values.db.password | base64enc }}`, "ZGItdXNlci00NzExOmh1bnRlcjItc2VjcmV0LXB3"},
		{"print", `{{ print "a" 1 }}`, "a1"},
		{"range over an all-keys object, sorted", `{{ range $k, $v := .Values.db }}{{ $k }}={{ $v }};{{ end }}`, "password=" + pw + ";username=" + user + ";"},
		{"range one variable gets values", `{{ range $v := .Values.db }}{{ $v }};{{ end }}`, pw + ";" + user + ";"},
		{"range dot is the value", `{{ range .Values.db }}[{{ . }}]{{ end }}`, "[" + pw + "][" + user + "]"},
		{"range else on an empty map", `{{ range .Values.empty }}x{{ else }}none{{ end }}`, "none"},
		{"range over .Values", `{{ range $name, $v := .Values }}{{ $name }},{{ end }}`, "b64,db,db/password,empty,pw,"},
		{"nested range", `{{ range $k, $_ := .Values.db }}{{ range $j, $_ := $.Values.db }}{{ $k }}{{ $j }} {{ end }}{{ end }}`, "passwordpassword passwordusername usernamepassword usernameusername "},
		{"break", `{{ range .Values.db }}x{{ break }}{{ end }}`, "x"},
		{"if eq", `{{ if eq .Values.pw "` + pw + `" }}same{{ else }}other{{ end }}`, "same"},
		{"with", `{{ with .Values.db }}{{ .username }}{{ end }}`, user},
		{"len", `{{ len .Values.db }}`, "2"},
		{"no actions", "static\n", "static\n"},
		{"whitespace trimming", "a {{- .Values.db.username -}} b", "a" + user + "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("obj", tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := tp.Execute(context.Background(), values(), Limits{})
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"syntax error names object and line", "line1\n{{ .Values.pw ", []string{"template: dir/obj.conf:2:", "unclosed action"}},
		{"unknown function", "{{ env \"HOME\" }}", []string{"template: dir/obj.conf:1:", `function "env" not defined`, "toJSON, base64enc"}},
		{"sprig's functions are not there", "{{ readFile \"/etc/passwd\" }}", []string{`function "readFile" not defined`}},
		{"call", "x\n{{ call .Values.pw }}", []string{"template: dir/obj.conf:2:3:", `function "call" is not available`}},
		{"html", "{{ html .Values.pw }}", []string{`function "html" is not available`}},
		{"js", "{{ .Values.pw | js }}", []string{`function "js" is not available`}},
		{"urlquery", "{{ urlquery .Values.pw }}", []string{`"urlquery" is not available`}},
		{"println", "{{ println 1 }}", []string{`"println" is not available`}},
		{"slice", "{{ slice .Values.pw 1 }}", []string{`"slice" is not available`}},
		{"unavailable inside a range body", "{{ range .Values.db }}{{ html . }}{{ end }}", []string{`"html" is not available`}},
		{"define", `{{ define "x" }}a{{ end }}b`, []string{"template: dir/obj.conf:", "{{define}} and {{block}} are not available"}},
		{"block", `{{ block "x" . }}a{{ end }}`, []string{"not available"}},
		{"template", `{{ template "x" }}`, []string{"template: dir/obj.conf:1:", "{{template}} is not available"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("dir/obj.conf", tt.src)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRefs(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		refs    []Ref
		dynamic bool
	}{
		{"none", "static", nil, false},
		{"field", "{{ .Values.a }}", []Ref{{"a", "t:1:10"}}, false},
		{"deep field names the object", "{{ .Values.a.b.c }}", []Ref{{"a", "t:1:10"}}, false},
		{"root variable", "{{ $.Values.a }}", []Ref{{"a", "t:1:4"}}, false},
		{"index literal", "x\n{{ index .Values \"db/pw\" \"k\" }}", []Ref{{"db/pw", "t:2:17"}}, false},
		{"each once, in order", "{{ .Values.b }}{{ .Values.a }}{{ .Values.b }}", []Ref{{"b", "t:1:10"}, {"a", "t:1:25"}}, false},
		{"in pipes, branches and ranges", `{{ if .Values.a }}{{ with .Values.b }}{{ end }}{{ else }}{{ range .Values.c }}{{ $.Values.d | quote }}{{ end }}{{ end }}`,
			[]Ref{{"a", "t:1:13"}, {"b", "t:1:33"}, {"c", "t:1:73"}, {"d", "t:1:82"}}, false},
		{"in parenthesised arguments", `{{ printf "%s" (index .Values "x") }}`, []Ref{{"x", "t:1:30"}}, false},
		{"bare .Values is dynamic", "{{ range $k, $v := .Values }}{{ end }}", nil, true},
		{"index with a variable is dynamic", "{{ $n := \"a\" }}{{ index .Values $n }}", nil, true},
		{"assigning .Values is dynamic", "{{ $v := $.Values }}{{ $v.a }}", nil, true},
		{"other fields are not refs", "{{ with .Values.a }}{{ .b }}{{ end }}", []Ref{{"a", "t:1:15"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("t", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tp.Refs(), tt.refs) {
				t.Errorf("Refs = %v, want %v", tp.Refs(), tt.refs)
			}
			if tp.Dynamic() != tt.dynamic {
				t.Errorf("Dynamic = %v, want %v", tp.Dynamic(), tt.dynamic)
			}
		})
	}
}

func TestExecuteErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		lim   Limits
		want  []string
		limit bool
	}{
		{"missing object", "a\n{{ .Values.nope }}", Limits{}, []string{"template: obj:2:10:", `map has no entry for key "nope"`}, false},
		{"missing key of an all-keys object", "{{ .Values.db.nope }}", Limits{}, []string{"template: obj:1:", `map has no entry for key "nope"`}, false},
		{"index: missing key is an error, listing keys", `{{ index .Values "db" "nope" }}`, Limits{}, []string{"obj:1:", `no entry for key "nope"`, "keys present: password, username"}, false},
		{"index: missing object is an error", `{{ $n := "nope" }}{{ index .Values $n }}`, Limits{}, []string{`no entry for key "nope"`, "keys present: b64, db, db/password, empty, pw"}, false},
		{"index with a secret as the key does not show it", `{{ index .Values.db .Values.pw }}`, Limits{}, []string{"no entry for the key computed here", "keys present: password, username"}, false},
		{"index into a string", `{{ index .Values.pw "x" }}`, Limits{}, []string{"cannot index a string"}, false},
		{"index with a number", `{{ index .Values.db 1 }}`, Limits{}, []string{"not a number"}, false},
		{"field of a string", `{{ .Values.pw.x }}`, Limits{}, []string{"can't evaluate field x"}, false},
		{"range over a string does not quote it", `{{ range .Values.pw }}{{ end }}`, Limits{}, []string{"obj:1:", "not over a string"}, false},
		{"range over a number is refused", `{{ range 1000000000000 }}{{ end }}`, Limits{}, []string{"not over a number"}, false},
		{"range over a number in a variable is refused", `{{ $n := len .Values.pw }}{{ range $n }}{{ end }}`, Limits{}, []string{"not over a number"}, false},
		{"base64dec of a non-base64 value", `{{ base64dec .Values.pw }}`, Limits{}, []string{"error calling base64dec", "not valid base64"}, false},
		{"wrong argument type", `{{ base64enc .Values.db }}`, Limits{}, []string{"wrong type"}, false},
		{"comparison of a map", `{{ lt .Values.pw 3 }}`, Limits{}, []string{"incompatible types"}, false},
		{"output limit", `{{ range .Values.db }}{{ $.Values.pw }}{{ end }}`, Limits{MaxOutput: 20}, []string{"template: obj:", "renders more than 20 bytes"}, true},
		{"iteration limit", `{{ range .Values.db }}{{ range $.Values }}{{ end }}{{ end }}`, Limits{MaxIterations: 10}, []string{"more than 10 range iterations"}, true},
		{"work limit", `{{ range .Values.db }}{{ $x := toJSON $.Values }}{{ end }}`, Limits{MaxWork: 200}, []string{"more than 200 bytes"}, true},
		{"work limit without output", `{{ $a := printf "%s%s%s%s" .Values.pw .Values.pw .Values.pw .Values.pw }}{{ $b := print $a $a $a }}`, Limits{MaxWork: 100}, []string{"more than 100 bytes"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("obj", tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := tp.Execute(context.Background(), values(), tt.lim)
			if err == nil {
				t.Fatalf("Execute succeeded with %q", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, secret := range []string{pw, user, b64} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes a secret value", err)
				}
			}
			if errors.Is(err, ErrLimit) != tt.limit {
				t.Errorf("errors.Is(err, ErrLimit) = %v, want %v", !tt.limit, tt.limit)
			}
		})
	}
}

// A template that would run for ever stops at the context's deadline.
func TestExecuteStopsAtDeadline(t *testing.T) {
	// 26 keys nested 6 deep is 3*10^8 iterations: far beyond the deadline
	// unless every iteration checks it.
	m := map[string]string{}
	for c := 'a'; c <= 'z'; c++ {
		m[string(c)] = "v"
	}
	vals := map[string]any{"m": m}
	src := `{{ range .Values.m }}{{ range $.Values.m }}{{ range $.Values.m }}{{ range $.Values.m }}{{ range $.Values.m }}{{ range $.Values.m }}{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}`
	tp, err := Parse("loop", src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tp.Execute(ctx, vals, Limits{MaxIterations: 1 << 40})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want the deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Execute returned %s after a 200ms deadline", took)
	}
}

// Executions do not share budgets: the template is parsed once, each
// execution counts from zero.
func TestExecuteBudgetsArePerExecution(t *testing.T) {
	tp, err := Parse("obj", `{{ range .Values.db }}{{ . }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := tp.Execute(context.Background(), values(), Limits{MaxIterations: 2}); err != nil {
			t.Fatalf("execution %d: %v", i, err)
		}
	}
	if _, err := tp.Execute(context.Background(), values(), Limits{MaxIterations: 1}); !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxIterations 1 over 2 keys: %v, want ErrLimit", err)
	}
}

func TestExecuteConcurrent(t *testing.T) {
	tp, err := Parse("obj", `{{ range $k, $v := .Values.db }}{{ $k }}{{ end }}{{ .Values.pw | base64enc }}`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tp.Execute(context.Background(), values(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 8)
	for i := 0; i < 8; i++ {
		go func() {
			out, err := tp.Execute(context.Background(), values(), Limits{})
			if err != nil {
				done <- err.Error()
				return
			}
			done <- string(out)
		}()
	}
	for i := 0; i < 8; i++ {
		if got := <-done; got != string(want) {
			t.Errorf("concurrent execution = %q, want %q", got, want)
		}
	}
}
