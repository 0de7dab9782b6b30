package config

import (
	"encoding/json"
	"time"
)

// ServiceAccountToken is one entry of the driver's
// csi.storage.k8s.io/serviceAccount.tokens attribute.
type ServiceAccountToken struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// driverToken finds the token for audience in what the driver sent. Drivers
// that opt in pass tokens in the node-publish secrets rather than in the
// volume attributes; both are read, secrets first.
func driverToken(attrs, secrets map[string]string, audience string) (string, error) {
	for _, src := range []struct {
		where string
		raw   string
	}{
		{"node publish secrets", secrets[AttrServiceAccountToks]},
		{"attributes", attrs[AttrServiceAccountToks]},
	} {
		if src.raw == "" {
			continue
		}
		var toks map[string]ServiceAccountToken
		if err := json.Unmarshal([]byte(src.raw), &toks); err != nil {
			return "", errorf("%s %q in the %s is not valid JSON: %v", "service account tokens", AttrServiceAccountToks, src.where, err)
		}
		if t, ok := toks[audience]; ok && t.Token != "" {
			return t.Token, nil
		}
	}
	return "", nil
}
