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
