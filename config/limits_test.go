package config

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// allocated returns the bytes f allocates (TotalAlloc: an upper bound on
// the heap growth it causes, whatever the collector did meanwhile).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Each limit accepts what is exactly at it and refuses one byte (or
// object) more, with an input error naming what is too large, its size,
// the limit and the flag that raises it.
func TestLimits(t *testing.T) {
	argsJSON := func(m map[string]any) int {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	const read = "- {objectName: a, secretPath: p, secretKey: k}\n"
	tests := []struct {
		name    string
		objects string
		field   func(*Limits) *int
		at      func(attributes string) int // the size of what is limited
		unit    string
		flag    string
	}{
		{
			name:    "attributes JSON",
			objects: read,
			field:   func(l *Limits) *int { return &l.MaxAttributesBytes },
			at:      func(a string) int { return len(a) },
			unit:    "bytes",
			flag:    FlagMaxAttributesBytes,
		},
		{
			name:    "objects parameter",
			objects: read + "# a comment counts too\n",
			field:   func(l *Limits) *int { return &l.MaxObjectsBytes },
			at:      func(string) int { return len(read + "# a comment counts too\n") },
			unit:    "bytes",
			flag:    FlagMaxObjectsBytes,
		},
		{
			name:    "number of objects",
			objects: read + "- {objectName: b, secretPath: p}\n- {objectName: c, secretPath: p}\n",
			field:   func(l *Limits) *int { return &l.MaxObjects },
			at:      func(string) int { return 3 },
			unit:    "objects",
			flag:    FlagMaxObjects,
		},
		{
			name:    "one template",
			objects: read + "- {objectName: t, template: '{{ .Values.a }} and more'}\n",
			field:   func(l *Limits) *int { return &l.MaxTemplateBytes },
			at:      func(string) int { return len("{{ .Values.a }} and more") },
			unit:    "bytes",
			flag:    FlagMaxTemplateBytes,
		},
		{
			name:    "all templates",
			objects: read + "- {objectName: t1, template: '{{ .Values.a }}'}\n- {objectName: t2, template: 'x{{ .Values.a }}x'}\n",
			field:   func(l *Limits) *int { return &l.MaxTemplatesBytes },
			at:      func(string) int { return len("{{ .Values.a }}") + len("x{{ .Values.a }}x") },
			unit:    "bytes",
			flag:    FlagMaxTemplatesBytes,
		},
		{
			name:    "all secretArgs",
			objects: "- {objectName: a, secretPath: p, method: PUT, secretArgs: {k: vvvv, l: [1, 2]}}\n- {objectName: b, secretPath: p, secretArgs: {n: 1}}\n",
			field:   func(l *Limits) *int { return &l.MaxSecretArgsBytes },
			at: func(string) int {
				return argsJSON(map[string]any{"k": "vvvv", "l": []int{1, 2}}) + argsJSON(map[string]any{"n": 1})
			},
			unit: "bytes of JSON",
			flag: FlagMaxSecretArgsBytes,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attrs(t, map[string]string{ParamObjects: tt.objects})
			at := tt.at(a)
			d := testDefaults
			*tt.field(&d.Limits) = at
			if _, err := Parse(a, "null", "420", d); err != nil {
				t.Fatalf("at the limit (%d): %v", at, err)
			}
			*tt.field(&d.Limits) = at - 1
			_, err := Parse(a, "null", "420", d)
			if err == nil {
				t.Fatalf("accepted %d %s over a limit of %d", at, tt.unit, at-1)
			}
			if !IsInputError(err) {
				t.Errorf("error %q (%T) is not an input error", err, err)
			}
			for _, want := range []string{
				fmt.Sprintf(" %d %s, ", at, tt.unit),
				fmt.Sprintf("limit of %d (-%s;", at-1, tt.flag),
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLimitsZeroMeansDefault(t *testing.T) {
	if got := (Limits{}).WithDefaults(); got != DefaultLimits {
		t.Errorf("zero Limits = %+v, want %+v", got, DefaultLimits)
	}
	neg := Limits{MaxAttributesBytes: -1, MaxObjectsBytes: -1, MaxObjects: -1, MaxTemplateBytes: -1, MaxTemplatesBytes: -1, MaxSecretArgsBytes: -1}
	if got := neg.WithDefaults(); got != DefaultLimits {
		t.Errorf("negative Limits = %+v, want %+v", got, DefaultLimits)
	}
	if got := (Limits{MaxObjects: 7}).WithDefaults(); got.MaxObjects != 7 || got.MaxTemplateBytes != DefaultMaxTemplateBytes {
		t.Errorf("a set field is replaced, or an unset one not: %+v", got)
	}
}

// Callers that set no Limits (ParseObjects, a Defaults without Limits)
// get the defaults, at and over each.
func TestDefaultLimitsApply(t *testing.T) {
	objects := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "- {objectName: o%d, secretPath: p}\n", i)
		}
		return b.String()
	}
	padded := func(n int) string {
		s := "- {objectName: a, secretPath: p}\n#"
		return s + strings.Repeat("x", n-len(s))
	}
	template := func(n int) string {
		return "- {objectName: a, secretPath: p, secretKey: k}\n- objectName: t\n  template: '{{ .Values.a }}" + strings.Repeat("x", n-len("{{ .Values.a }}")) + "'\n"
	}
	tests := []struct {
		name     string
		at, over string
		flag     string
	}{
		{"objects", objects(DefaultMaxObjects), objects(DefaultMaxObjects + 1), FlagMaxObjects},
		{"objects bytes", padded(DefaultMaxObjectsBytes), padded(DefaultMaxObjectsBytes + 1), FlagMaxObjectsBytes},
		{"template bytes", template(DefaultMaxTemplateBytes), template(DefaultMaxTemplateBytes + 1), FlagMaxTemplateBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseObjects(tt.at); err != nil {
				t.Errorf("ParseObjects at the default: %v", err)
			}
			if _, err := ParseObjects(tt.over); err == nil || !strings.Contains(err.Error(), "-"+tt.flag) {
				t.Errorf("ParseObjects over the default: %v, want a refusal naming -%s", err, tt.flag)
			}
			d := Defaults{VaultAddress: "https://v:8200", AuthMountPath: "kubernetes"}
			if _, err := Parse(attrs(t, map[string]string{ParamObjects: tt.at}), "null", "420", d); err != nil {
				t.Errorf("Parse at the default: %v", err)
			}
			if _, err := Parse(attrs(t, map[string]string{ParamObjects: tt.over}), "null", "420", d); err == nil || !strings.Contains(err.Error(), "-"+tt.flag) {
				t.Errorf("Parse over the default: %v, want a refusal naming -%s", err, tt.flag)
			}
		})
	}
	t.Run("attributes bytes", func(t *testing.T) {
		// Padded with an attribute the provider does not read.
		pad := func(n int) string {
			base := attrs(t, map[string]string{"pad": ""})
			return attrs(t, map[string]string{"pad": strings.Repeat("x", n-len(base))})
		}
		d := Defaults{VaultAddress: "https://v:8200", AuthMountPath: "kubernetes"}
		if _, err := Parse(pad(DefaultMaxAttributesBytes), "null", "420", d); err != nil {
			t.Errorf("at the default: %v", err)
		}
		if _, err := Parse(pad(DefaultMaxAttributesBytes+1), "null", "420", d); err == nil || !strings.Contains(err.Error(), "-"+FlagMaxAttributesBytes) {
			t.Errorf("over the default: %v, want a refusal naming -%s", err, FlagMaxAttributesBytes)
		}
	})
}

func TestParseObjectsRefusesAnchorsAndAliases(t *testing.T) {
	testParseObjectsErrors(t, []parseErrorCase{
		{"anchored object aliased", "- &o {objectName: a, secretPath: p}\n- *o\n", "YAML anchor &o at line 1"},
		{"anchor alone", "- objectName: &n a\n  secretPath: p\n", "YAML anchor &n at line 1"},
		{"anchor on a key", "- {&k objectName: a, secretPath: p}\n", "YAML anchor &k"},
		{"secretArgs value", "- objectName: a\n  secretPath: p\n  secretArgs:\n    x: &v 1\n    y: *v\n", "YAML anchor &v at line 4"},
		{"merge key", "- objectName: a\n  secretPath: p\n  secretArgs:\n    base: &b {x: 1}\n    more:\n      <<: *b\n", "YAML anchor &b at line 4"},
		{"cyclic", "- {objectName: a, secretPath: p, secretArgs: &x {a: *x}}\n", "YAML anchor &x"},
		{"unquoted * keeps its hint", "- objectName: a\n  secretPath: s\n  secretKey: *\n", `write secretKey: "*"`},
	})
	// Anchors always come before their aliases, so ParseObjects names the
	// anchor; an alias found alone is refused as well.
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("[&a x, *a]"), &n); err != nil {
		t.Fatal(err)
	}
	n.Content[0].Content[0].Anchor = ""
	if err := refuseAliases(&n); err == nil || !strings.Contains(err.Error(), "YAML alias *a at line 1") {
		t.Errorf("refuseAliases = %v, want the alias refused", err)
	}
}

