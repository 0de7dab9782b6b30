package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Request is the Vault call an object needs. Objects with equal Keys share
// one call in a Mount, so that e.g. a username and a password read from one
// database/creds path belong to the same credential.
type Request struct {
	Method string
	// Path is the API path below /v1/, without query.
	Path  string
	Query url.Values
	// Body is the JSON body for PUT/POST, nil otherwise.
	Body []byte

	// key is Key, computed once for the requests of parsed objects.
	key string
}

// Key identifies a request: method, path, query and body.
func (r Request) Key() string {
	if r.key != "" {
		return r.key
	}
	return r.computeKey()
}

func (r Request) computeKey() string {
	return r.Method + " " + r.Path + "?" + r.Query.Encode() + "\x00" + string(r.Body)
}

// Request returns the Vault request for the object. For an object from
// ParseObjects it was made once, when the object was parsed: its Query
// and Body are shared and must not be modified.
func (o *Object) Request() (Request, error) {
	if o.IsTemplate() {
		return Request{}, errors.New("a template object makes no Vault request")
	}
	if o.derived != nil {
		return o.derived.req, o.derived.reqErr
	}
	return o.request()
}

func (o *Object) request() (Request, error) {
	r := Request{Method: o.Method}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	p, err := o.splitPath()
	if err != nil {
		return Request{}, err
	}
	r.Path, r.Query = p.path, p.query
	if o.SecretArgs != nil {
		if r.Method == http.MethodGet {
			if r.Query == nil {
				r.Query = url.Values{}
			}
			keys := make([]string, 0, len(o.SecretArgs))
			for k := range o.SecretArgs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				vals, err := queryValues(o.SecretArgs[k])
				if err != nil {
					return Request{}, fmt.Errorf("secretArgs %q: %v", k, err)
				}
				r.Query[k] = append(r.Query[k], vals...)
			}
		} else {
			// encoding/json sorts map keys, so equal args give equal bodies.
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(o.SecretArgs); err != nil {
				return Request{}, fmt.Errorf("secretArgs cannot be sent as JSON: %v", err)
			}
			r.Body = bytes.TrimRight(buf.Bytes(), "\n")
		}
	}
	return r, nil
}

type splitPath struct {
	path  string
	query url.Values
}

func (o *Object) splitPath() (splitPath, error) {
	p := strings.TrimSpace(o.SecretPath)
	var q url.Values
	if i := strings.IndexByte(p, '?'); i >= 0 {
		var err error
		if q, err = url.ParseQuery(p[i+1:]); err != nil {
			// The query may carry values meant for Vault only: name none.
			return splitPath{}, fmt.Errorf("secretPath %q has a query that does not parse (values not shown)", shownPath(o.SecretPath))
		}
		p = p[:i]
	}
	p = strings.TrimLeft(p, "/")
	p = strings.TrimPrefix(p, "v1/")
	p = strings.Trim(p, "/")
	if p == "" {
		return splitPath{}, fmt.Errorf("secretPath %q names no Vault path", shownPath(o.SecretPath))
	}
	if strings.ContainsAny(p, "\x00#") {
		return splitPath{}, fmt.Errorf("secretPath %q contains a character Vault paths cannot have", shownPath(o.SecretPath))
	}
	// The Vault client joins paths with path.Join, which would resolve
	// "secret/data/../../sys/x" to another API silently: refuse such paths.
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." || seg == "" {
			return splitPath{}, fmt.Errorf("secretPath %q has an empty, \".\" or \"..\" segment", shownPath(o.SecretPath))
		}
	}
	return splitPath{path: p, query: q}, nil
}

// shownPath is a secretPath fit for messages: the path, without its query or
// fragment, whose values may be secret arguments.
func shownPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i] + "?…"
	}
	return p
}

// queryValues renders a secretArgs value as query parameter values: scalars
// as text, lists as repeated parameters, objects as JSON.
func queryValues(v any) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return []string{""}, nil
	case string:
		return []string{t}, nil
	case bool:
		return []string{strconv.FormatBool(t)}, nil
	case int:
		return []string{strconv.Itoa(t)}, nil
	case int64:
		return []string{strconv.FormatInt(t, 10)}, nil
	case uint64:
		return []string{strconv.FormatUint(t, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(t, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range t {
			vs, err := queryValues(e)
			if err != nil {
				return nil, err
			}
			out = append(out, vs...)
		}
		return out, nil
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		return []string{string(b)}, nil
	}
}
