package tmpl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// allocated runs f and returns the bytes allocated meanwhile: an upper
// bound of how much the heap grew.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxAlloc is what one execution below may allocate: generous next to
// their budgets (a few MiB), far below what they allocated when functions
// built their results whole before charging them (hundreds of MiB).
const maxAlloc = 64 << 20

// Functions that build strings are bounded before they allocate: a few
// kB of template cannot make the provider allocate more than its budget.
func TestBuildersBoundedBeforeAllocating(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	ctl := strings.Repeat("\x01", 8<<20) // 4x in quote, 6x in JSON
	huge := strings.Repeat("y", 32<<20)
	vals := map[string]any{"big": big, "ctl": ctl, "huge": huge}
	tests := []struct {
		name, src string
		lim       Limits
		want      string
	}{
		// issue #11 row 3: 3.6 kB of format, 999999 bytes per verb.
		{"printf width from an argument", `{{ printf "` + strings.Repeat("%[1]*[2]d", 400) + `" 999999 1 }}`, Limits{}, "MaxFormatWidth"},
		{"printf width written", strings.Repeat(`{{ $x := printf "%999999d" 1 }}`, 200), Limits{}, "MaxFormatWidth"},
		{"printf precision from an argument", strings.Repeat(`{{ $x := printf "%.*f" 999999 1.0 }}`, 200), Limits{}, "MaxFormatWidth"},
		{"printf of many verbs over a large value", `{{ printf "` + strings.Repeat("%[1]s", 200) + `" .Values.big }}`, Limits{MaxWork: 8 << 20}, "work budget"},
		{"printf %q of a large value, many times", `{{ printf "` + strings.Repeat("%[1]q", 50) + `" .Values.ctl }}`, Limits{MaxWork: 8 << 20}, "work budget"},
		{"print of many large values", `{{ print` + strings.Repeat(" .Values.big", 200) + ` }}`, Limits{MaxWork: 8 << 20}, "work budget"},
		{"toJSON of escapes", `{{ toJSON .Values.ctl }}`, Limits{MaxWork: 4 << 20}, "work budget"},
		{"toJSON of a map of escapes", `{{ toJSON .Values }}`, Limits{MaxWork: 4 << 20}, "work budget"},
		{"quote of escapes", `{{ quote .Values.ctl }}`, Limits{MaxWork: 4 << 20}, "work budget"},
		{"base64enc of a large value", `{{ base64enc .Values.huge }}`, Limits{MaxWork: 4 << 20}, "work budget"},
		{"chained: quote of printf", `{{ $a := printf "%s%s%s" .Values.ctl .Values.ctl .Values.ctl }}{{ quote $a }}`, Limits{MaxWork: 30 << 20}, "work budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Parse("obj", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			var out []byte
			n := allocated(func() { out, err = tp.Execute(context.Background(), vals, tt.lim) })
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Execute = %d bytes, %v; want ErrLimit naming %q", len(out), err, tt.want)
			}
			if n > maxAlloc {
				t.Errorf("Execute allocated %d MiB, want under %d MiB", n>>20, maxAlloc>>20)
			}
			t.Logf("allocated %d KiB", n>>10)
		})
	}
}

