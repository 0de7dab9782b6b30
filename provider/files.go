package provider

import (
	"context"
	"fmt"
	"path"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
)

// renderTemplate renders a template object over values: the rendered
// contents of the class's Vault objects by name (a string each, or for an
// all-keys object a map from key to string). Output, work or loops beyond
// lim are errors wrapping tmpl.ErrLimit.
func renderTemplate(ctx context.Context, obj *config.Object, values map[string]any, lim tmpl.Limits) ([]byte, error) {
	t, err := obj.ParsedTemplate()
	if err != nil {
		return nil, config.Errorf("object %q: %v", obj.ObjectName, err)
	}
	out, err := t.Execute(ctx, values, lim)
	if err != nil {
		// text/template's messages read "template: NAME:LINE:COL: ..."
		// with NAME the objectName; they carry no values (see tmpl).
		return nil, &RenderError{Object: obj.ObjectName, Err: err}
	}
	return out, nil
}

// minTemplateWork is the least work budget one template gets however many
// a class holds.
const minTemplateWork = 256 << 10

// templateBudget shares one Mount's template limits between its templates:
// their outputs together may fill the response, and their work together is
// about tmpl's per-execution default, so a class of many templates costs no
// more than one large one (each still gets minTemplateWork).
type templateBudget struct {
	output  int
	perWork int
}

func newTemplateBudget(templates, maxResponseBytes int) *templateBudget {
	per := tmpl.DefaultMaxWork
	if templates > 1 {
		per = max(tmpl.DefaultMaxWork/templates, minTemplateWork)
	}
	return &templateBudget{output: maxResponseBytes, perWork: per}
}

// limits are the next template's limits.
func (b *templateBudget) limits() tmpl.Limits {
	// tmpl reads a zero MaxOutput as its default: 1 byte stands for none
	// left (the response size check catches that last byte).
	return tmpl.Limits{MaxOutput: max(b.output, 1), MaxWork: b.perWork}
}

// spend charges a rendered template's output.
func (b *templateBudget) spend(n int) { b.output -= n }

// checkFiles refuses a mount in which two objects write the same path, or
// one needs a path to be a file and another a directory. ParseObjects
// refused what the objectNames alone show; what is left involves the keys
// of all-keys objects, known only from Vault's answers. files[i] are
// objs[i]'s files (none for objects not written).
func checkFiles(objs []config.Object, files [][]file) error {
	type owner struct {
		obj int
		f   *file
	}
	byPath := make(map[string]owner)
	describe := func(o owner) string {
		if o.f.key != "" {
			return fmt.Sprintf("object %q (key %q)", objs[o.obj].ObjectName, o.f.key)
		}
		return fmt.Sprintf("object %q", objs[o.obj].ObjectName)
	}
	for i := range files {
		for j := range files[i] {
			f := &files[i][j]
			if prev, dup := byPath[f.path]; dup {
				return &RenderError{Object: objs[i].ObjectName, Err: fmt.Errorf("file %q is written by %s and by %s: rename one of them", f.path, describe(prev), describe(owner{i, f}))}
			}
			byPath[f.path] = owner{i, f}
		}
	}
	for i := range files {
		for j := range files[i] {
			f := &files[i][j]
			for dir := path.Dir(f.path); dir != "."; dir = path.Dir(dir) {
				if o, clash := byPath[dir]; clash {
					return &RenderError{Object: objs[o.obj].ObjectName, Err: fmt.Errorf("%s writes the file %q, but %s needs it to be a directory for %q: rename one of them", describe(o), dir, describe(owner{i, f}), f.path)}
				}
			}
		}
	}
	return nil
}
