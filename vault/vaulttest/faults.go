package vaulttest

import (
	"net/http"
	"sync"
	"time"
)

// A Gate intercepts the requests below a path prefix before the fake Vault
// answers them, to make it fail in ways a real Vault cannot be made to on
// demand. Every request is logged (Calls) whether or not a gate took it.
// Gates apply in the order they were added: holds and delays let the
// request go on to the next gate (or to the fake Vault) once they are over;
// the others answer it.
type Gate struct {
	s       *Server
	prefix  string
	left    int // requests the gate still takes; -1: no limit
	fail    func(*replier)
	hold    chan struct{}
	delay   time.Duration
	handler http.HandlerFunc
}

// Times limits g to the next n requests it matches; later ones pass it as
// if it had been removed. Call it right after adding the gate.
func (g *Gate) Times(n int) *Gate {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	g.left = n
	if n <= 0 {
		g.removeLocked()
	}
	return g
}

// Remove takes g away; requests already past it are not affected.
func (g *Gate) Remove() {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	g.removeLocked()
}

func (g *Gate) removeLocked() {
	for i, x := range g.s.gates {
		if x == g {
			g.s.gates = append(g.s.gates[:i:i], g.s.gates[i+1:]...)
			return
		}
	}
}

func (s *Server) addGate(g *Gate) *Gate {
	g.s, g.left = s, -1
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates = append(s.gates, g)
	return g
}

// takeGates returns the gates a request to path passes, counting it
// against limited ones. s.mu is held.
func (s *Server) takeGates(path string) []*Gate {
	var out []*Gate
	for _, g := range append([]*Gate(nil), s.gates...) {
		if !matches(g.prefix, path) {
			continue
		}
		out = append(out, g)
		if g.left > 0 {
			g.left--
			if g.left == 0 {
				g.removeLocked()
			}
		}
	}
	return out
}

// Fail answers requests below prefix with status code and Vault's error
// body {"errors": errs}: Fail("", 503, "Vault is sealed") seals the whole
// server, Fail("secret/", 429) rate-limits reads, Fail(path, 500).Times(1)
// fails once and then recovers.
func (s *Server) Fail(prefix string, code int, errs ...string) *Gate {
	return s.addGate(&Gate{prefix: prefix, fail: func(rw *replier) { rw.fail(code, errs...) }})
}

// Hold makes requests below prefix hang until release is called (then
// they, and later requests, are answered normally), the client gives up
// (its context ends; the request gets no answer) or the server closes.
// release may be called more than once.
func (s *Server) Hold(prefix string) (release func()) {
	ch := make(chan struct{})
	g := s.addGate(&Gate{prefix: prefix, hold: ch})
	var once sync.Once
	return func() {
		once.Do(func() {
			g.Remove()
			close(ch)
		})
	}
}

// Delay makes requests below prefix wait d (real time) before they go on.
func (s *Server) Delay(prefix string, d time.Duration) *Gate {
	return s.addGate(&Gate{prefix: prefix, delay: d})
}

// CloseConn closes the connection of requests below prefix without an
// answer, as a crashing server or a proxy does: the client sees an error
// (EOF or a reset), not a status.
func (s *Server) CloseConn(prefix string) *Gate {
	return s.addGate(&Gate{prefix: prefix, handler: func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic("vaulttest: CloseConn: " + err.Error())
		}
		conn.Close()
	}})
}

// Redirect answers requests below prefix with 307 Temporary Redirect to
// the same path and query at base ("http://host:port"), as a Vault standby
// redirects to the active node.
func (s *Server) Redirect(prefix, base string) *Gate {
	return s.addGate(&Gate{prefix: prefix, handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", base+r.URL.RequestURI())
		w.WriteHeader(http.StatusTemporaryRedirect)
	}})
}

// Handle lets h answer requests below prefix, for anything the other gates
// do not cover (bodies a Vault would never send, say). h may read the
// request body.
func (s *Server) Handle(prefix string, h http.HandlerFunc) *Gate {
	return s.addGate(&Gate{prefix: prefix, handler: h})
}

// apply runs g for a request and reports whether it answered it.
func (g *Gate) apply(w http.ResponseWriter, r *http.Request, rw *replier) bool {
	switch {
	case g.hold != nil:
		select {
		case <-g.hold:
			return false
		case <-r.Context().Done():
		case <-g.s.done:
		}
		return true
	case g.delay > 0:
		t := time.NewTimer(g.delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
		case <-g.s.done:
		}
		return true
	case g.fail != nil:
		g.fail(rw)
		return true
	case g.handler != nil:
		g.handler(w, r)
		return true
	}
	return false
}
