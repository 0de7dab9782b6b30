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
// Execution errors never carry secret values: they keep text/template's
// "template: NAME:LINE:COL:" and a reason naming template source, types and
// map keys; every function here reports kinds and key names only, and
// prints no key computed at run time (see errors.go).
package tmpl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// Limits bound one execution.
type Limits struct {
	// MaxOutput bounds the rendered bytes.
	MaxOutput int
	// MaxWork bounds the work of an execution, counted in bytes: each
	// function call counts callCost, each range iteration the length of
	// its body's source, and each function its output (toJSON, base64enc,
	// printf, ...), charged as it is built.
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
	// literals are the string constants in the source.
	literals map[string]bool
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
	tmpl := &Template{t: t, literals: map[string]bool{}}
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
// records the objects named and the string constants, and rewrites the
// tree so that ranges and and/or are charged (see funcs.go's names).
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

// The walk returns the size of what it walked, about its length in the
// source, for guardRange: computed in the one walk, where String() at each
// range would take time quadratic in the nesting.

func (c *checker) list(l *parse.ListNode) int {
	if l == nil {
		return 0
	}
	size := 0
	for _, n := range l.Nodes {
		size += c.node(n)
	}
	return size
}

func (c *checker) node(n parse.Node) int {
	switch n := n.(type) {
	case *parse.ActionNode:
		return 4 + c.pipe(n.Pipe)
	case *parse.IfNode:
		return c.branch(&n.BranchNode)
	case *parse.WithNode:
		return c.branch(&n.BranchNode)
	case *parse.RangeNode:
		size := c.pipe(n.Pipe) + 20
		body := c.list(n.List)
		size += body + c.list(n.ElseList)
		c.guardRange(n, body)
		return size
	case *parse.TemplateNode:
		c.failf(n, "{{template}} is not available: a template cannot include another")
	case *parse.ListNode:
		return c.list(n)
	case *parse.TextNode:
		return len(n.Text)
	}
	return 8
}

func (c *checker) branch(b *parse.BranchNode) int {
	return 20 + c.pipe(b.Pipe) + c.list(b.List) + c.list(b.ElseList)
}

func (c *checker) pipe(p *parse.PipeNode) int {
	if p == nil {
		return 0
	}
	size := 0
	for _, v := range p.Decl {
		size += 4 + c.arg(v)
	}
	for i, cmd := range p.Cmds {
		size += 2 + c.command(cmd)
		c.chargeAndOr(cmd, i > 0)
	}
	return size
}

// chargeAndOr rewrites "and A B" into "and true A B" and "or A B" into
// "or false A B": the same values, the same short-circuit, and a call of
// ours that charges and checks the deadline. piped: the command receives
// the previous command's value as its last argument. A bare {{and}} is
// left to fail as it does.
func (c *checker) chargeAndOr(cmd *parse.CommandNode, piped bool) {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok || (len(cmd.Args) < 2 && !piped) {
		return
	}
	var name string
	switch id.Ident {
	case "and":
		name = andTick
	case "or":
		name = orTick
	default:
		return
	}
	t := parse.NewIdentifier(name).SetPos(id.Pos).SetTree(c.t.Tree)
	cmd.Args = append([]parse.Node{id, t}, cmd.Args[1:]...)
}

func (c *checker) command(cmd *parse.CommandNode) int {
	args := cmd.Args
	size := len(args)
	// index .Values "name" names an object; index .Values $x does not.
	if len(args) >= 3 {
		if id, ok := args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && isValues(args[1]) {
			if s, ok := args[2].(*parse.StringNode); ok {
				c.ref(args[2], s.Text)
			} else {
				c.tmpl.dynamic = true
			}
			size += c.arg(args[0]) + len(ValuesField) + 2
			for _, a := range args[2:] {
				size += c.arg(a)
			}
			return size
		}
	}
	for _, a := range args {
		size += c.arg(a)
	}
	return size
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

func (c *checker) arg(n parse.Node) int {
	switch n := n.(type) {
	case *parse.IdentifierNode:
		if unavailable[n.Ident] {
			c.failf(n, "function %q is not available in templates (functions: %s)", n.Ident, strings.Join(Functions, ", "))
		}
		return len(n.Ident)
	case *parse.FieldNode:
		c.values(n, n.Ident)
		return identSize(n.Ident)
	case *parse.VariableNode:
		if len(n.Ident) > 0 && n.Ident[0] == "$" {
			c.values(n, n.Ident[1:])
		}
		return identSize(n.Ident)
	case *parse.ChainNode:
		return c.arg(n.Node) + identSize(n.Field)
	case *parse.PipeNode:
		return 2 + c.pipe(n)
	case *parse.StringNode:
		c.tmpl.literals[n.Text] = true
		return len(n.Quoted)
	case *parse.NumberNode:
		return len(n.Text)
	}
	return 4
}

func identSize(ident []string) int {
	size := 0
	for _, id := range ident {
		size += 1 + len(id)
	}
	return size
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
// {{range range (PIPE)}}{{end COST}}BODY{{end}}: the guard checks that PIPE
// is a map of values (not a number, which text/template would count to, nor
// a string, whose error would quote it), and the call at the top of the body
// counts the iteration, charges COST, the size of BODY, and checks the
// deadline.
func (c *checker) guardRange(r *parse.RangeNode, body int) {
	cost := max(1, body)
	orig := r.Pipe
	inner := &parse.PipeNode{NodeType: parse.NodePipe, Pos: orig.Pos, Line: orig.Line, Cmds: orig.Cmds}
	call := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: orig.Pos, Args: []parse.Node{
		parse.NewIdentifier(guard).SetPos(orig.Pos).SetTree(c.t.Tree), inner,
	}}
	r.Pipe = &parse.PipeNode{NodeType: parse.NodePipe, Pos: orig.Pos, Line: orig.Line, IsAssign: orig.IsAssign, Decl: orig.Decl, Cmds: []*parse.CommandNode{call}}
	top := &parse.ActionNode{NodeType: parse.NodeAction, Pos: r.Pos, Line: r.Line, Pipe: &parse.PipeNode{
		NodeType: parse.NodePipe, Pos: r.Pos, Line: r.Line,
		Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: r.Pos, Args: []parse.Node{
			parse.NewIdentifier(tick).SetPos(r.Pos).SetTree(c.t.Tree),
			&parse.NumberNode{NodeType: parse.NodeNumber, Pos: r.Pos, IsInt: true, Int64: int64(cost), Text: strconv.Itoa(cost)},
		}}},
	}}
	if r.List == nil {
		r.List = &parse.ListNode{NodeType: parse.NodeList, Pos: r.Pos}
	}
	r.List.Nodes = append([]parse.Node{top}, r.List.Nodes...)
}

// Execute renders the template over values (object name to value: a string,
// or for an all-keys object a map[string]string).
func (t *Template) Execute(ctx context.Context, values map[string]any, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	r := &run{ctx: ctx, values: values, work: lim.MaxWork, iterations: lim.MaxIterations, lim: lim, literals: t.literals}
	// Each execution binds its own budget; the parse tree is shared.
	c, err := t.t.Clone()
	if err != nil {
		return nil, err
	}
	c.Funcs(r.funcs())
	out := &capped{max: lim.MaxOutput}
	if err := c.Execute(out, map[string]any{ValuesField: values}); err != nil {
		return nil, t.execError(err, values, lim)
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
