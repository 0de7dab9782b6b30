package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
)

// Value encodings an object may declare; the value is decoded before it is
// written.
const (
	EncodingUTF8   = "utf-8"
	EncodingBase64 = "base64"
	EncodingHex    = "hex"
)

// AllKeys is the secretKey that writes every key of the secret, each as the
// file objectName/<key>.
const AllKeys = "*"

// maxNameElement and maxNameLength are the driver's limits on file paths
// (pkg/util/fileutil): a path element and the whole path, in bytes.
const (
	maxNameElement = 255
	maxNameLength  = 4096
)

// Object is one entry of the "objects" parameter: a file to write, and the
// Vault request that produces its contents. With secretKey "*" it is a
// directory of one file per key of the secret; with a template, a file
// rendered from the other objects' values instead of a Vault request; with
// writeFile: false, only a value for templates.
type Object struct {
	// ObjectName is the file path relative to the mount; also the object's
	// ID in ObjectVersion.
	ObjectName string `yaml:"objectName" json:"objectName"`
	SecretPath string `yaml:"secretPath" json:"secretPath"`
	SecretKey  string `yaml:"secretKey,omitempty" json:"secretKey,omitempty"`
	Method     string `yaml:"method,omitempty" json:"method,omitempty"`
	// SecretArgs is the JSON body of a PUT/POST, or query parameters of a GET.
	SecretArgs     SecretArgs `yaml:"secretArgs,omitempty" json:"secretArgs,omitempty"`
	FilePermission FileMode   `yaml:"filePermission,omitempty" json:"filePermission,omitempty"`
	Encoding       string     `yaml:"encoding,omitempty" json:"encoding,omitempty"`
	// Template makes the object a file rendered (Go text/template) from the
	// values of the class's other objects, instead of a Vault read.
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// WriteFile false keeps the object out of the mount: it is read from
	// Vault only for templates to use. Unset means true.
	WriteFile *bool `yaml:"writeFile,omitempty" json:"writeFile,omitempty"`

	// parsed is Template, parsed and checked by ParseObjects.
	parsed *tmpl.Template
}

// IsAllKeys reports whether the object writes every key of its secret
// (secretKey "*").
func (o *Object) IsAllKeys() bool { return o.SecretKey == AllKeys }

// IsTemplate reports whether the object is rendered from a template.
func (o *Object) IsTemplate() bool { return o.Template != "" }

// Written reports whether the object's files are part of the mount.
func (o *Object) Written() bool { return o.WriteFile == nil || *o.WriteFile }

// ParsedTemplate returns the object's parsed template, parsing it if
// ParseObjects did not (an Object built by hand).
func (o *Object) ParsedTemplate() (*tmpl.Template, error) {
	if !o.IsTemplate() {
		return nil, fmt.Errorf("object %q has no template", o.ObjectName)
	}
	if o.parsed != nil {
		return o.parsed, nil
	}
	return tmpl.Parse(o.ObjectName, o.Template)
}

// SecretArgs are an object's secretArgs. Scalars keep the type YAML gives
// them, except timestamps: an unquoted 2030-01-01 is sent as written, not as
// a Go time (which a GET would send JSON-quoted and both would rewrite).
type SecretArgs map[string]any

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *SecretArgs) UnmarshalYAML(n *yaml.Node) error {
	budget := maxArgNodes
	v, err := argValue(n, 0, &budget)
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("secretArgs must be a map of argument names to values")
	}
	*a = m
	return nil
}

// Bounds on secretArgs, which YAML aliases could otherwise make cyclic or
// exponentially large.
const (
	maxArgDepth = 32
	maxArgNodes = 10000
)

