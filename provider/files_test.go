package provider

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
)

// Templates share one Mount's output budget: many templates each rendering
// just under the response limit are refused once their sum passes it, before
// the next one renders, instead of building templates × limit bytes.
func TestMountTemplatesShareOneOutputBudget(t *testing.T) {
	v := newVault(t)
	v.PutKV2("secret/data/big", map[string]any{"v": strings.Repeat("x", 64<<10)})
	p := newProvider(v)
	p.MaxResponseBytes = 1 << 20
	var objects strings.Builder
	objects.WriteString("- objectName: big\n  secretPath: secret/data/big\n  secretKey: v\n  writeFile: false\n")
	// Each template renders 15 × 64 KiB = 960 KiB, under the 1 MiB limit
	// alone; 40 of them would be ~38 MiB.
	for i := range 40 {
		fmt.Fprintf(&objects, "- objectName: t%d\n  template: '%s'\n", i, strings.Repeat("{{ .Values.big }}", 15))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := p.Mount(context.Background(), mountRequest(t, objects.String(), true))
	runtime.ReadMemStats(&after)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Mount = %v, want ResourceExhausted", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("the Mount allocated %d MiB; the shared budget should stop it near 2 MiB", grew>>20)
	}
}

func TestTemplateBudget(t *testing.T) {
	b := newTemplateBudget(1, 100)
	if l := b.limits(); l.MaxOutput != 100 || l.MaxWork != tmpl.DefaultMaxWork {
		t.Errorf("one template: %+v", l)
	}
	b.spend(60)
	if l := b.limits(); l.MaxOutput != 40 {
		t.Errorf("after 60 bytes: %+v, want MaxOutput 40", l)
	}
	b.spend(40)
	if l := b.limits(); l.MaxOutput != 1 {
		t.Errorf("spent: %+v, want MaxOutput 1 (tmpl reads 0 as its default)", l)
	}
	many := newTemplateBudget(10_000, 100)
	if l := many.limits(); l.MaxWork != minTemplateWork {
		t.Errorf("10,000 templates: %+v, want MaxWork %d", l, minTemplateWork)
	}
	few := newTemplateBudget(4, 100)
	if l := few.limits(); l.MaxWork != tmpl.DefaultMaxWork/4 {
		t.Errorf("4 templates: %+v, want MaxWork %d", l, tmpl.DefaultMaxWork/4)
	}
}
