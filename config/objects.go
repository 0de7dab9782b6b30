package config

import (
	"fmt"
	"os"

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
	// derived holds what ParseObjects computed from the object alone
	// (its Request, its VersionConfig). Objects from ParseObjects are
	// read-only: a cached class shares them between Mounts.
	derived *derived
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

// Mode returns the file mode for the object, def when it has none.
func (o *Object) Mode(def os.FileMode) os.FileMode {
	if o.FilePermission != 0 {
		return os.FileMode(o.FilePermission)
	}
	return def
}