// Merge keys without aliases merge inline maps, and stay as they were.
func TestParseObjectsMergeWithoutAlias(t *testing.T) {
	objs, err := ParseObjects("- {<<: {objectName: a, secretKey: k}, secretPath: p}\n")
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].ObjectName != "a" || objs[0].SecretKey != "k" {
		t.Errorf("merged object %+v", objs[0])
	}
}

// aliasBombs are the inputs of the hostile-tenant audit: before anchors
// and aliases were refused, the first cost ≈2 GiB and the second ≈6 GiB
// of allocation and 45 s, from 115 kB and 310 kB of input.
func aliasBombs() map[string]string {
	var args strings.Builder
	args.WriteString("- objectName: a\n  secretPath: p\n  method: POST\n  secretArgs:\n    s: &s \"" + strings.Repeat("x", 100_000) + "\"\n    l: [")
	for i := 0; i < 4900; i++ {
		if i > 0 {
			args.WriteString(", ")
		}
		args.WriteString("*s")
	}
	args.WriteString("]\n")

	var tmpl strings.Builder
	tmpl.WriteString("- {objectName: a, secretPath: p, secretKey: k}\n- {objectName: t0, template: &t \"" + strings.Repeat("{{ .Values.a }}", 300_000/15) + "\"}\n")
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&tmpl, "- {objectName: t%d, template: *t}\n", i)
	}

	// A billion laughs: 10 levels of 10 aliases to the level below.
	var laughs strings.Builder
	laughs.WriteString("- objectName: a\n  secretPath: p\n  secretArgs:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&laughs, "    l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	return map[string]string{
		"4,900 secretArgs aliases to a 100 kB string": args.String(),
		"a 300 kB template aliased by 300 objects":    tmpl.String(),
		"billion laughs in secretArgs":                laughs.String(),
	}
}

