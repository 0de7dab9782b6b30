package server

import (
	"encoding/json"
	"strings"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// maxPodUIDBytes bounds the pod UID kept as an admission bucket key.
// Kubernetes UIDs are 36 bytes; anything longer is not one the kubelet set.
const maxPodUIDBytes = 128

// podUID returns the pod UID attribute of a Mount request's attributes (a
// JSON object of strings, as the driver encodes it), or "" when it is absent,
// longer than maxPodUIDBytes, or the attributes are not such an object.
//
// Admission runs before any other work on a request, so this scans the bytes
// once without building the map config.Parse will build: it allocates only
// when a key or the UID is escaped or not ASCII. It agrees with encoding/json on every
// input that parses as a map[string]string (escaped keys, whitespace, the
// last of duplicate keys, null values), which a substring search would not:
// a search for the key can be fooled by another attribute's value or miss an
// escaped key. Pod authors choose attribute values but not this key, which
// the kubelet sets.
func podUID(attrs string) string {
	s := scanner{s: attrs}
	s.space()
	if !s.byte('{') {
		return ""
	}
	uid := ""
	s.space()
	if s.byte('}') {
		return s.end(uid)
	}
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return ""
		}
		s.space()
		if !s.byte(':') {
			return ""
		}
		s.space()
		match := isUIDKey(key)
		switch {
		case s.literal("null"):
			// encoding/json stores "" for null in a map of strings.
			if match {
				uid = ""
			}
		default:
			v, ok := s.str()
			if !ok {
				return ""
			}
			if match {
				uid = unquote(v, maxPodUIDBytes)
			}
		}
		s.space()
		if s.byte(',') {
			continue
		}
		if s.byte('}') {
			return s.end(uid)
		}
		return ""
	}
}

func isUIDKey(quoted string) bool {
	if quoted[1:len(quoted)-1] == config.AttrPodUID {
		return true
	}
	return strings.Contains(quoted, `\`) && unquote(quoted, len(config.AttrPodUID)) == config.AttrPodUID
}

// unquote decodes a JSON string token, or returns "" when it decodes to more
// than limit bytes. The work is bounded by limit, not by the token's length.
func unquote(quoted string, limit int) string {
	// Every decoded byte comes from at most 6 token bytes (\uXXXX).
	if len(quoted) > 6*limit+2 {
		return ""
	}
	raw := quoted[1 : len(quoted)-1]
	out := raw
	if strings.Contains(raw, `\`) || !isASCII(raw) {
		// Escapes, or non-ASCII (invalid UTF-8 becomes U+FFFD): decode as
		// encoding/json does.
		if json.Unmarshal([]byte(quoted), &out) != nil {
			return ""
		}
	}
	if len(out) > limit {
		return ""
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// scanner reads JSON tokens from s without decoding them.
type scanner struct {
	s string
	i int
}

func (s *scanner) space() {
	for s.i < len(s.s) {
		switch s.s[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.s) && s.s[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if strings.HasPrefix(s.s[s.i:], lit) {
		s.i += len(lit)
		return true
	}
	return false
}

// str consumes a string token and returns it with its quotes. Escapes are
// only skipped here; control characters are refused as encoding/json does.
func (s *scanner) str() (string, bool) {
	start := s.i
	if !s.byte('"') {
		return "", false
	}
	for s.i < len(s.s) {
		c := s.s[s.i]
		switch {
		case c == '"':
			s.i++
			return s.s[start:s.i], true
		case c == '\\':
			s.i += 2
		case c < 0x20:
			return "", false
		default:
			s.i++
		}
	}
	return "", false
}

// end returns uid when only whitespace follows the object.
func (s *scanner) end(uid string) string {
	s.space()
	if s.i != len(s.s) {
		return ""
	}
	return uid
}
