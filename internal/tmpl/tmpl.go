// Package tmpl is the language of template objects: Go text/template over
// the values of a SecretProviderClass's other objects, with a small function
// set that reaches no filesystem, network or environment.
//
// Templates are parsed when the SecretProviderClass is parsed (config), so
// syntax errors, unknown functions and the objects a template names are
// known before Vault is touched; they are executed when a Mount renders
// (provider), with bounded work, output and iterations, so that a pod
// author cannot make the node's provider loop or allocate without end.
//
// Execution errors never carry secret values: the messages text/template
// builds name template source, types and map keys, and every function here
// reports kinds and key names only.
package tmpl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// ValuesField is the field of dot that holds the objects' values:
// {{ .Values.name }}.
const ValuesField = "Values"

// Functions are the functions a template may call, ours and the builtins
// kept, in the order the documentation lists them.
var Functions = []string{
	"toJSON", "base64enc", "base64dec", "quote", "trim",
	"index", "printf", "print", "len",
	"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
}

// unavailable are text/template builtins a template may not call: call
// reaches Go functions, the escapers and println are not needed, and slice
// would make cheap copies of large values in loops.
var unavailable = map[string]bool{"call": true, "html": true, "js": true, "urlquery": true, "println": true, "slice": true}

// guard is the function the parser's output is rewritten to call around
// every range: "range" cannot be called from template source, where it is a
// keyword, so it cannot be called directly.
const guard = "range"

// ErrLimit marks an execution stopped by a Limits bound.
var ErrLimit = errors.New("template limit exceeded")

// Limits bound one execution.
type Limits struct {
	// MaxOutput bounds the rendered bytes.
	MaxOutput int
	// MaxWork bounds the bytes the functions produce in total (toJSON,
	// base64enc, printf, ... each charge their output).
	MaxWork int
	// MaxIterations bounds range iterations in total, nested ones included.
	MaxIterations int
}

// Default limits, used for any zero field.
const (
	DefaultMaxOutput     = 4 << 20
	DefaultMaxWork       = 64 << 20
	DefaultMaxIterations = 100_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.MaxWork <= 0 {
		l.MaxWork = DefaultMaxWork
	}
	if l.MaxIterations <= 0 {
		l.MaxIterations = DefaultMaxIterations
	}
	return l
}

// Ref is an object a template names literally: {{ .Values.NAME }},
// {{ $.Values.NAME }} or {{ index .Values "NAME" }}.
type Ref struct {
	Object string
	// Pos is where, as text/template writes it: "TEMPLATE:LINE:COL".
	Pos string
}

// Template is a parsed, checked template.
type Template struct {
	t    *template.Template
	refs []Ref
	// dynamic: .Values is also used in ways that name no object literally
	// (range .Values, index .Values $name, $v := .Values).
	dynamic bool
}

// Refs returns the objects the template names literally, in source order,
// each once.
func (t *Template) Refs() []Ref { return t.refs }

// Dynamic reports whether the template may use objects it does not name
// literally (e.g. {{ range $name, $v := .Values }}).
func (t *Template) Dynamic() bool { return t.dynamic }

// Parse parses and checks a template. name is the object's name: errors
// read "template: NAME:LINE:COL: ...".
func Parse(name, text string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs((&run{}).funcs()).Parse(text)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "not defined") && strings.Contains(msg, "function") {
			msg += " (functions: " + strings.Join(Functions, ", ") + ")"
		}
		return nil, errors.New(msg)
	}
	// {{define}} and {{block}} add templates: with them a template could
	// call itself, and errors would name templates other than the object.
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("template: %s: {{define}} and {{block}} are not available: write a single template", name)
	}
	tmpl := &Template{t: t}
	c := &checker{t: t, tmpl: tmpl, seen: map[string]bool{}}
	if t.Tree != nil && t.Root != nil {
		c.list(t.Root)
	}
	if c.err != nil {
		return nil, c.err
	}
	return tmpl, nil
}

// checker walks a parsed template: it refuses what is not available,
// records the objects named, and wraps every range in the guard.
type checker struct {
	t    *template.Template
	tmpl *Template
	seen map[string]bool
	err  error
}

func (c *checker) failf(n parse.Node, format string, args ...any) {
	if c.err == nil {
		loc, _ := c.t.ErrorContext(n)
		c.err = fmt.Errorf("template: %s: %s", loc, fmt.Sprintf(format, args...))
	}
}

func (c *checker) ref(n parse.Node, object string) {
	if c.seen[object] {
		return
	}
	c.seen[object] = true
	loc, _ := c.t.ErrorContext(n)
	c.tmpl.refs = append(c.tmpl.refs, Ref{Object: object, Pos: loc})
}

func (c *checker) list(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		c.node(n)
	}
}