// Under the budget, the same functions give the same results as before.
func TestBuildersResults(t *testing.T) {
	s := strings.Repeat("é\x01\"\\<\u2028\xff", 3000) // several chunks, escapes on the boundaries
	r := newRun(Limits{})
	for name, f := range map[string]func(string) (string, error){"toJSON": func(s string) (string, error) { return r.toJSON(s) }, "quote": r.quote, "base64enc": r.base64enc} {
		got, err := f(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) < len(s) {
			t.Errorf("%s: %d bytes from %d", name, len(got), len(s))
		}
	}
	tp, err := Parse("obj", `{{ toJSON .Values }}|{{ quote .Values.s }}|{{ base64enc .Values.s | base64dec | eq .Values.s }}`)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{"s": s, "m": map[string]string{"k\n": s, "a": ""}, "nil": map[string]string(nil)}
	out, err := tp.Execute(context.Background(), vals, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := jsonOf(t, vals) + "|" + quoteOf(s) + "|true"
	if string(out) != want {
		t.Errorf("output differs from encoding/json and strconv (%d bytes, want %d)", len(out), len(want))
	}
}

// Every function call, builtins included, checks the deadline: a template
// without loops cannot run past it either.
func TestEveryCallChecksTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, src := range []string{
		`{{ eq 1 1 }}`, `{{ ne 1 1 }}`, `{{ lt 1 2 }}`, `{{ le 1 2 }}`, `{{ gt 1 2 }}`, `{{ ge 1 2 }}`,
		`{{ and 1 1 }}`, `{{ or 0 1 }}`, `{{ 1 | and 1 }}`, `{{ 0 | or }}`, `{{ not 1 }}`, `{{ len .Values.pw }}`,
		`{{ index .Values "pw" }}`, `{{ printf "x" }}`, `{{ print 1 }}`, `{{ quote "x" }}`, `{{ trim "x" }}`,
		`{{ toJSON 1 }}`, `{{ base64enc "x" }}`, `{{ base64dec "eA==" }}`, `{{ range .Values.empty }}{{ end }}`,
	} {
		tp, err := Parse("obj", src)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := tp.Execute(ctx, values(), Limits{}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %q, %v; want context.Canceled", src, out, err)
		}
	}
}

// Every function call counts callCost of work, whatever it produces.
func TestEveryCallIsCharged(t *testing.T) {
	const calls = 64
	for _, call := range []string{
		`eq 1 1`, `ne 1 1`, `lt 1 2`, `le 1 2`, `gt 1 2`, `ge 1 2`, `and 1 1`, `or 0 1`, `not 1`, `len .Values.pw`,
		`index .Values "pw"`, `printf ""`, `print`, `quote ""`, `trim ""`, `toJSON ""`, `base64enc ""`, `base64dec ""`,
	} {
		src := strings.Repeat(`{{ $x := `+call+` }}`, calls)
		tp, err := Parse("obj", src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Execute(context.Background(), values(), Limits{MaxWork: calls*callCost - 1}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "work budget") {
			t.Errorf("%d calls of %s under %d of work: %v, want the work budget exceeded", calls, call, calls*callCost-1, err)
		}
		if _, err := tp.Execute(context.Background(), values(), Limits{MaxWork: 1 << 20}); err != nil {
			t.Errorf("%d calls of %s: %v", calls, call, err)
		}
	}
}

// A range iteration counts the length of its body: loops of work that
// calls nothing still run out of budget.
func TestIterationsCharged(t *testing.T) {
	m := map[string]string{}
	for c := 'a'; c <= 'z'; c++ {
		m[string(c)] = "v"
	}
	body := `{{ $x := "` + strings.Repeat("z", 1000) + `" }}`
	tp, err := Parse("obj", `{{ range .Values.m }}`+body+`{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{"m": m}
	if _, err := tp.Execute(context.Background(), vals, Limits{MaxWork: 20 * 1000}); !errors.Is(err, ErrLimit) {
		t.Errorf("26 iterations of a 1 kB body under 20 kB of work: %v, want ErrLimit", err)
	}
	if _, err := tp.Execute(context.Background(), vals, Limits{MaxWork: 30 * 1100}); err != nil {
		t.Errorf("26 iterations of a 1 kB body under 33 kB of work: %v", err)
	}
}

// issue #11 row 12: comparisons of long strings, no loop, stop at the
// deadline (they did not check it: a 100 ms deadline ran to a second).
func TestComparisonsStopAtDeadline(t *testing.T) {
	a, b := strings.Repeat("x", 1<<20), strings.Repeat("x", 1<<20)
	// 2000 comparisons of 1 MiB: seconds of memory reads.
	tp, err := Parse("obj", strings.Repeat(`{{ $x := eq .Values.a .Values.b }}`, 2000))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = tp.Execute(ctx, map[string]any{"a": a, "b": b}, Limits{MaxWork: 1 << 50})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want the deadline", err)
	}
}

func jsonOf(t *testing.T, v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func quoteOf(s string) string { return strconv.Quote(s) }
