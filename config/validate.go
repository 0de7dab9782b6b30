package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
)

// maxNameElement and maxNameLength are the driver's limits on file paths
// (pkg/util/fileutil): a path element and the whole path, in bytes.
const (
	maxNameElement = 255
	maxNameLength  = 4096
)

// normalize checks and normalizes o, charging its template and secretArgs
// to b before they are parsed or kept.
func (o *Object) normalize(b *budget) error {
	if o.ObjectName == "" {
		return errors.New("objectName is empty: name the file to write")
	}
	if err := ValidateFileName(o.ObjectName); err != nil {
		return err
	}
	if o.WriteFile != nil && *o.WriteFile {
		// writeFile: true is the default; drop it so the object's version
		// (its configuration is part of it) does not depend on spelling it.
		o.WriteFile = nil
	}
	if o.IsTemplate() {
		return o.normalizeTemplate(b)
	}
	if strings.TrimSpace(o.SecretPath) == "" {
		return errors.New("secretPath is empty: give the Vault path to read, e.g. secret/data/app (or a template)")
	}
	if _, err := o.splitPath(); err != nil {
		return err
	}
	o.Method = strings.ToUpper(strings.TrimSpace(o.Method))
	switch o.Method {
	case "":
		o.Method = http.MethodGet
	case http.MethodGet, http.MethodPut, http.MethodPost:
	default:
		return fmt.Errorf("method %q is not supported: use GET, PUT or POST", o.Method)
	}
	switch strings.ToLower(o.Encoding) {
	case "", "utf-8", "utf8":
		o.Encoding = ""
	case EncodingBase64:
		o.Encoding = EncodingBase64
	case EncodingHex:
		o.Encoding = EncodingHex
	default:
		return fmt.Errorf("encoding %q is not supported: use utf-8, base64 or hex", o.Encoding)
	}
	if o.SecretArgs != nil {
		// No larger than the YAML that spells it (no aliases), give or
		// take JSON's escapes.
		body, err := json.Marshal(o.SecretArgs)
		if err != nil {
			return fmt.Errorf("secretArgs cannot be sent as JSON: %v", err)
		}
		if err := b.secretArgs(len(body)); err != nil {
			return err
		}
	}
	if !o.Written() && o.FilePermission != 0 {
		return errors.New("filePermission has no effect with writeFile: false: remove one of them")
	}
	return nil
}

// normalizeTemplate checks a template object: it reads nothing from Vault
// itself, so the fields of a Vault read are mistakes.
func (o *Object) normalizeTemplate(b *budget) error {
	var bad []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"secretPath", o.SecretPath != ""},
		{"secretKey", o.SecretKey != ""},
		{"method", o.Method != ""},
		{"secretArgs", o.SecretArgs != nil},
		{"encoding", o.Encoding != ""},
	} {
		if f.set {
			bad = append(bad, f.name)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("an object with a template cannot have %s: a template reads no Vault path itself; read the secret in its own object (writeFile: false keeps it out of the mount) and use it as .Values.NAME (base64dec decodes)", strings.Join(bad, ", "))
	}
	if !o.Written() {
		return errors.New("writeFile: false on a template would render it for nothing: templates cannot use other templates")
	}
	if err := b.template(o); err != nil {
		return err
	}
	t, err := tmpl.Parse(o.ObjectName, o.Template)
	if err != nil {
		return err
	}
	o.parsed = t
	return nil
}

// ValidateFileName applies the driver's rules for file paths in a Mount
// response, plus cleanliness, so that a name the driver would refuse after
// Vault was read is refused before.
func ValidateFileName(name string) error {
	switch {
	case name == "":
		return errors.New("file name is empty")
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q contains a NUL byte", name)
	case path.IsAbs(name):
		return fmt.Errorf("file name %q must be relative to the mount, not absolute", name)
	case len(name) > maxNameLength:
		return fmt.Errorf("file name is %d bytes long; the driver allows %d", len(name), maxNameLength)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return fmt.Errorf("file name %q must not contain \"..\"", name)
		}
		if len(el) > maxNameElement {
			return fmt.Errorf("file name element %.20q... is %d bytes long; the driver allows %d", el, len(el), maxNameElement)
		}
	}
	if path.Clean(name) != name || name == "." {
		return fmt.Errorf("file name %q is not clean (no empty, \".\" or trailing elements): use %q", name, path.Clean(name))
	}
	// The driver's atomic writer keeps its own "..data" links at the top level.
	if strings.HasPrefix(name, "..") {
		return fmt.Errorf("file name %q must not start with \"..\"", name)
	}
	return nil
}

// checkFileClashes refuses written objects that need a path to be a file
// and a directory at once: "a" and "a/b". An all-keys object is a directory
// that other objects may add files to; whether one of its keys clashes with
// them is known only once Vault has answered (the provider checks).
func checkFileClashes(objs []Object) error {
	files := make(map[string]bool, len(objs))
	for i := range objs {
		if o := &objs[i]; o.Written() {
			files[o.ObjectName] = !o.IsAllKeys()
		}
	}
	for i := range objs {
		o := &objs[i]
		if !o.Written() {
			continue
		}
		// Every parent is a prefix ending before a '/': substrings, so the
		// check is linear in the name's length however deep it is.
		name := o.ObjectName
		for j := 0; j < len(name); j++ {
			if name[j] != '/' {
				continue
			}
			if dir := name[:j]; files[dir] {
				return errorf("object %q is a file, but object %q needs it to be a directory: rename one of them", dir, name)
			}
		}
	}
	return nil
}

// checkTemplates checks what templates use: objects of this class that
// read Vault (templates cannot use templates, so no cycle can form), and
// that every object kept out of the mount is there for a template.
func checkTemplates(objs []Object, index map[string]int) error {
	var templates, inputs []string
	used := map[string]bool{}
	dynamic := false
	for i := range objs {
		if !objs[i].IsTemplate() {
			inputs = append(inputs, objs[i].ObjectName)
		}
	}
	for i := range objs {
		o := &objs[i]
		if !o.IsTemplate() {
			continue
		}
		templates = append(templates, o.ObjectName)
		dynamic = dynamic || o.parsed.Dynamic()
		for _, ref := range o.parsed.Refs() {
			j, ok := index[ref.Object]
			switch {
			case !ok:
				avail := "none: every object is a template"
				if len(inputs) > 0 {
					avail = strings.Join(inputs, ", ")
				}
				return errorf("object %q: template: %s: uses object %q, which is not in this SecretProviderClass (objects it can use: %s)", o.ObjectName, ref.Pos, ref.Object, avail)
			case objs[j].IsTemplate():
				return errorf("object %q: template: %s: uses object %q, which is a template: templates can use only objects read from Vault", o.ObjectName, ref.Pos, ref.Object)
			}
			used[ref.Object] = true
		}
	}
	for i := range objs {
		o := &objs[i]
		if o.Written() || used[o.ObjectName] {
			continue
		}
		if len(templates) == 0 {
			return errorf("object %q has writeFile: false, but no object has a template: it would be read from Vault and never used", o.ObjectName)
		}
		if !dynamic {
			return errorf("object %q has writeFile: false, but no template uses it (templates: %s): it would be read from Vault and never used", o.ObjectName, strings.Join(templates, ", "))
		}
	}
	return nil
}