func (c *checker) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		c.pipe(n.Pipe)
	case *parse.IfNode:
		c.branch(&n.BranchNode)
	case *parse.WithNode:
		c.branch(&n.BranchNode)
	case *parse.RangeNode:
		c.branch(&n.BranchNode)
		c.guardRange(n)
	case *parse.TemplateNode:
		c.failf(n, "{{template}} is not available: a template cannot include another")
	case *parse.ListNode:
		c.list(n)
	}
}

func (c *checker) branch(b *parse.BranchNode) {
	c.pipe(b.Pipe)
	c.list(b.List)
	c.list(b.ElseList)
}

func (c *checker) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		c.command(cmd)
	}
}

func (c *checker) command(cmd *parse.CommandNode) {
	args := cmd.Args
	// index .Values "name" names an object; index .Values $x does not.
	if len(args) >= 3 {
		if id, ok := args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && isValues(args[1]) {
			if s, ok := args[2].(*parse.StringNode); ok {
				c.ref(args[2], s.Text)
			} else {
				c.tmpl.dynamic = true
			}
			c.arg(args[0])
			for _, a := range args[2:] {
				c.arg(a)
			}
			return
		}
	}
	for _, a := range args {
		c.arg(a)
	}
}

// isValues reports whether n is exactly .Values or $.Values.
func isValues(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.FieldNode:
		return len(n.Ident) == 1 && n.Ident[0] == ValuesField
	case *parse.VariableNode:
		return len(n.Ident) == 2 && n.Ident[0] == "$" && n.Ident[1] == ValuesField
	}
	return false
}

func (c *checker) arg(n parse.Node) {
	switch n := n.(type) {
	case *parse.IdentifierNode:
		if unavailable[n.Ident] {
			c.failf(n, "function %q is not available in templates (functions: %s)", n.Ident, strings.Join(Functions, ", "))
		}
	case *parse.FieldNode:
		c.values(n, n.Ident)
	case *parse.VariableNode:
		if len(n.Ident) > 0 && n.Ident[0] == "$" {
			c.values(n, n.Ident[1:])
		}
	case *parse.ChainNode:
		c.arg(n.Node)
	case *parse.PipeNode:
		c.pipe(n)
	}
}

// values records a field chain from the root: .Values.NAME names NAME, a
// bare .Values names nothing we can know.
func (c *checker) values(n parse.Node, ident []string) {
	if len(ident) == 0 || ident[0] != ValuesField {
		return
	}
	if len(ident) == 1 {
		c.tmpl.dynamic = true
		return
	}
	c.ref(n, ident[1])
}

// guardRange rewrites {{range PIPE}}BODY{{end}} into
// {{range range (PIPE)}}{{range}}BODY{{end}}: the guard checks that PIPE
// is a map of values (not a number, which text/template would count to, nor
// a string, whose error would quote it), and the call at the top of the body
// counts the iteration and checks the deadline.
func (c *checker) guardRange(r *parse.RangeNode) {
	orig := r.Pipe
	inner := &parse.PipeNode{NodeType: parse.NodePipe, Pos: orig.Pos, Line: orig.Line, Cmds: orig.Cmds}
	call := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: orig.Pos, Args: []parse.Node{
		parse.NewIdentifier(guard).SetPos(orig.Pos).SetTree(c.t.Tree), inner,
	}}
	r.Pipe = &parse.PipeNode{NodeType: parse.NodePipe, Pos: orig.Pos, Line: orig.Line, IsAssign: orig.IsAssign, Decl: orig.Decl, Cmds: []*parse.CommandNode{call}}
	tick := &parse.ActionNode{NodeType: parse.NodeAction, Pos: r.Pos, Line: r.Line, Pipe: &parse.PipeNode{
		NodeType: parse.NodePipe, Pos: r.Pos, Line: r.Line,
		Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: r.Pos, Args: []parse.Node{parse.NewIdentifier(guard).SetPos(r.Pos).SetTree(c.t.Tree)}}},
	}}
	if r.List == nil {
		r.List = &parse.ListNode{NodeType: parse.NodeList, Pos: r.Pos}
	}
	r.List.Nodes = append([]parse.Node{tick}, r.List.Nodes...)
}

// Execute renders the template over values (object name to value: a string,
// or for an all-keys object a map[string]string).
func (t *Template) Execute(ctx context.Context, values map[string]any, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	r := &run{ctx: ctx, values: values, work: lim.MaxWork, iterations: lim.MaxIterations, lim: lim}
	// Each execution binds its own budget; the parse tree is shared.
	c, err := t.t.Clone()
	if err != nil {
		return nil, err
	}
	c.Funcs(r.funcs())
	out := &capped{max: lim.MaxOutput}
	if err := c.Execute(out, map[string]any{ValuesField: values}); err != nil {
		if errors.Is(err, errOutput) {
			return nil, fmt.Errorf("template: %s: %w: it renders more than %d bytes", t.t.Name(), ErrLimit, lim.MaxOutput)
		}
		return nil, err
	}
	return out.buf.Bytes(), nil
}

