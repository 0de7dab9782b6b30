package config

// Limits bound the work one Mount's attributes can make the provider do
// while parsing them. The provider is one process per node, shared by every
// pod on it, and every attribute is a tenant's input (a pod's
// volumeAttributes override its SecretProviderClass), so each limit is
// checked before anything is allocated in proportion to what it bounds.
// YAML anchors and aliases are refused outright (see ParseObjects), so no
// parsed value is larger than the bytes that spell it.
//
// A zero (or negative) field means its default. Rendered template output is
// bounded when the provider executes templates (internal/tmpl.Limits: each
// template's output by -max-response-bytes, its work and range iterations
// by tmpl's defaults), not here.
type Limits struct {
	// MaxAttributesBytes bounds the Mount's attributes JSON (the class's
	// parameters merged with the pod's volumeAttributes), checked before
	// it is unmarshalled.
	MaxAttributesBytes int
	// MaxObjectsBytes bounds the "objects" parameter, checked before it is
	// parsed. yaml.v3 builds a node tree of up to ~130 bytes per input byte
	// (dense flow collections; ordinary objects ~15) and the text is parsed
	// twice (the alias check, then the strict decode), so this bounds the
	// parse's memory too: at the default, ~280 MiB allocated at worst.
	MaxObjectsBytes int
	// MaxObjects bounds the number of objects, counted in the YAML tree
	// before the objects are decoded.
	MaxObjects int
	// MaxTemplateBytes bounds one template's source, checked before it is
	// parsed (text/template's tree is up to ~90 bytes per source byte).
	MaxTemplateBytes int
	// MaxTemplatesBytes bounds the sources of all templates together.
	MaxTemplatesBytes int
	// MaxSecretArgsBytes bounds all objects' secretArgs together, measured
	// as the JSON sent to Vault (a body, or query parameters for a GET).
	MaxSecretArgsBytes int
}

// Default limits: far above what a SecretProviderClass needs (Kubernetes
// keeps a whole object under 1.5 MiB), far below what hurts a node.
const (
	DefaultMaxAttributesBytes = 2 << 20
	DefaultMaxObjectsBytes    = 1 << 20
	DefaultMaxObjects         = 1000
	DefaultMaxTemplateBytes   = 64 << 10
	DefaultMaxTemplatesBytes  = 256 << 10
	DefaultMaxSecretArgsBytes = 256 << 10
)

// Flags that raise each limit; cmd/provider/app registers them, and each
// refusal names its flag.
const (
	FlagMaxAttributesBytes = "max-attributes-bytes"
	FlagMaxObjectsBytes    = "max-objects-bytes"
	FlagMaxObjects         = "max-objects"
	FlagMaxTemplateBytes   = "max-template-bytes"
	FlagMaxTemplatesBytes  = "max-templates-bytes"
	FlagMaxSecretArgsBytes = "max-secret-args-bytes"
)

// DefaultLimits are the defaults, each field set.
var DefaultLimits = Limits{
	MaxAttributesBytes: DefaultMaxAttributesBytes,
	MaxObjectsBytes:    DefaultMaxObjectsBytes,
	MaxObjects:         DefaultMaxObjects,
	MaxTemplateBytes:   DefaultMaxTemplateBytes,
	MaxTemplatesBytes:  DefaultMaxTemplatesBytes,
	MaxSecretArgsBytes: DefaultMaxSecretArgsBytes,
}

// WithDefaults returns l with every zero or negative field set to its
// default.
func (l Limits) WithDefaults() Limits {
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxAttributesBytes, DefaultMaxAttributesBytes)
	set(&l.MaxObjectsBytes, DefaultMaxObjectsBytes)
	set(&l.MaxObjects, DefaultMaxObjects)
	set(&l.MaxTemplateBytes, DefaultMaxTemplateBytes)
	set(&l.MaxTemplatesBytes, DefaultMaxTemplatesBytes)
	set(&l.MaxSecretArgsBytes, DefaultMaxSecretArgsBytes)
	return l
}

// overLimit is the refusal of one limit: what is too large, by how much,
// and the provider flag that raises the limit.
func overLimit(what string, got int, unit string, limit int, flag string) error {
	return errorf("%s %d %s, over the provider's limit of %d (-%s; the node's administrator can raise it)", what, got, unit, limit, flag)
}

// checkAttributes refuses an attributes JSON over MaxAttributesBytes.
func (l Limits) checkAttributes(attributesJSON string) error {
	if n := len(attributesJSON); n > l.MaxAttributesBytes {
		return overLimit("the Mount's attributes (SecretProviderClass parameters and pod volumeAttributes) are", n, "bytes", l.MaxAttributesBytes, FlagMaxAttributesBytes)
	}
	return nil
}

// budget is what is left of the per-Mount totals while ParseObjects goes
// through the objects.
type budget struct {
	lim       Limits
	templates int // template source bytes so far
	args      int // secretArgs JSON bytes so far
}

// template charges o's template source, before it is parsed.
func (b *budget) template(o *Object) error {
	n := len(o.Template)
	if n > b.lim.MaxTemplateBytes {
		return overLimit("template is", n, "bytes", b.lim.MaxTemplateBytes, FlagMaxTemplateBytes)
	}
	b.templates += n
	if b.templates > b.lim.MaxTemplatesBytes {
		return overLimit("the templates up to this one add up to", b.templates, "bytes", b.lim.MaxTemplatesBytes, FlagMaxTemplatesBytes)
	}
	return nil
}

// secretArgs charges n bytes of an object's secretArgs JSON.
func (b *budget) secretArgs(n int) error {
	b.args += n
	if b.args > b.lim.MaxSecretArgsBytes {
		return overLimit("secretArgs up to this object add up to", b.args, "bytes of JSON", b.lim.MaxSecretArgsBytes, FlagMaxSecretArgsBytes)
	}
	return nil
}
