package tmpl

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"text/template"
)

func rv(v any) reflect.Value { return reflect.ValueOf(v) }

// The comparisons, not and len answer as text/template's builtins do, and
// fail where they fail.
func TestCompareMatchesBuiltins(t *testing.T) {
	type point struct{ X int }
	operands := []any{
		nil, 0, 1, -1, int8(-1), int64(1), uint(0), uint(1), uint8(1), 1.5, float32(1.5), 2i, true, false,
		"", "a", "b", "ab", []string{"a"}, map[string]string{"a": "b"}, map[string]any{}, &point{1}, point{1}, (*point)(nil),
	}
	builtin := func(src string, a, b any) (string, bool) {
		tp := template.Must(template.New("b").Parse(src))
		var out strings.Builder
		err := tp.Execute(&out, map[string]any{"A": a, "B": b})
		return out.String(), err == nil
	}
	ours := func(src string, a, b any) (string, bool) {
		tp, err := Parse("o", src)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tp.Execute(context.Background(), map[string]any{"A": a, "B": b}, Limits{})
		return string(out), err == nil
	}
	n := 0
	for _, src := range []string{
		"{{ eq .A .B }}", "{{ eq .A .B .A }}", "{{ ne .A .B }}", "{{ lt .A .B }}", "{{ le .A .B }}", "{{ gt .A .B }}", "{{ ge .A .B }}",
		"{{ not .A }}", "{{ len .A }}", "{{ and .A .B }}", "{{ or .A .B }}", "{{ .B | and .A }}", "{{ .B | or .A }}", "{{ .A | and }}",
	} {
		for _, a := range operands {
			for _, b := range operands {
				wantOut, wantOK := builtin(strings.ReplaceAll(src, ".", "$."), a, b)
				gotOut, gotOK := ours(strings.ReplaceAll(src, ".", "$.Values."), a, b)
				if gotOut != wantOut || gotOK != wantOK {
					t.Errorf("%s with A=%#v B=%#v: got %q (ok %v), text/template %q (ok %v)", src, a, b, gotOut, gotOK, wantOut, wantOK)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing compared")
	}
}

// and and or still short-circuit: the arguments after the deciding one
// are not evaluated (here they would fail).
func TestAndOrShortCircuit(t *testing.T) {
	for src, want := range map[string]string{
		`{{ and 0 (index .Values "nope") }}`:                               "0",
		`{{ or 1 (index .Values "nope") }}`:                                "1",
		`{{ and 1 "" (index .Values "nope") }}`:                            "",
		`{{ or "" .Values.pw }}`:                                           pw,
		`{{ if and .Values.pw (eq .Values.pw "x") }}y{{ else }}n{{ end }}`: "n",
	} {
		tp, err := Parse("obj", src)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tp.Execute(context.Background(), values(), Limits{})
		if err != nil || string(out) != want {
			t.Errorf("%s = %q, %v; want %q", src, out, err, want)
		}
	}
	// {{and}} alone fails as text/template's does.
	tp, err := Parse("obj", "{{ and }}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Execute(context.Background(), values(), Limits{}); err == nil || !strings.Contains(err.Error(), "wrong number of args for and") {
		t.Errorf("{{ and }}: %v, want wrong number of args", err)
	}
}

// eq of two maps: text/template's message would print both, secrets and
// all.
func TestCompareErrorsNameTypes(t *testing.T) {
	r := newRun(Limits{})
	for _, f := range []func() error{
		func() error { _, err := r.eq(rv(values()["db"]), rv(values()["db"])); return err },
		func() error { _, err := r.eq(rv(values()["db"]), rv(values())); return err },
		func() error { _, err := r.eq(rv(values()["db"]), rv([]string{pw})); return err },
		func() error { _, err := r.lt(rv(pw), rv(1)); return err },
		func() error { _, err := r.eq(rv(pw), rv(1)); return err },
		func() error { _, err := r.length(rv(3)); return err },
	} {
		err := f()
		if err == nil {
			t.Fatal("no error")
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q quotes a value", err)
		}
	}
}

// Comparing strings is charged what it may read: the shorter one.
func TestCompareCharged(t *testing.T) {
	a := strings.Repeat("x", 1<<20)
	b := strings.Repeat("x", 1<<20) // equal, not the same memory: == reads it all
	r := newRun(Limits{MaxWork: 8 << 20})
	var err error
	for i := 0; i < 16 && err == nil; i++ {
		_, err = r.eq(rv(a), rv(b))
	}
	if !errors.Is(err, ErrLimit) {
		t.Errorf("16 comparisons of 1 MiB strings under 8 MiB of work: %v, want ErrLimit", err)
	}
	r = newRun(Limits{MaxWork: 8 << 20})
	for i := 0; i < 1000; i++ {
		if _, err := r.lt(rv(a), rv("y")); err != nil {
			t.Fatalf("lt of a long and a short string, %d times: %v", i, err)
		}
	}
}

func ExampleTemplate_Execute_compare() {
	tp, _ := Parse("obj", `{{ if eq (len .Values.db) 2 }}{{ lt .Values.db.username "z" }}{{ end }}`)
	out, err := tp.Execute(context.Background(), values(), Limits{})
	fmt.Println(string(out), err)
	// Output: true <nil>
}
