package vault

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/vault/api"
)

// Decoding Vault's answers was the largest share of the provider's own CPU
// in a rotation poll after the HTTP client: encoding/json scans each
// answer twice and decodes it by reflection. Most answers are Vault's
// envelope around a data object of plain strings, numbers and nested
// objects (a KV v2 read: data.data and data.metadata), which fastSecret
// decodes in one pass. Anything it is not sure of — an answer with auth or
// wrap info (logins), an unknown or repeated key, a \u escape, a value not
// valid JSON — it leaves to encoding/json, so the result is always what
// encoding/json (with UseNumber) gives.

// parseSecret is api.ParseSecret of body: the same Secret, numbers as
// json.Number. ParseSecret itself copies the body twice before decoding
// it; an answer without any of the envelope's fields (Vault's raw answers,
// or only errors) goes to it, which knows what to make of those.
func parseSecret(body []byte) (*api.Secret, error) {
	s, ok := fastSecret(body)
	if !ok {
		s = &api.Secret{}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(s); err != nil {
			return nil, err
		}
	}
	if s.RequestID == "" && s.LeaseID == "" && s.LeaseDuration == 0 && !s.Renewable && s.Data == nil &&
		s.Warnings == nil && s.Auth == nil && s.WrapInfo == nil && s.MountType == "" {
		return api.ParseSecret(bytes.NewReader(body))
	}
	return s, nil
}

// maxFastDepth bounds the nesting fastSecret decodes itself.
const maxFastDepth = 64

// fastSecret decodes body as encoding/json would decode it into an
// api.Secret, or reports false when it leaves body to encoding/json.
func fastSecret(body []byte) (*api.Secret, bool) {
	d := fastDecoder{b: body}
	d.ws()
	if !d.eat('{') {
		return nil, false
	}
	s := &api.Secret{}
	var seen uint16
	d.ws()
	if d.eat('}') {
		return s, true
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		var bit uint16
		switch key {
		case "request_id":
			bit, ok = 1<<0, d.optString(&s.RequestID)
		case "lease_id":
			bit, ok = 1<<1, d.optString(&s.LeaseID)
		case "lease_duration":
			bit, ok = 1<<2, d.optInt(&s.LeaseDuration)
		case "renewable":
			bit, ok = 1<<3, d.optBool(&s.Renewable)
		case "data":
			bit = 1 << 4
			if !d.null() {
				var v any
				if v, ok = d.value(1); ok {
					s.Data, ok = v.(map[string]any)
				}
			}
		case "warnings":
			bit, ok = 1<<5, d.optStrings(&s.Warnings)
		case "mount_type":
			bit, ok = 1<<6, d.optString(&s.MountType)
		case "auth":
			bit, ok = 1<<7, d.null() // a login's answer: encoding/json's
		case "wrap_info":
			bit, ok = 1<<8, d.null()
		default:
			// encoding/json ignores unknown keys, but matches known
			// ones without regard to case: not worth repeating.
			return nil, false
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		d.ws()
		if d.eat('}') {
			return s, true
		}
		if !d.eat(',') {
			return nil, false
		}
	}
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *fastDecoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *fastDecoder) null() bool { return d.lit("null") }

func (d *fastDecoder) optString(to *string) bool {
	if d.null() {
		return true
	}
	s, ok := d.str()
	*to = s
	return ok
}

func (d *fastDecoder) optBool(to *bool) bool {
	switch {
	case d.null():
	case d.lit("true"):
		*to = true
	case d.lit("false"):
		*to = false
	default:
		return false
	}
	return true
}

// optInt takes an integer literal that fits an int, as encoding/json puts
// one into an int field.
func (d *fastDecoder) optInt(to *int) bool {
	if d.null() {
		return true
	}
	n, ok := d.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(n, 10, strconv.IntSize)
	if err != nil {
		return false
	}
	*to = int(v)
	return true
}

func (d *fastDecoder) optStrings(to *[]string) bool {
	if d.null() {
		return true
	}
	if !d.eat('[') {
		return false
	}
	out := []string{}
	d.ws()
	if d.eat(']') {
		*to = out
		return true
	}
	for {
		d.ws()
		s, ok := d.str()
		if !ok {
			return false
		}
		out = append(out, s)
		d.ws()
		if d.eat(']') {
			*to = out
			return true
		}
		if !d.eat(',') {
			return false
		}
	}
}

// value decodes any JSON value as encoding/json decodes it into an any:
// objects as map[string]any, arrays as []any, numbers as json.Number.
func (d *fastDecoder) value(depth int) (any, bool) {
	if depth > maxFastDepth || d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		m := map[string]any{}
		d.ws()
		if d.eat('}') {
			return m, true
		}
		for {
			d.ws()
			k, ok := d.key()
			if !ok {
				return nil, false
			}
			if _, dup := m[k]; dup {
				return nil, false
			}
			d.ws()
			if !d.eat(':') {
				return nil, false
			}
			d.ws()
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v
			d.ws()
			if d.eat('}') {
				return m, true
			}
			if !d.eat(',') {
				return nil, false
			}
		}
	case c == '[':
		d.i++
		l := []any{}
		d.ws()
		if d.eat(']') {
			return l, true
		}
		for {
			d.ws()
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			l = append(l, v)
			d.ws()
			if d.eat(']') {
				return l, true
			}
			if !d.eat(',') {
				return nil, false
			}
		}
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	default:
		n, ok := d.number()
		return json.Number(n), ok
	}
}

