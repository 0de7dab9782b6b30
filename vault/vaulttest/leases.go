package vaulttest

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DatabaseRole shapes the credentials database/creds/<role> hands out.
// Roles the test did not set get the zero DatabaseRole.
type DatabaseRole struct {
	TTL          time.Duration // lease_duration; 0: an hour
	MaxTTL       time.Duration // renewals end there; 0: a day
	RenewTTL     time.Duration // a renewal grants at most this; 0: what was asked
	NonRenewable bool
}

// SetDatabaseRole creates or replaces the database role name.
func (s *Server) SetDatabaseRole(name string, r DatabaseRole) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dbRoles[name] = r
}

// Lease is the state of a lease the server handed out.
type Lease struct {
	ID          string
	Path        string // where it was read, "database/creds/app"
	Token       string // the token that created it: the lease dies with it
	Issued      time.Time
	Expires     time.Time
	MaxExpires  time.Time
	LastRenewal time.Time // zero: never renewed
	Renewable   bool
	Revoked     bool // by RevokeLease (the token's revocation is not counted here)
	Live        bool // not revoked, not expired, and its token live, now
	Data        map[string]any
}

type lease struct {
	Lease
	ttl, renewTTL time.Duration
}

// live reports whether l is usable now. s.mu is held.
func (s *Server) liveLocked(l *lease, now time.Time) bool {
	if l.Revoked || !now.Before(l.Expires) {
		return false
	}
	t := s.tokens[l.Token]
	return t == nil || t.live(now)
}

func (s *Server) leaseInfoLocked(l *lease, now time.Time) Lease {
	out := l.Lease
	out.Live = s.liveLocked(l, now)
	out.Data = map[string]any{}
	for k, v := range l.Data {
		out.Data[k] = v
	}
	return out
}

// Lease returns the state of lease id.
func (s *Server) Lease(id string) (Lease, bool) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[id]
	if !ok {
		return Lease{}, false
	}
	return s.leaseInfoLocked(l, now), true
}

// Leases returns every lease handed out, oldest first.
func (s *Server) Leases() []Lease {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lease, 0, len(s.leaseOrder))
	for _, id := range s.leaseOrder {
		out = append(out, s.leaseInfoLocked(s.leases[id], now))
	}
	return out
}

// RevokeLease revokes lease id, as `vault lease revoke` does.
func (s *Server) RevokeLease(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[id]; ok {
		l.Revoked = true
	}
}

func (s *Server) databaseCreds(w *replier, t *token, role string) {
	if role == "" || strings.Contains(role, "/") {
		w.fail(http.StatusNotFound)
		return
	}
	now := s.clock.Now()
	s.mu.Lock()
	cfg := s.dbRoles[role]
	if cfg.TTL == 0 {
		cfg.TTL = time.Hour
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	s.creds++
	s.seq++
	l := &lease{
		Lease: Lease{
			ID:         fmt.Sprintf("database/creds/%s/vaulttest-lease-%d", role, s.seq),
			Path:       "database/creds/" + role,
			Token:      t.value,
			Issued:     now,
			Expires:    now.Add(min(cfg.TTL, cfg.MaxTTL)),
			MaxExpires: now.Add(cfg.MaxTTL),
			Renewable:  !cfg.NonRenewable,
			Data: map[string]any{
				"username": fmt.Sprintf("v-%s-%d", role, s.creds),
				"password": fmt.Sprintf("p-%s-%d", role, s.creds),
			},
		},
		ttl: cfg.TTL, renewTTL: cfg.RenewTTL,
	}
	s.leases[l.ID] = l
	s.leaseOrder = append(s.leaseOrder, l.ID)
	out := map[string]any{
		"lease_id":       l.ID,
		"lease_duration": seconds(l.Expires.Sub(now)),
		"renewable":      l.Renewable,
		"data":           l.Data,
	}
	s.mu.Unlock()
	w.secret(out)
}

// renewLease is sys/leases/renew: the lease's TTL again (or the increment
// asked for), at most until its max TTL.
func (s *Server) renewLease(w *replier, fields map[string]any) {
	id, _ := fields["lease_id"].(string)
	inc, _ := duration(fields["increment"])
	now := s.clock.Now()
	s.mu.Lock()
	l, ok := s.leases[id]
	switch {
	case !ok || !s.liveLocked(l, now):
		s.mu.Unlock()
		w.fail(http.StatusBadRequest, "lease not found")
		return
	case !l.Renewable:
		s.mu.Unlock()
		w.fail(http.StatusBadRequest, "lease is not renewable")
		return
	}
	d, warn := grant(now, inc, l.ttl, l.renewTTL, l.MaxExpires)
	l.Expires, l.LastRenewal = now.Add(d), now
	out := map[string]any{"lease_id": l.ID, "lease_duration": seconds(d), "renewable": l.Renewable, "warnings": warn}
	s.mu.Unlock()
	w.secret(out)
}

// lookupLease is sys/leases/lookup.
func (s *Server) lookupLease(w *replier, fields map[string]any) {
	id, _ := fields["lease_id"].(string)
	now := s.clock.Now()
	s.mu.Lock()
	l, ok := s.leases[id]
	if !ok || !s.liveLocked(l, now) {
		s.mu.Unlock()
		w.fail(http.StatusBadRequest, "invalid lease")
		return
	}
	data := map[string]any{
		"id":           l.ID,
		"issue_time":   l.Issued.Format(time.RFC3339Nano),
		"expire_time":  l.Expires.Format(time.RFC3339Nano),
		"last_renewal": nil,
		"renewable":    l.Renewable,
		"ttl":          seconds(l.Expires.Sub(now)),
	}
	if !l.LastRenewal.IsZero() {
		data["last_renewal"] = l.LastRenewal.Format(time.RFC3339Nano)
	}
	s.mu.Unlock()
	w.secret(map[string]any{"data": data})
}
