package provider

// FuzzRender feeds arbitrary Vault answers, secretKeys and encodings to
// render. It proves that render never panics, never invents contents, and
// that its errors never carry secret values: an error message must not
// depend on the values in the answer at all (only on key names, the object
// and positions), which is checked by rendering a twin answer whose every
// value is changed in a way that keeps decoding behaviour identical.
//
// `go test ./provider` runs the seeds. Short CI smoke run:
//
//	go test -run '^$' -fuzz '^FuzzRender$' -fuzztime 30s -fuzzminimizetime 5s ./provider

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// Answers shaped like the ones Vault gives for the engines the examples use.
var vaultAnswers = []string{
	// KV v2 read.
	`{"request_id":"6f1e2d3c-0000-4000-8000-000000000001","lease_id":"","renewable":false,"lease_duration":0,` +
		`"data":{"data":{"password":"s3cr3t-pw","username":"app","port":5432,"tags":["a","b"],"b64":"aGVsbG8gd29ybGQ=","hex":"68656c6c6f"},` +
		`"metadata":{"created_time":"2024-05-01T10:00:00.000000Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":2}},` +
		`"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}`,
	// KV v2 deleted version.
	`{"request_id":"x","data":{"data":null,"metadata":{"created_time":"2024-05-01T10:00:00Z","deletion_time":"2024-05-02T10:00:00Z","destroyed":false,"version":3}},"mount_type":"kv"}`,
	// KV v1 with a key called data.
	`{"request_id":"x","lease_duration":2764800,"data":{"api-key":"k1-api-value-long","data":{"inner":"x"}},"mount_type":"kv"}`,
	// Database credentials.
	`{"request_id":"x","lease_id":"database/creds/app/AbCdEf123456","renewable":true,"lease_duration":3600,` +
		`"data":{"password":"A1a-9fJ2kq0ZpQ7xYcVb","username":"v-jwt-app-app-ZVq9kQx3mT7a8JrB-1714557600"},"warnings":null,"mount_type":"database"}`,
	// PKI issue.
	`{"request_id":"x","lease_id":"pki/issue/example-com/Zz","renewable":false,"lease_duration":3599,"data":{` +
		`"certificate":"-----BEGIN CERTIFICATE-----\nMIIDUTCCAjmgAwIBAgIUBc9Y\n-----END CERTIFICATE-----",` +
		`"expiration":1714561200,"issuing_ca":"-----BEGIN CERTIFICATE-----\nMIIDNTCCAh2gAwIBAgIU\n-----END CERTIFICATE-----",` +
		`"private_key":"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----",` +
		`"private_key_type":"rsa","serial_number":"05:cf:58:aa"},"mount_type":"pki"}`,
	// Token lookup (the answer holds a token).
	`{"request_id":"x","data":{"accessor":"8609694a-cdbc-db9b-d345-e782dbb562ed","id":"hvs.CAESIJ1kEJ6f0Jq3uX9cL8m","policies":["default","app"],"ttl":3599},"mount_type":"token"}`,
	// Login answer.
	`{"request_id":"x","auth":{"client_token":"hvs.CAESIBm5u1Yq2Q","accessor":"acc","policies":["app"],"lease_duration":3600,"renewable":true},"mount_type":"jwt"}`,
	// Wrapped answer and warnings.
	`{"request_id":"x","wrap_info":{"token":"hvs.wrapped","accessor":"a","ttl":300,"creation_time":"2024-05-01T10:00:00Z","creation_path":"secret/data/app"},"warnings":["w"]}`,
	// List answer.
	`{"request_id":"x","data":{"keys":["a","b/"]}}`,
	`{}`, `{"data":{}}`, `{"data":null}`, `{"data":{"k":null}}`, `{"data":{"k":"  aGVsbG8=\n"}}`,
	`{"data":{"k":"not base64 but long enough"}}`, `{"data":{"k":"zz68656c6c6f"}}`, `{"data":{"k":12345678901234567890}}`,
	`{"data":{"k":"\u00e9\u00e9\u00e9\u00e9\u2028secret"}}`, `{"data":{"k":1e400}}`, `{"data":{"k":-0.0}}`,
}

