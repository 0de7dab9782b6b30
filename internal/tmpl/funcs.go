package tmpl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"
)

// Names of the functions the parser's output is rewritten to call. Each is
// a keyword, or a word the lexer reads as a constant, so template source
// cannot call it.
const (
	// guard checks what a range iterates over: {{range range (PIPE)}}.
	guard = "range"
	// tick starts each range iteration: {{end COST}}, COST the length of
	// the body.
	tick = "end"
	// andTick and orTick are prepended to the arguments of and and or:
	// and true A B is and A B, or false A B is or A B, and the builtins
	// keep their short-circuit evaluation (a function of ours named and
	// would evaluate every argument).
	andTick = "true"
	orTick  = "false"
)

// chunk is the piece of a string quoted or escaped at a time, so that no
// call allocates more than a few chunks beyond its charged output.
const chunk = 4096

// funcs is a fresh function map bound to r. Every function charges its
// call and checks the deadline before doing anything else.
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
		"len":       r.length,
		"eq":        r.eq,
		"ne":        r.ne,
		"lt":        r.lt,
		"le":        r.le,
		"gt":        r.gt,
		"ge":        r.ge,
		"not":       r.not,
		guard:       r.rangeGuard,
		tick:        r.iteration,
		andTick:     func() (bool, error) { return true, r.call() },
		orTick:      func() (bool, error) { return false, r.call() },
	}
}

func (r *run) toJSON(v any) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	b := &builder{r: r}
	if err := writeJSON(b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeJSON writes what json.Marshal, without HTML escaping, writes for
// v, piece by piece: values are strings, maps of them, and the constants
// and results a template has (numbers, booleans, nil), which are small.
func writeJSON(b *builder, v any) error {
	switch v := v.(type) {
	case string:
		return writeJSONString(b, v)
	case map[string]string:
		if v == nil {
			_, err := b.WriteString("null")
			return err
		}
		return writeJSONMap(b, keysOf(v), func(k string) error { return writeJSONString(b, v[k]) })
	case map[string]any:
		if v == nil {
			_, err := b.WriteString("null")
			return err
		}
		return writeJSONMap(b, keysOf(v), func(k string) error { return writeJSON(b, v[k]) })
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// json's errors name types, not values.
		return fmt.Errorf("cannot encode a %s as JSON", describe(v))
	}
	_, err := b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return err
}

func writeJSONMap(b *builder, keys []string, value func(k string) error) error {
	if _, err := b.WriteString("{"); err != nil {
		return err
	}
	for i, k := range keys {
		if i > 0 {
			if _, err := b.WriteString(","); err != nil {
				return err
			}
		}
		if err := writeJSONString(b, k); err != nil {
			return err
		}
		if _, err := b.WriteString(":"); err != nil {
			return err
		}
		if err := value(k); err != nil {
			return err
		}
	}
	_, err := b.WriteString("}")
	return err
}

// writeJSONString writes s as a JSON string, escaping a chunk at a time
// with encoding/json: its escapes depend on one rune each, and chunks end
// where its decoding of the whole string would step.
func writeJSONString(b *builder, s string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if _, err := b.WriteString(`"`); err != nil {
		return err
	}
	for piece := range chunks(s) {
		if err := b.r.need(len(piece)); err != nil {
			return err
		}
		buf.Reset()
		if err := enc.Encode(piece); err != nil {
			return err
		}
		// "...escaped..."\n
		out := buf.Bytes()
		if _, err := b.Write(out[1 : len(out)-2]); err != nil {
			return err
		}
	}
	_, err := b.WriteString(`"`)
	return err
}

// chunks splits s into pieces of about chunk bytes, each ending at a rune
// boundary as utf8.DecodeRuneInString steps through s (an invalid byte is
// a step of its own).
func chunks(s string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			n := 0
			for n < len(s) && n < chunk {
				_, w := utf8.DecodeRuneInString(s[n:])
				n += w
			}
			if !yield(s[:n]) {
				return
			}
			s = s[n:]
		}
	}
}

func (r *run) base64enc(s string) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	b := &builder{r: r}
	if err := b.grow(base64.StdEncoding.EncodedLen(len(s))); err != nil {
		return "", err
	}
	// Whole groups of three bytes encode alone; only the last piece pads.
	const piece = chunk / 4 * 3
	dst := make([]byte, base64.StdEncoding.EncodedLen(min(piece, len(s))))
	for len(s) > 0 {
		n := min(piece, len(s))
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(dst[:m], []byte(s[:n]))
		if _, err := b.Write(dst[:m]); err != nil {
			return "", err
		}
		s = s[n:]
	}
	return b.String(), nil
}

func (r *run) base64dec(s string) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	// The result is at most this long: charge it before decoding, and
	// give back what the padding and line breaks did not produce.
	most := base64.StdEncoding.DecodedLen(len(s))
	if err := r.charge(most); err != nil {
		return "", err
	}
	out, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// CorruptInputError gives an offset only; keep it that way.
		return "", fmt.Errorf("the value is not valid base64 (%v)", err)
	}
	r.work += most - len(out)
	return string(out), nil
}

func (r *run) quote(s string) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	b := &builder{r: r}
	if err := b.grow(len(s) + 2); err != nil {
		return "", err
	}
	if _, err := b.WriteString(`"`); err != nil {
		return "", err
	}
	// strconv.Quote escapes rune by rune, stepping as chunks do.
	var buf []byte
	for piece := range chunks(s) {
		buf = strconv.AppendQuote(buf[:0], piece)
		if _, err := b.Write(buf[1 : len(buf)-1]); err != nil {
			return "", err
		}
	}
	if _, err := b.WriteString(`"`); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (r *run) trim(s string) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	out := strings.TrimSpace(s)
	return out, r.charge(len(out))
}

// index is text/template's index, stricter: a key missing from a map is an
// error, as it is for {{ .Values.name }} under missingkey=error, rather than
// an empty value.
func (r *run) index(item any, keys ...any) (any, error) {
	if err := r.call(); err != nil {
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
		return nil, fmt.Errorf("no entry for %s (keys present: %s)", r.showKey(key), strings.Join(present, ", "))
	}
	return item, nil
}

// showKey quotes a key the template spells out; a key computed at run time
// (index $m (trim .Values.password)) may be a value and is not shown.
func (r *run) showKey(key string) string {
	if r.literals[key] {
		return "key " + strconv.Quote(key)
	}
	return "the key computed here (not shown: it may be a value)"
}

// rangeGuard checks what a range iterates over: a map of values, not a
// number, which text/template would count to, nor a string, whose error
// would quote it.
func (r *run) rangeGuard(v any) (any, error) {
	if err := r.call(); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case map[string]any, map[string]string, nil:
		return v, nil
	default:
		return nil, fmt.Errorf("can range over .Values or an all-keys object's map, not over a %s", describe(v))
	}
}

// iteration counts an iteration and charges the length of the body it is
// about to run; it prints nothing.
func (r *run) iteration(cost int) (string, error) {
	r.iterations--
	if r.iterations < 0 {
		return "", fmt.Errorf("%w: more than %d range iterations (MaxIterations)", ErrLimit, r.lim.MaxIterations)
	}
	return "", r.charge(cost)
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