func argValue(n *yaml.Node, depth int, budget *int) (any, error) {
	*budget--
	if depth > maxArgDepth || *budget < 0 {
		return nil, fmt.Errorf("secretArgs is nested deeper than %d levels or larger than %d values", maxArgDepth, maxArgNodes)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return argValue(n.Alias, depth+1, budget)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			var k string
			if err := n.Content[i].Decode(&k); err != nil {
				return nil, fmt.Errorf("secretArgs keys must be strings: %v", err)
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("secretArgs key %q appears twice", k)
			}
			v, err := argValue(n.Content[i+1], depth+1, budget)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := argValue(c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		if n.Tag == "!!timestamp" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return v, nil
	default:
		return nil, fmt.Errorf("secretArgs holds an unsupported YAML value")
	}
}

// FileMode is an object's filePermission. YAML integers are taken as written
// (0600 and 0o600 are octal in YAML); strings are read as octal ("0600",
// "600"). Zero means "not set".
type FileMode os.FileMode

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("filePermission must be an octal number like 0600")
	}
	var v uint64
	var err error
	switch n.Tag {
	case "!!int":
		v, err = strconv.ParseUint(strings.Replace(n.Value, "0o", "0", 1), 0, 32)
	case "!!str":
		v, err = strconv.ParseUint(strings.TrimPrefix(n.Value, "0o"), 8, 32)
	default:
		err = errors.New("not a number")
	}
	if err != nil {
		return fmt.Errorf("filePermission %q is not an octal file mode like 0600", n.Value)
	}
	if v == 0 || v > 0o777 {
		hint := ""
		if n.Tag == "!!int" && !strings.HasPrefix(n.Value, "0") {
			hint = fmt.Sprintf(" (YAML reads %s as decimal: write it with a leading zero, e.g. 0%s)", n.Value, n.Value)
		}
		return fmt.Errorf("filePermission %s is not a file mode between 0001 and 0777%s", n.Value, hint)
	}
	*m = FileMode(v)
	return nil
}

// Mode returns the file mode for the object, def when it has none.
func (o *Object) Mode(def os.FileMode) os.FileMode {
	if o.FilePermission != 0 {
		return os.FileMode(o.FilePermission)
	}
	return def
}

// ParseObjects parses and validates the "objects" YAML list.
func ParseObjects(s string) ([]Object, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errorf("parameter %q is empty: list at least one object with objectName and secretPath", ParamObjects)
	}
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	var objs []Object
	if err := dec.Decode(&objs); err != nil {
		msg := yamlError(err)
		if strings.Contains(s, "*") && strings.Contains(msg, "did not find expected alphabetic or numeric character") {
			// secretKey: * is a YAML alias, not the string "*".
			msg += ` (an unquoted * starts a YAML alias: write secretKey: "*")`
		}
		return nil, errorf("parameter %q is not a valid YAML list of objects: %s", ParamObjects, msg)
	}
	// A second document would be silently ignored; refuse it instead.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errorf("parameter %q holds more than one YAML document: keep a single list", ParamObjects)
	}
	if len(objs) == 0 {
		return nil, errorf("parameter %q lists no objects", ParamObjects)
	}

	seen := make(map[string]int, len(objs))
	for i := range objs {
		o := &objs[i]
		if err := o.normalize(); err != nil {
			if o.ObjectName == "" {
				return nil, errorf("object #%d: %v", i+1, err)
			}
			return nil, errorf("object %q: %v", o.ObjectName, err)
		}
		if j, dup := seen[o.ObjectName]; dup {
			return nil, errorf("objects #%d and #%d both have objectName %q: each object needs its own file name", j+1, i+1, o.ObjectName)
		}
		seen[o.ObjectName] = i
	}
	if err := checkFileClashes(objs); err != nil {
		return nil, err
	}
	if err := checkTemplates(objs, seen); err != nil {
		return nil, err
	}
	return objs, nil
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

func yamlError(err error) string {
	// yaml.v3 prefixes "yaml: " and names Go types; keep what helps a user.
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "in type config.Object", "")
	msg = strings.ReplaceAll(msg, "config.FileMode", "filePermission")
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	if strings.Contains(msg, "not found") {
		msg += " (object fields are objectName, secretPath, secretKey, method, secretArgs, filePermission, encoding, template, writeFile)"
	}
	return msg
}

func (o *Object) normalize() error {
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
		return o.normalizeTemplate()
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
		if _, err := json.Marshal(o.SecretArgs); err != nil {
			return fmt.Errorf("secretArgs cannot be sent as JSON: %v", err)
		}
	}
	if !o.Written() && o.FilePermission != 0 {
		return errors.New("filePermission has no effect with writeFile: false: remove one of them")
	}
	return nil
}