func FuzzRender(f *testing.F) {
	keys := []string{"", "password", "username", "port", "tags", "b64", "hex", "certificate", "private_key", "id", "data", "metadata", "inner", "api-key", "k", "missing"}
	encodings := []string{"", config.EncodingBase64, config.EncodingHex, "utf-8", "rot13"}
	for i, body := range vaultAnswers {
		for j, k := range keys {
			f.Add(body, k, encodings[(i+j)%len(encodings)])
		}
		for _, e := range encodings {
			f.Add(body, "password", e)
			f.Add(body, "", e)
		}
	}
	// Bodies that are not Vault answers still make good values.
	for _, v := range []string{`1`, `"data"`, `[1,"x"]`, `null`, `{"data":"x"}`, `"  aGVsbG8=  "`} {
		f.Add(v, "data", config.EncodingBase64)
		f.Add(v, "x", "")
	}
	f.Fuzz(func(t *testing.T, body, key, encoding string) {
		obj := &config.Object{ObjectName: "obj", SecretPath: "secret/data/x", SecretKey: key, Encoding: encoding}
		if s, err := api.ParseSecret(strings.NewReader(body)); err == nil && s != nil {
			checkRender(t, obj, s)
		}
		// The body as a value in the shapes render tells apart, so that
		// every branch is a few mutations away rather than a JSON edit.
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		md := map[string]any{"version": json.Number("1"), "created_time": "2024-05-01T10:00:00Z"}
		for _, data := range []map[string]any{
			{"data": v},
			{"data": v, "metadata": md},
			{key: v},
			{key: v, "data": map[string]any{key: v}},
		} {
			checkRender(t, obj, &api.Secret{Data: data})
		}
		if m, ok := v.(map[string]any); ok {
			checkRender(t, obj, &api.Secret{Data: m})
		}
	})
}

// checkRender renders obj from s and checks the outcome.
func checkRender(t *testing.T, obj *config.Object, s *api.Secret) {
	t.Helper()
	key, encoding := obj.SecretKey, obj.Encoding
	out, err := render(obj, "secret/data/x", s)

	tw := twin(s)
	_, twinErr := render(obj, "secret/data/x", tw)
	if (err == nil) != (twinErr == nil) {
		t.Fatalf("render depends on values beyond their shape: %v vs %v", err, twinErr)
	}

	if err == nil {
		checkRendered(t, s, key, encoding, out)
		return
	}

	msg := err.Error()
	// The raw value the object asked for, as render would decode it.
	var raw []byte
	if key == "" {
		whole := *s
		whole.RequestID = ""
		raw, _ = json.Marshal(&whole)
	} else if v, lerr := lookupKey(s.Data, key); lerr == nil {
		if str, ok := v.(string); ok {
			raw = []byte(str)
		} else {
			raw, _ = json.Marshal(v)
		}
	}
	var de *DecodeError
	if errors.As(err, &de) {
		for _, v := range []string{string(raw), strings.TrimSpace(string(raw))} {
			// Text that the twin's message holds too is the message's
			// own wording, not the value.
			if len(v) >= 8 && strings.Contains(msg, v) && !strings.Contains(twinErr.Error(), v) {
				t.Fatalf("%s decode error quotes the value %q: %s", encoding, v, msg)
			}
		}
	}
	for _, v := range stringValues(s.Data, nil) {
		if len(v) >= 8 && strings.Contains(msg, v) && !strings.Contains(twinErr.Error(), v) {
			t.Fatalf("error quotes the value %q: %s", v, msg)
		}
	}
	if msg != twinErr.Error() {
		t.Fatalf("error message depends on secret values:\n%s\n%s", msg, twinErr.Error())
	}
}