// number takes a JSON number literal.
func (d *fastDecoder) number() (string, bool) {
	start := d.i
	b := d.b
	digits := func() bool {
		from := d.i
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
		return d.i > from
	}
	d.eat('-')
	switch {
	case d.eat('0'):
	case d.i < len(b) && b[d.i] >= '1' && b[d.i] <= '9':
		digits()
	default:
		return "", false
	}
	if d.eat('.') && !digits() {
		return "", false
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		if !digits() {
			return "", false
		}
	}
	return string(b[start:d.i]), true
}

// key is str for an object's key: the keys of KV v2's envelope, in every
// answer, are not allocated again each time.
func (d *fastDecoder) key() (string, bool) {
	if end := bytes.IndexByte(d.b[min(d.i+1, len(d.b)):], '"'); d.i < len(d.b) && d.b[d.i] == '"' && end >= 0 {
		raw := d.b[d.i+1 : d.i+1+end]
		var k string
		switch string(raw) { // compared without a copy
		case "data":
			k = "data"
		case "metadata":
			k = "metadata"
		case "created_time":
			k = "created_time"
		case "custom_metadata":
			k = "custom_metadata"
		case "deletion_time":
			k = "deletion_time"
		case "destroyed":
			k = "destroyed"
		case "version":
			k = "version"
		}
		if k != "" {
			d.i += end + 2
			return k, true
		}
	}
	return d.str()
}

// str takes a string with no escapes but \" \\ \/ \b \f \n \r \t, in
// valid UTF-8: anything else (\u escapes, invalid UTF-8, which
// encoding/json replaces) is left to encoding/json.
func (d *fastDecoder) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	b := d.b
	ascii := true
	for d.i < len(b) {
		switch c := b[d.i]; {
		case c == '"':
			s := b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// escaped finishes a string from start whose first backslash is at d.i.
func (d *fastDecoder) escaped(start int) (string, bool) {
	b := d.b
	out := make([]byte, 0, d.i-start+16)
	out = append(out, b[start:d.i]...)
	for d.i < len(b) {
		c := b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c == '\\':
			if d.i+1 >= len(b) {
				return "", false
			}
			var r byte
			switch b[d.i+1] {
			case '"', '\\', '/':
				r = b[d.i+1]
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default: // \u and invalid escapes
				return "", false
			}
			out = append(out, r)
			d.i += 2
			continue
		case c < 0x20:
			return "", false
		}
		out = append(out, c)
		d.i++
	}
	return "", false
}
