package vaulttest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// PKIRole shapes the certificates pki/issue/<role> issues. Roles the test
// did not set get the zero PKIRole.
type PKIRole struct {
	TTL    time.Duration // certificate lifetime when the request has no "ttl"; 0: a day
	MaxTTL time.Duration // caps TTL and the request's "ttl"; 0: no limit
	// Allow decides which common names the role issues for (nil: all); a
	// refused one gets 400 "common name <cn> not allowed by this role".
	Allow func(commonName string) bool
}

// SetPKIRole creates or replaces the PKI role name.
func (s *Server) SetPKIRole(name string, r PKIRole) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkiRoles[name] = r
}

// issue is pki/issue/<role>: a certificate with an expiration and no
// lease, as Vault issues them. The PEM blocks hold no real certificate.
func (s *Server) issue(w *replier, role string, fields map[string]any) {
	cn, _ := fields["common_name"].(string)
	if cn == "" {
		w.fail(http.StatusBadRequest, `the common_name field is required, or must be provided in a CSR with "use_csr_common_name" set to true, unless "require_cn" is set to false`)
		return
	}
	s.mu.Lock()
	cfg := s.pkiRoles[role]
	s.mu.Unlock()
	if cfg.Allow != nil && !cfg.Allow(cn) {
		w.fail(http.StatusBadRequest, fmt.Sprintf("common name %s not allowed by this role", cn))
		return
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if d, ok := duration(fields["ttl"]); ok && d > 0 {
		ttl = d
	}
	if cfg.MaxTTL > 0 {
		ttl = min(ttl, cfg.MaxTTL)
	}
	now := s.clock.Now()
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	serial := fmt.Sprintf("5a:%02x:%02x:%02x", byte(n>>16), byte(n>>8), byte(n))
	ca := fakePEM("CERTIFICATE", "vaulttest CA")
	w.secret(map[string]any{"data": map[string]any{
		"certificate":      fakePEM("CERTIFICATE", "vaulttest certificate for "+cn+" serial "+serial),
		"private_key":      fakePEM("RSA PRIVATE KEY", "vaulttest key serial "+serial),
		"private_key_type": "rsa",
		"issuing_ca":       ca,
		"ca_chain":         []string{ca},
		"serial_number":    serial,
		"expiration":       now.Add(ttl).Unix(),
	}})
}

func fakePEM(kind, text string) string {
	b := base64.StdEncoding.EncodeToString([]byte(text))
	var lines []string
	for len(b) > 64 {
		lines, b = append(lines, b[:64]), b[64:]
	}
	lines = append(lines, b)
	return "-----BEGIN " + kind + "-----\n" + strings.Join(lines, "\n") + "\n-----END " + kind + "-----"
}
