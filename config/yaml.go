package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// ParseObjects parses and validates the "objects" YAML list within the
// default Limits.
func ParseObjects(s string) ([]Object, error) {
	return parseObjects(s, DefaultLimits)
}

// parseObjects parses s within lim (every field set). The work is bounded
// before it is done: the size of s, then (on yaml.v3's node tree, which
// keeps an alias as a pointer to its anchor instead of expanding it)
// no anchors or aliases and the number of objects, and only then the
// decoding, in which nothing can be larger than the text that spells it;
// templates and secretArgs are charged before they are parsed or encoded.
func parseObjects(s string, lim Limits) ([]Object, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errorf("parameter %q is empty: list at least one object with objectName and secretPath", ParamObjects)
	}
	if len(s) > lim.MaxObjectsBytes {
		return nil, overLimit(fmt.Sprintf("parameter %q is", ParamObjects), len(s), "bytes", lim.MaxObjectsBytes, FlagMaxObjectsBytes)
	}
	if err := checkTree(s, lim); err != nil {
		return nil, err
	}
	// Decoded again, strictly (yaml.v3 checks known fields only when
	// decoding text, not a node); checkTree made it safe to.
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	var objs []Object
	if err := dec.Decode(&objs); err != nil {
		return nil, decodeError(s, err)
	}
	if len(objs) == 0 {
		return nil, errorf("parameter %q lists no objects", ParamObjects)
	}

	seen := make(map[string]int, len(objs))
	b := &budget{lim: lim}
	for i := range objs {
		o := &objs[i]
		if err := o.normalize(b); err != nil {
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
	for i := range objs {
		objs[i].derive()
	}
	return objs, nil
}

// checkTree parses s into yaml.v3's node tree, which holds no more nodes
// than s has tokens, and refuses what would make decoding it cost more
// than its size: anchors and aliases (a list of aliases to one large
// value is that value many times over, in memory and in every later
// stage), a second document, and more than MaxObjects objects.
func checkTree(s string, lim Limits) error {
	dec := yaml.NewDecoder(strings.NewReader(s))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return decodeError(s, err)
	}
	if err := refuseAliases(&doc); err != nil {
		return err
	}
	// A second document would be silently ignored; refuse it instead.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errorf("parameter %q holds more than one YAML document: keep a single list", ParamObjects)
	}
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.SequenceNode {
		if n := len(doc.Content[0].Content); n > lim.MaxObjects {
			return overLimit(fmt.Sprintf("parameter %q lists", ParamObjects), n, "objects", lim.MaxObjects, FlagMaxObjects)
		}
	}
	return nil
}

// refuseAliases refuses the first anchor or alias in n, depth first.
// Aliases can only point back to anchors, so the walk is a tree walk.
func refuseAliases(n *yaml.Node) error {
	// An explicit stack: the depth of n is the attacker's.
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case n.Kind == yaml.AliasNode:
			return errorf("parameter %q uses the YAML alias *%s at line %d: anchors (&name) and aliases (*name) are not accepted in objects; write each value out where it is used", ParamObjects, n.Value, n.Line)
		case n.Anchor != "":
			return errorf("parameter %q sets the YAML anchor &%s at line %d: anchors (&name) and aliases (*name) are not accepted in objects; write each value out where it is used", ParamObjects, n.Anchor, n.Line)
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
	return nil
}

// decodeError reports a YAML error in the objects parameter s.
func decodeError(s string, err error) error {
	msg := yamlError(err)
	if strings.Contains(s, "*") && strings.Contains(msg, "did not find expected alphabetic or numeric character") {
		// secretKey: * is a YAML alias, not the string "*".
		msg += ` (an unquoted * starts a YAML alias: write secretKey: "*")`
	}
	return errorf("parameter %q is not a valid YAML list of objects: %s", ParamObjects, msg)
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

// Bounds on secretArgs. ParseObjects refuses YAML aliases, which could
// make them cyclic or exponentially large; these bounds stand for any
// other decoder of SecretArgs.
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
