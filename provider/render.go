package provider

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// KeyNotFoundError is a secretKey absent from the Vault response.
type KeyNotFoundError struct {
	Object, Path, Key string
	Present           []string
}

func (e *KeyNotFoundError) Error() string {
	have := "the secret has no keys"
	if len(e.Present) > 0 {
		have = "keys present: " + strings.Join(e.Present, ", ")
	}
	return fmt.Sprintf("object %q: key %q not found at %s (%s); fix secretKey", e.Object, e.Key, e.Path, have)
}

// DecodeError is a value that does not decode with the object's encoding.
type DecodeError struct {
	Object, Encoding string
	// Key is the secret key of the value, for an all-keys object.
	Key string
	Err error
}

func (e *DecodeError) Error() string {
	what := "value"
	if e.Key != "" {
		what = fmt.Sprintf("the value of key %q", e.Key)
	}
	return fmt.Sprintf("object %q: %s is not valid %s (%v): store it %s-encoded or remove `encoding`", e.Object, what, e.Encoding, e.Err, e.Encoding)
}

// NoKeysError is an all-keys object whose secret has no keys: it would
// write no file, and a mount without files leaves the old ones in place.
type NoKeysError struct {
	Object, Path string
}

func (e *NoKeysError) Error() string {
	return fmt.Sprintf("object %q: the secret at %s has no keys (deleted or empty?); secretKey \"*\" needs at least one to write", e.Object, e.Path)
}

// RenderError is an object whose Vault data cannot be turned into files as
// the SecretProviderClass asks (a key that is no file name, two objects
// writing one path, a template that fails): the class must change.
type RenderError struct {
	Object string
	Err    error
}

func (e *RenderError) Error() string { return fmt.Sprintf("object %q: %v", e.Object, e.Err) }
func (e *RenderError) Unwrap() error { return e.Err }

// file is one file of the mount.
type file struct {
	path     string
	key      string // the secret key it holds, for an all-keys object
	contents []byte
}

// renderAllKeys writes every key of the secret (KV v2: of data.data) as the
// file objectName/<key>, sorted by key (for an object not written, these
// are only the values templates see), each value rendered as a secretKey
// object would render it (strings raw, others as JSON, then decoded by
// encoding). A key that cannot be a file name is an error naming it: keys
// with "/" are refused rather than turned into directories, which could
// clash with other keys ("a" and "a/b") or be mistaken for another path.
func renderAllKeys(obj *config.Object, path string, s *api.Secret) ([]file, error) {
	var data map[string]any
	if s != nil {
		data = s.Data
	}
	if inner, ok := kvV2Data(data); ok {
		data = inner
	}
	// Objects with writeFile: false are only template values: their keys
	// need not be file names, and no key at all is left to the templates.
	if len(data) == 0 && obj.Written() {
		return nil, &NoKeysError{Object: obj.ObjectName, Path: path}
	}
	keys := keysOf(data)
	if obj.Written() {
		for _, k := range keys {
			if err := keyFileName(obj.ObjectName, k); err != nil {
				return nil, &RenderError{Object: obj.ObjectName, Err: err}
			}
		}
	}
	files := make([]file, 0, len(keys))
	for _, k := range keys {
		raw, err := valueBytes(data[k])
		if err != nil {
			return nil, fmt.Errorf("object %q: encoding key %q as JSON: %w", obj.ObjectName, k, err)
		}
		contents, err := decode(obj, raw)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Key = k
			}
			return nil, err
		}
		files = append(files, file{path: obj.ObjectName + "/" + k, key: k, contents: contents})
	}
	return files, nil
}

