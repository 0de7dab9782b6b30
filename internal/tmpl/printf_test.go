package tmpl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// newRun is a run as Execute makes it, for calling functions directly.
func newRun(lim Limits) *run {
	lim = lim.withDefaults()
	return &run{ctx: context.Background(), values: values(), work: lim.MaxWork, iterations: lim.MaxIterations, lim: lim}
}

// printfArgs are the kinds of argument a template can pass: strings,
// values' maps, numbers, booleans, nil.
var printfArgs = [][]any{
	nil,
	{"x"},
	{pw},
	{7},
	{-7},
	{3.25},
	{true},
	{nil},
	{map[string]string{"b": "2", "a": "1"}},
	{map[string]any{"db": map[string]string{"k": "v"}, "s": "x\x01"}},
	{5, 2, 3.14159},
	{-5, "ab"},
	{"a", 1, "b", 2},
	{0, 42},
	{int64(4), uint8(2), 9},
	{"\xff\xfe", "é€😀", "\x00\n\u2028"},
	{complex(1, 2), uint(3)},
}

var printfFormats = []string{
	"", "plain", "%", "%%", "%5%", "%!", "%s", "%v", "%d", "%q", "%x", "%X", "% x", "%#x", "%+q", "%#q", "%#v", "%+v",
	"%T", "%t", "%c", "%U", "%e", "%.2f", "%8.3f", "%-8.3f|", "%08.3f", "%+d", "% d", "%05d", "%-05d|", "%x %X",
	"%*d", "%-*d|", "%0*d", "%*s", "%.*s", "%*.*f", "%.*f", "%[1]*[2]d", "%[2]*[1]d", "%[1]d %[1]d", "%[2]v %[1]v",
	"%[0]d", "%[9]d", "%[x]d", "%[1", "%[]d", "%[1]2d", "%[1].2d", "%.[2]*[1]d", "%.3[1]-", "%[1]-", "%5.", "%.",
	"%.d", "%.0d", "%5", "%-", "%d %d %d %d", "%s and more", "%w", "%\xff", "%\xe2\x82", "%é", "%5é", "%[2]*d",
	"%10.4v|", "%-10q|", "%#-8x|", "%3c", "%.1s", "%.10q", "%6.2x", "%v%v%v", "%[3]v %v", "%d%[1]d%d",
	"%!d", "%*", "%.*", "%-*.*x|", "%1000d", "%.1000d", "%1024s", "%1025d",
}

// printf writes what fmt.Sprintf writes, malformed formats included.
func TestPrintfMatchesFmt(t *testing.T) {
	for _, format := range printfFormats {
		for _, args := range printfArgs {
			checkPrintf(t, format, args)
		}
	}
	for _, args := range printfArgs {
		r := newRun(Limits{})
		got, err := r.print(args...)
		if want := fmt.Sprint(args...); err != nil || got != want {
			t.Errorf("print(%#v) = %q, %v; want %q", args, got, err, want)
		}
	}
}

func checkPrintf(t *testing.T, format string, args []any) {
	t.Helper()
	r := newRun(Limits{})
	got, err := r.printf(format, args...)
	if err != nil {
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxFormatWidth") {
			t.Errorf("printf(%q, %#v): %v", format, args, err)
		}
		return
	}
	if want := fmt.Sprintf(format, args...); got != want {
		t.Errorf("printf(%q, %#v) = %q, want %q", format, args, got, want)
	}
}

// Widths and precisions over MaxFormatWidth are refused, written or taken
// from an argument; up to it they work.
func TestPrintfWidthLimit(t *testing.T) {
	for _, tt := range []struct {
		format string
		args   []any
		ok     bool
	}{
		{"%1024d", []any{1}, true},
		{"%1025d", []any{1}, false},
		{"%.1024f", []any{1.0}, true},
		{"%.1025f", []any{1.0}, false},
		{"%*d", []any{-1024, 1}, true},
		{"%*d", []any{1025, 1}, false},
		{"%*d", []any{-1025, 1}, false},
		{"%.*s", []any{999999, "x"}, false},
		{"%[1]*[2]d", []any{999999, 1}, false},
		{"%[2]*[1]d", []any{1, 999999}, false},
		{"%999999d", []any{1}, false},
		// fmt's own bound stops at ten million.
		{"%9999999d", []any{1}, false},
		// Past it fmt writes %!(NOVERB) and allocates nothing; so do we.
		{"%99999999d", []any{1}, true},
	} {
		r := newRun(Limits{})
		out, err := r.printf(tt.format, tt.args...)
		if tt.ok != (err == nil) {
			t.Errorf("printf(%q, %v) = %d bytes, %v; want ok %v", tt.format, tt.args, len(out), err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "over 1024 (MaxFormatWidth)")) {
			t.Errorf("printf(%q): %v, want ErrLimit naming MaxFormatWidth", tt.format, err)
		}
	}
}

// FuzzPrintf: for any format, printf writes what fmt.Sprintf writes, or
// refuses a width or precision over MaxFormatWidth.
//
//	go test -run '^$' -fuzz FuzzPrintf -fuzztime 30s ./internal/tmpl
func FuzzPrintf(f *testing.F) {
	for i, format := range printfFormats {
		f.Add(format, uint8(i))
	}
	f.Fuzz(func(t *testing.T, format string, which uint8) {
		checkPrintf(t, format, printfArgs[int(which)%len(printfArgs)])
	})
}
