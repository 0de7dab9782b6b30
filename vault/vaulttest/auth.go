package vaulttest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultTokenTTL is the lifetime of tokens from a Role without TTL:
// Vault's default.
const DefaultTokenTTL = 768 * time.Hour

// AuthMount is a kubernetes- or jwt-style auth method: POST
// auth/<mount>/login with {"role", "jwt"} gives a token.
type AuthMount struct {
	s     *Server
	name  string
	roles map[string]Role
}

// Role says who may log in as a role and what tokens they get.
type Role struct {
	// Who may log in: a JWT listed in JWTs, or one whose subject is
	// system:serviceaccount:<namespace>:<name> with "namespace/name" in
	// ServiceAccounts (the JWT is decoded, not verified), or one Allow
	// accepts. With none of the three set, any JWT may.
	JWTs            []string
	ServiceAccounts []string
	Allow           func(jwt string) bool

	TTL          time.Duration // token lifetime; 0: DefaultTokenTTL
	MaxTTL       time.Duration // renewals end there; 0: no limit
	RenewTTL     time.Duration // a renewal grants at most this; 0: what was asked
	NonRenewable bool
	NoExpiry     bool // tokens with lease_duration 0 that never expire and cannot be renewed

	// Deny lists path prefixes this role's tokens are refused (403) though
	// they stay valid, as a Vault policy without the path does.
	Deny []string
}