// keyFileName checks that key can be the file objectName/key under the
// driver's path rules.
func keyFileName(objectName, key string) error {
	hint := fmt.Sprintf("mount it with its own object (secretKey: %q, objectName: a name of your choice)", key)
	if strings.Contains(key, "/") {
		return fmt.Errorf(`key %q cannot be a file name: keys of a secretKey "*" object must not contain "/"; %s`, key, hint)
	}
	if err := config.ValidateFileName(objectName + "/" + key); err != nil {
		return fmt.Errorf("key %q cannot be a file name (%v); %s", key, err, hint)
	}
	return nil
}

// valueBytes renders one value: strings raw, anything else as JSON.
func valueBytes(v any) ([]byte, error) {
	if str, ok := v.(string); ok {
		return []byte(str), nil
	}
	return json.Marshal(v)
}

// render produces an object's file contents from the Vault response.
func render(obj *config.Object, path string, s *api.Secret) ([]byte, error) {
	var raw []byte
	if obj.SecretKey == "" {
		// The whole response, as vault-csi-provider writes it, minus the
		// per-request request_id: it changes on every read, which would make
		// every rotation poll rewrite the file and change its version.
		whole := *s
		whole.RequestID = ""
		b, err := json.Marshal(&whole)
		if err != nil {
			return nil, fmt.Errorf("object %q: encoding the response as JSON: %w", obj.ObjectName, err)
		}
		raw = b
	} else {
		v, err := lookupKey(s.Data, obj.SecretKey)
		if err != nil {
			if ke, ok := err.(*KeyNotFoundError); ok {
				ke.Object, ke.Path = obj.ObjectName, path
			}
			return nil, err
		}
		if raw, err = valueBytes(v); err != nil {
			return nil, fmt.Errorf("object %q: encoding key %q as JSON: %w", obj.ObjectName, obj.SecretKey, err)
		}
	}
	return decode(obj, raw)
}

// lookupKey finds key in a response's data. KV v2 answers wrap the secret in
// data.data beside data.metadata; there the key is read from data.data. Any
// other answer is read from data itself, so a KV v1 secret or a dynamic
// credential with a key called "data" does not hide its siblings (which
// vault-csi-provider does). For compatibility, a key absent from data is
// still looked up in a nested data.data map.
func lookupKey(data map[string]any, key string) (any, error) {
	if inner, ok := kvV2Data(data); ok {
		if v, ok := inner[key]; ok {
			return v, nil
		}
		return nil, &KeyNotFoundError{Key: key, Present: keysOf(inner)}
	}
	if v, ok := data[key]; ok {
		return v, nil
	}
	if inner, ok := data["data"].(map[string]any); ok {
		if v, ok := inner[key]; ok {
			return v, nil
		}
	}
	return nil, &KeyNotFoundError{Key: key, Present: keysOf(data)}
}

// kvV2Data recognises a KV v2 read: exactly "data" and "metadata", the latter
// carrying KV v2's version bookkeeping.
func kvV2Data(data map[string]any) (map[string]any, bool) {
	if len(data) != 2 {
		return nil, false
	}
	md, ok := data["metadata"].(map[string]any)
	if !ok {
		return nil, false
	}
	if _, ok := md["version"]; !ok {
		return nil, false
	}
	if _, ok := md["created_time"]; !ok {
		return nil, false
	}
	switch inner := data["data"].(type) {
	case map[string]any:
		return inner, true
	case nil:
		// A deleted or destroyed version.
		return map[string]any{}, true
	default:
		return nil, false
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func decode(obj *config.Object, raw []byte) ([]byte, error) {
	switch obj.Encoding {
	case "":
		return raw, nil
	case config.EncodingBase64:
		out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, &DecodeError{Object: obj.ObjectName, Encoding: obj.Encoding, Err: err}
		}
		return out, nil
	case config.EncodingHex:
		out, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			// hex's own error quotes the offending byte of the secret.
			return nil, &DecodeError{Object: obj.ObjectName, Encoding: obj.Encoding, Err: errors.New("odd length or a non-hex character")}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("object %q: unknown encoding %q", obj.ObjectName, obj.Encoding)
	}
}
