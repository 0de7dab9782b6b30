package vaulttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Call is one request the server received, whatever it answered.
type Call struct {
	Method    string
	Path      string // below /v1/, without the query
	Query     url.Values
	Token     string // X-Vault-Token; "" when absent (see Header)
	Namespace string // X-Vault-Namespace
	Header    http.Header
	Body      []byte
	Time      time.Time // on the server's clock
}

// JSON is the call's body decoded as a JSON object; nil if it is not one.
func (c Call) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal(c.Body, &m) != nil {
		return nil
	}
	return m
}

// String is "METHOD path".
func (c Call) String() string { return c.Method + " " + c.Path }

// Calls returns every request received so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Count counts the requests with method ("" for any) below pathPrefix.
func (s *Server) Count(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if (method == "" || c.Method == method) && matches(pathPrefix, c.Path) {
			n++
		}
	}
	return n
}

// InFlight is the number of requests being answered now, held ones
// included.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// MaxInFlight is the most requests that were ever in flight at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// enter records c as in flight and returns the gates it passes through and
// its request id.
func (s *Server) enter(c Call) ([]*Gate, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.seq++
	return s.takeGates(c.Path), fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}