// EnableAuth enables the auth method at mount ("jwt", "kubernetes",
// "auth/k8s" alike) if it is not yet, and returns it.
func (s *Server) EnableAuth(mount string) *AuthMount {
	mount = strings.Trim(strings.TrimPrefix(strings.Trim(mount, "/"), "auth/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.auth[mount]
	if m == nil {
		m = &AuthMount{s: s, name: mount, roles: map[string]Role{}}
		s.auth[mount] = m
	}
	return m
}

// Role creates or replaces the role name.
func (m *AuthMount) Role(name string, r Role) *AuthMount {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.roles[name] = r
	return m
}

// Deny makes every token refused (403) below the path prefixes, though
// the tokens stay valid: a policy denial, as opposed to a dead token.
func (s *Server) Deny(prefixes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = append(s.deny, prefixes...)
}

// TokenInfo is the state of a token the server knows.
type TokenInfo struct {
	Value, Accessor string
	Mount, Role     string    // empty for tokens accepted through AnyToken
	Issued          time.Time // on the server's clock
	Expires         time.Time // zero: never
	MaxExpires      time.Time // zero: no limit
	Renewable       bool
	Revoked         bool
	Live            bool // neither revoked nor expired, now
}

type token struct {
	value, accessor, mount, role string
	issued, expires, maxExpires  time.Time
	ttl, renewTTL                time.Duration
	renewable, revoked           bool
	deny                         []string
}

func (t *token) live(now time.Time) bool {
	return !t.revoked && (t.expires.IsZero() || now.Before(t.expires))
}

func (t *token) info(now time.Time) TokenInfo {
	return TokenInfo{
		Value: t.value, Accessor: t.accessor, Mount: t.mount, Role: t.role,
		Issued: t.issued, Expires: t.expires, MaxExpires: t.maxExpires,
		Renewable: t.renewable, Revoked: t.revoked, Live: t.live(now),
	}
}

// Logins returns the tokens successful logins issued, oldest first.
func (s *Server) Logins() []TokenInfo {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenInfo, len(s.logins))
	for i, t := range s.logins {
		out[i] = t.info(now)
	}
	return out
}

// Token returns the state of the token value, if the server knows it.
func (s *Server) Token(value string) (TokenInfo, bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[value]
	if !ok {
		return TokenInfo{}, false
	}
	return t.info(now), true
}

// Revoke revokes the token value and, as Vault does, the leases it
// created. It works on tokens the server never saw too (see AnyToken).
func (s *Server) Revoke(value string) { s.revoke(value) }

func (s *Server) revoke(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[value]
	if t == nil {
		t = s.newTokenLocked()
		t.value = value
		s.tokens[value] = t
	}
	t.revoked = true
}

// newTokenLocked makes a token with fresh value and accessor, not yet
// stored.
func (s *Server) newTokenLocked() *token {
	s.seq++
	return &token{
		value:    fmt.Sprintf("hvs.vaulttest-token-%d", s.seq),
		accessor: fmt.Sprintf("vaulttest-accessor-%d", s.seq),
		issued:   s.clock.Now(),
	}
}

// authorize finds the live token value and reports whether it may use
// path.
func (s *Server) authorize(path, value string) (*token, bool) {
	if value == "" {
		return nil, false
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[value]
	if t == nil && s.anyToken {
		t = s.newTokenLocked()
		t.value = value
		s.tokens[value] = t
	}
	if t == nil || !t.live(now) {
		return nil, false
	}
	for _, p := range append(slices.Clip(s.deny), t.deny...) {
		if matches(p, path) {
			return t, false
		}
	}
	return t, true
}

// loginMount reports whether path is a login, and at which mount.
func loginMount(path string) (string, bool) {
	m, ok := strings.CutPrefix(path, "auth/")
	if !ok {
		return "", false
	}
	m, ok = strings.CutSuffix(m, "/login")
	return m, ok && m != "" && m != "token"
}

func (s *Server) login(w *replier, r *http.Request, mount string, body []byte) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.fail(http.StatusMethodNotAllowed, "unsupported operation")
		return
	}
	var in struct{ Role, JWT string }
	if err := json.Unmarshal(body, &in); err != nil {
		w.fail(http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	s.mu.Lock()
	m := s.auth[mount]
	var (
		role  Role
		known bool
	)
	if m != nil {
		role, known = m.roles[in.Role]
	}
	s.mu.Unlock()
	switch {
	case m == nil:
		s.t.Logf("vaulttest: login at auth/%s, which is not enabled", mount)
		w.fail(http.StatusForbidden, "permission denied")
		return
	case in.Role == "":
		w.fail(http.StatusBadRequest, "missing role")
		return
	case !known:
		w.fail(http.StatusBadRequest, fmt.Sprintf("role %q could not be found", in.Role))
		return
	case in.JWT == "":
		w.fail(http.StatusBadRequest, "missing jwt")
		return
	case !role.accepts(in.JWT):
		w.fail(http.StatusForbidden, "permission denied")
		return
	}

	s.mu.Lock()
	t := s.newTokenLocked()
	t.mount, t.role, t.deny = mount, in.Role, role.Deny
	t.renewable = !role.NonRenewable && !role.NoExpiry
	t.ttl, t.renewTTL = role.TTL, role.RenewTTL
	if t.ttl == 0 {
		t.ttl = DefaultTokenTTL
	}
	if !role.NoExpiry {
		t.expires = t.issued.Add(t.ttl)
		if role.MaxTTL > 0 {
			t.maxExpires = t.issued.Add(role.MaxTTL)
			t.expires = minTime(t.expires, t.maxExpires)
		}
	}
	s.tokens[t.value] = t
	s.logins = append(s.logins, t)
	s.mu.Unlock()
	w.secret(map[string]any{"auth": authBody(t, t.issued)})
}

func authBody(t *token, now time.Time) map[string]any {
	var d int64
	if !t.expires.IsZero() {
		d = seconds(t.expires.Sub(now))
	}
	return map[string]any{
		"client_token":   t.value,
		"accessor":       t.accessor,
		"policies":       []string{"default"},
		"token_policies": []string{"default"},
		"metadata":       map[string]string{"role": t.role},
		"lease_duration": d,
		"renewable":      t.renewable,
		"token_type":     "service",
		"orphan":         true,
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (r Role) accepts(jwt string) bool {
	if len(r.JWTs) == 0 && len(r.ServiceAccounts) == 0 && r.Allow == nil {
		return true
	}
	if slices.Contains(r.JWTs, jwt) {
		return true
	}
	if sa, ok := jwtServiceAccount(jwt); ok && slices.Contains(r.ServiceAccounts, sa) {
		return true
	}
	return r.Allow != nil && r.Allow(jwt)
}

// jwtServiceAccount is "namespace/name" of a Kubernetes service account
// token's subject.
func jwtServiceAccount(jwt string) (string, bool) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct{ Sub string }
	if json.Unmarshal(payload, &claims) != nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(claims.Sub, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", false
	}
	return ns + "/" + name, true
}

func (s *Server) lookupSelf(w *replier, t *token) {
	now := s.clock.Now()
	s.mu.Lock()
	data := map[string]any{
		"accessor":         t.accessor,
		"creation_time":    t.issued.Unix(),
		"creation_ttl":     seconds(t.ttl),
		"expire_time":      nil,
		"ttl":              0,
		"renewable":        t.renewable,
		"policies":         []string{"default"},
		"meta":             map[string]string{"role": t.role},
		"path":             "auth/" + t.mount + "/login",
		"type":             "service",
		"explicit_max_ttl": 0,
	}
	if !t.expires.IsZero() {
		data["expire_time"] = t.expires.Format(time.RFC3339Nano)
		data["ttl"] = seconds(t.expires.Sub(now))
	}
	s.mu.Unlock()
	w.secret(map[string]any{"data": data})
}

func (s *Server) renewSelf(w *replier, t *token, fields map[string]any) {
	inc, _ := duration(fields["increment"])
	now := s.clock.Now()
	s.mu.Lock()
	if !t.renewable {
		s.mu.Unlock()
		w.fail(http.StatusBadRequest, "lease is not renewable")
		return
	}
	d, warn := grant(now, inc, t.ttl, t.renewTTL, t.maxExpires)
	t.expires = now.Add(d)
	auth := authBody(t, now)
	s.mu.Unlock()
	w.secret(map[string]any{"auth": auth, "warnings": warn})
}