var errOutput = errors.New("output limit")

type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, errOutput
	}
	return c.buf.Write(p)
}

// run is the state of one execution: the budget the functions draw on.
type run struct {
	ctx        context.Context
	values     map[string]any
	work       int
	iterations int
	lim        Limits
}

// charge draws n bytes of work, and checks the deadline.
func (r *run) charge(n int) error {
	if r.ctx != nil {
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	r.work -= n
	if r.work < 0 {
		return fmt.Errorf("%w: its functions produce more than %d bytes", ErrLimit, r.lim.MaxWork)
	}
	return nil
}

// funcs is a fresh function map bound to r.
func (r *run) funcs() template.FuncMap {
	return template.FuncMap{
		"toJSON":    r.toJSON,
		"base64enc": r.base64enc,
		"base64dec": r.base64dec,
		"quote":     r.quote,
		"trim":      r.trim,
		"index":     r.index,
		"printf":    r.printf,
		"print":     r.print,
		guard:       r.rangeGuard,
	}
}

func (r *run) toJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// json's errors name types, not values.
		return "", fmt.Errorf("cannot encode a %s as JSON", describe(v))
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	return s, r.charge(len(s))
}

func (r *run) base64enc(s string) (string, error) {
	out := base64.StdEncoding.EncodeToString([]byte(s))
	return out, r.charge(len(out))
}

func (r *run) base64dec(s string) (string, error) {
	out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		// CorruptInputError gives an offset only; keep it that way.
		return "", fmt.Errorf("the value is not valid base64 (%v)", err)
	}
	return string(out), r.charge(len(out))
}

func (r *run) quote(s string) (string, error) {
	out := strconv.Quote(s)
	return out, r.charge(len(out))
}

func (r *run) trim(s string) (string, error) {
	out := strings.TrimSpace(s)
	return out, r.charge(len(out))
}

func (r *run) printf(format string, args ...any) (string, error) {
	out := fmt.Sprintf(format, args...)
	return out, r.charge(len(out))
}

func (r *run) print(args ...any) (string, error) {
	out := fmt.Sprint(args...)
	return out, r.charge(len(out))
}

// index is text/template's index, stricter: a key missing from a map is an
// error, as it is for {{ .Values.name }} under missingkey=error, rather than
// an empty value.
func (r *run) index(item any, keys ...any) (any, error) {
	if err := r.charge(0); err != nil {
		return nil, err
	}
	for _, k := range keys {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("index keys are object names or secret keys (strings), not a %s", describe(k))
		}
		var present []string
		switch m := item.(type) {
		case map[string]any:
			if v, ok := m[key]; ok {
				item = v
				continue
			}
			present = keysOf(m)
		case map[string]string:
			if v, ok := m[key]; ok {
				item = v
				continue
			}
			present = keysOf(m)
		default:
			return nil, fmt.Errorf("cannot index a %s", describe(item))
		}
		return nil, fmt.Errorf("no entry for key %s (keys present: %s)", r.showKey(key), strings.Join(present, ", "))
	}
	return item, nil
}

// showKey quotes a key for a message unless it is one of the values: a
// value used as a key (index $m .Values.password) must not reach the
// message.
func (r *run) showKey(key string) string {
	for _, v := range r.values {
		switch v := v.(type) {
		case string:
			if v == key {
				return "(a secret value, not shown)"
			}
		case map[string]string:
			for _, s := range v {
				if s == key {
					return "(a secret value, not shown)"
				}
			}
		}
	}
	return strconv.Quote(key)
}

// rangeGuard with one argument checks what a range iterates over; with none
// (at the top of each iteration) it counts the iteration, checks the
// deadline and prints nothing.
func (r *run) rangeGuard(args ...any) (any, error) {
	if len(args) == 0 {
		r.iterations--
		if r.iterations < 0 {
			return nil, fmt.Errorf("%w: more than %d range iterations", ErrLimit, r.lim.MaxIterations)
		}
		return "", r.charge(0)
	}
	switch v := args[0].(type) {
	case map[string]any, map[string]string, nil:
		return v, r.charge(0)
	default:
		return nil, fmt.Errorf("can range over .Values or an all-keys object's map, not over a %s", describe(v))
	}
}

// describe names a value's kind for messages, never its contents.
func describe(v any) string {
	if v == nil {
		return "nil value"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return "string"
	case reflect.Map:
		return "map"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number"
	default:
		return reflect.TypeOf(v).String()
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