// checkRendered asserts that successful output comes from the answer.
func checkRendered(t *testing.T, s *api.Secret, key, encoding string, out []byte) {
	t.Helper()
	switch encoding {
	case "", config.EncodingBase64, config.EncodingHex:
	default:
		t.Fatalf("rendered with unknown encoding %q", encoding)
	}
	if encoding != "" {
		return
	}
	if key == "" {
		var whole struct {
			RequestID string `json:"request_id"`
		}
		if !json.Valid(out) || json.Unmarshal(out, &whole) != nil {
			t.Fatalf("whole response is not JSON: %q", out)
		}
		if whole.RequestID != "" {
			t.Fatalf("whole response keeps request_id %q", whole.RequestID)
		}
		return
	}
	// The value is the key's, at the top level or one data level down.
	var candidates []any
	if v, ok := s.Data[key]; ok {
		candidates = append(candidates, v)
	}
	if inner, ok := s.Data["data"].(map[string]any); ok {
		if v, ok := inner[key]; ok {
			candidates = append(candidates, v)
		}
	}
	for _, c := range candidates {
		want, ok := c.(string)
		if !ok {
			b, err := json.Marshal(c)
			if err != nil {
				continue
			}
			want = string(b)
		}
		if string(out) == want {
			return
		}
	}
	t.Fatalf("rendered %q for key %q, which holds none of %v", out, key, candidates)
}

// stringValues lists the string values (not keys) in v.
func stringValues(v any, acc []string) []string {
	switch t := v.(type) {
	case string:
		acc = append(acc, t)
	case map[string]any:
		for _, e := range t {
			acc = stringValues(e, acc)
		}
	case []any:
		for _, e := range t {
			acc = stringValues(e, acc)
		}
	}
	return acc
}

// twin returns s with every value in Data changed, keeping keys, types, and
// for strings and numbers each byte's class (hex digit, other base64
// character, '=', CR/LF, other) and each rune's UTF-8 length, with the
// leading and trailing whitespace unchanged. Decoding the twin fails (or
// succeeds) exactly where decoding s does; so an error message that differs
// between them carries value content.
func twin(s *api.Secret) *api.Secret {
	out := *s
	if s.Data != nil {
		out.Data = twinValue(s.Data).(map[string]any)
	}
	return &out
}

func twinValue(v any) any {
	switch t := v.(type) {
	case string:
		return twinString(t)
	case json.Number:
		b := []byte(t)
		for i, c := range b {
			if c >= '0' && c <= '9' {
				// Never 0, so no leading zeros appear: still a number.
				if c == '9' {
					b[i] = '1'
				} else {
					b[i] = c + 1
				}
			}
		}
		return json.Number(b)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = twinValue(e)
		}
		return m
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = twinValue(e)
		}
		return l
	default:
		return v
	}
}

func twinString(s string) string {
	core := strings.TrimSpace(s)
	if core == "" {
		return s
	}
	start := len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
	var b strings.Builder
	b.WriteString(s[:start])
	for i := 0; i < len(core); {
		r, size := utf8.DecodeRuneInString(core[i:])
		c := core[i]
		switch {
		case r == utf8.RuneError && size == 1:
			if c == 0xff {
				b.WriteByte(0xfe)
			} else {
				b.WriteByte(0xff)
			}
		case size > 1:
			alt := map[int][2]rune{2: {'é', 'è'}, 3: {'€', '₤'}, 4: {'😀', '😁'}}[size]
			if r == alt[0] {
				b.WriteRune(alt[1])
			} else {
				b.WriteRune(alt[0])
			}
		default:
			b.WriteByte(twinASCII(c))
		}
		i += size
	}
	b.WriteString(s[start+len(core):])
	return b.String()
}

func twinASCII(c byte) byte {
	rot := func(c, lo, hi byte) byte {
		if c == hi {
			return lo
		}
		return c + 1
	}
	switch {
	case c >= '0' && c <= '9':
		return rot(c, '0', '9')
	case c >= 'a' && c <= 'f':
		return rot(c, 'a', 'f')
	case c >= 'A' && c <= 'F':
		return rot(c, 'A', 'F')
	case c >= 'g' && c <= 'z':
		return rot(c, 'g', 'z')
	case c >= 'G' && c <= 'Z':
		return rot(c, 'G', 'Z')
	case c == '+':
		return '/'
	case c == '/':
		return '+'
	case c == '=' || c == '\r' || c == '\n':
		return c
	case c == '!':
		return '#'
	default:
		return '!'
	}
}