// The audit's alias bombs are refused as input errors, within a small
// fraction of what they used to cost, by ParseObjects and by Parse.
func TestAliasBombsRefusedCheaply(t *testing.T) {
	const ceiling = 64 << 20
	for name, objects := range aliasBombs() {
		t.Run(name, func(t *testing.T) {
			var err error
			a := attrs(t, map[string]string{ParamObjects: objects})
			for _, call := range []struct {
				name string
				f    func()
			}{
				{"ParseObjects", func() { _, err = ParseObjects(objects) }},
				{"Parse", func() { _, err = Parse(a, "null", "420", testDefaults) }},
			} {
				n := allocated(call.f)
				if err == nil || !IsInputError(err) || !strings.Contains(err.Error(), "YAML anchor") {
					t.Errorf("%s(%d bytes) = %v, want an input error refusing the anchor", call.name, len(objects), err)
				}
				if n > ceiling {
					t.Errorf("%s(%d bytes) allocated %d MiB, want at most %d MiB", call.name, len(objects), n>>20, ceiling>>20)
				}
				t.Logf("%s: %d bytes in, %.1f MiB allocated", call.name, len(objects), float64(n)/(1<<20))
			}
		})
	}
}

// yaml.v3's node tree keeps aliases as pointers (its own alias-ratio
// check applies only when decoding into Go values, and not at all into a
// Node), so the tree checkTree builds grows with the input, not with what
// the aliases would expand to. At the default size limit, the densest
// alias list, and the densest YAML at all (parsed twice: for the alias
// check, then strictly), are refused within a bound linear in their size.
func TestParseObjectsLinearAtTheSizeLimit(t *testing.T) {
	const room = DefaultMaxObjectsBytes - 100
	for _, tt := range []struct {
		name    string
		objects string
		err     string
		perByte int
	}{
		{"aliases", "- {objectName: a, secretPath: p, secretArgs: {l: [&a x" + strings.Repeat(",*a", room/3) + "]}}\n", "YAML anchor &a", 256},
		{"flow sequence", "- {objectName: a, secretPath: p, secretArgs: {l: [" + strings.Repeat("a,", room/2) + "]}}\n", "larger than 10000 values", 512},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.objects) > DefaultMaxObjectsBytes {
				t.Fatalf("test input is %d bytes, over the limit", len(tt.objects))
			}
			var err error
			n := allocated(func() { _, err = ParseObjects(tt.objects) })
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ParseObjects = %v, want an error containing %q", err, tt.err)
			}
			if limit := uint64(tt.perByte * len(tt.objects)); n > limit {
				t.Errorf("%d bytes allocated %d MiB, want at most %d MiB (%d per input byte)", len(tt.objects), n>>20, limit>>20, tt.perByte)
			}
			t.Logf("%d bytes in, %.1f MiB allocated (%.0f per byte)", len(tt.objects), float64(n)/(1<<20), float64(n)/float64(len(tt.objects)))
		})
	}
}