// normalizeTemplate checks a template object: it reads nothing from Vault
// itself, so the fields of a Vault read are mistakes.
func (o *Object) normalizeTemplate() error {
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

// Request is the Vault call an object needs. Objects with equal Keys share
// one call in a Mount, so that e.g. a username and a password read from one
// database/creds path belong to the same credential.
type Request struct {
	Method string
	// Path is the API path below /v1/, without query.
	Path  string
	Query url.Values
	// Body is the JSON body for PUT/POST, nil otherwise.
	Body []byte
}

// Key identifies a request: method, path, query and body.
func (r Request) Key() string {
	return r.Method + " " + r.Path + "?" + r.Query.Encode() + "\x00" + string(r.Body)
}

// Request returns the Vault request for the object.
func (o *Object) Request() (Request, error) {
	if o.IsTemplate() {
		return Request{}, errors.New("a template object makes no Vault request")
	}
	r := Request{Method: o.Method}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	p, err := o.splitPath()
	if err != nil {
		return Request{}, err
	}
	r.Path, r.Query = p.path, p.query
	if o.SecretArgs != nil {
		if r.Method == http.MethodGet {
			if r.Query == nil {
				r.Query = url.Values{}
			}
			keys := make([]string, 0, len(o.SecretArgs))
			for k := range o.SecretArgs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				vals, err := queryValues(o.SecretArgs[k])
				if err != nil {
					return Request{}, fmt.Errorf("secretArgs %q: %v", k, err)
				}
				r.Query[k] = append(r.Query[k], vals...)
			}
		} else {
			// encoding/json sorts map keys, so equal args give equal bodies.
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(o.SecretArgs); err != nil {
				return Request{}, fmt.Errorf("secretArgs cannot be sent as JSON: %v", err)
			}
			r.Body = bytes.TrimRight(buf.Bytes(), "\n")
		}
	}
	return r, nil
}

type splitPath struct {
	path  string
	query url.Values
}

func (o *Object) splitPath() (splitPath, error) {
	p := strings.TrimSpace(o.SecretPath)
	var q url.Values
	if i := strings.IndexByte(p, '?'); i >= 0 {
		var err error
		if q, err = url.ParseQuery(p[i+1:]); err != nil {
			// The query may carry values meant for Vault only: name none.
			return splitPath{}, fmt.Errorf("secretPath %q has a query that does not parse (values not shown)", shownPath(o.SecretPath))
		}
		p = p[:i]
	}
	p = strings.TrimLeft(p, "/")
	p = strings.TrimPrefix(p, "v1/")
	p = strings.Trim(p, "/")
	if p == "" {
		return splitPath{}, fmt.Errorf("secretPath %q names no Vault path", shownPath(o.SecretPath))
	}
	if strings.ContainsAny(p, "\x00#") {
		return splitPath{}, fmt.Errorf("secretPath %q contains a character Vault paths cannot have", shownPath(o.SecretPath))
	}
	// The Vault client joins paths with path.Join, which would resolve
	// "secret/data/../../sys/x" to another API silently: refuse such paths.
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." || seg == "" {
			return splitPath{}, fmt.Errorf("secretPath %q has an empty, \".\" or \"..\" segment", shownPath(o.SecretPath))
		}
	}
	return splitPath{path: p, query: q}, nil
}

// shownPath is a secretPath fit for messages: the path, without its query or
// fragment, whose values may be secret arguments.
func shownPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i] + "?…"
	}
	return p
}

// queryValues renders a secretArgs value as query parameter values: scalars
// as text, lists as repeated parameters, objects as JSON.
func queryValues(v any) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return []string{""}, nil
	case string:
		return []string{t}, nil
	case bool:
		return []string{strconv.FormatBool(t)}, nil
	case int:
		return []string{strconv.Itoa(t)}, nil
	case int64:
		return []string{strconv.FormatInt(t, 10)}, nil
	case uint64:
		return []string{strconv.FormatUint(t, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(t, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range t {
			vs, err := queryValues(e)
			if err != nil {
				return nil, err
			}
			out = append(out, vs...)
		}
		return out, nil
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		return []string{string(b)}, nil
	}
}
