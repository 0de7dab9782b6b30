package testenv

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"
)

// Issuer signs JWTs shaped like Kubernetes service account tokens, with a key
// Vault's jwt auth method is told to trust (jwt_validation_pubkeys).
type Issuer struct {
	Name string
	key  *rsa.PrivateKey
}

// NewIssuer generates a signing key.
func NewIssuer(name string) (*Issuer, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Issuer{Name: name, key: k}, nil
}

// PublicKeyPEM is the verification key.
func (i *Issuer) PublicKeyPEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// ServiceAccount describes whom a token is for.
type ServiceAccount struct {
	Namespace string
	Name      string
	PodName   string
	PodUID    string
}

// Subject is the token subject Kubernetes uses.
func (s ServiceAccount) Subject() string {
	return "system:serviceaccount:" + s.Namespace + ":" + s.Name
}

// Token signs a token for sa with the audience, valid for ttl.
func (i *Issuer) Token(sa ServiceAccount, audience string, ttl time.Duration) (string, time.Time, error) {
	now := time.Now()
	exp := now.Add(ttl)
	claims := map[string]any{
		"iss": i.Name,
		"sub": sa.Subject(),
		"aud": []string{audience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": exp.Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      sa.Namespace,
			"serviceaccount": map[string]string{"name": sa.Name, "uid": "sa-" + sa.Name},
			"pod":            map[string]string{"name": sa.PodName, "uid": sa.PodUID},
		},
	}
	tok, err := i.sign(claims)
	return tok, exp, err
}

func (i *Issuer) sign(claims map[string]any) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// DriverTokens renders the csi.storage.k8s.io/serviceAccount.tokens attribute
// the driver passes: {"<audience>": {"token": ..., "expirationTimestamp": ...}}.
func DriverTokens(audience, token string, exp time.Time) string {
	b, _ := json.Marshal(map[string]any{audience: map[string]any{"token": token, "expirationTimestamp": exp.UTC().Format(time.RFC3339)}})
	return string(b)
}

// SetupJWTAuth enables jwt auth at mount, trusting the issuer's key.
func (v *Vault) SetupJWTAuth(mount string, iss *Issuer) error {
	if err := v.EnableAuth(mount, "jwt"); err != nil {
		return err
	}
	_, err := v.Write("auth/"+mount+"/config", map[string]any{
		"jwt_validation_pubkeys": []string{iss.PublicKeyPEM()},
		"bound_issuer":           iss.Name,
	})
	return err
}

// JWTRole creates a jwt auth role for a service account, as one would for
// Kubernetes service account tokens.
func (v *Vault) JWTRole(mount, role string, sa ServiceAccount, audience string, policies ...string) error {
	_, err := v.Write("auth/"+mount+"/role/"+role, map[string]any{
		"role_type":       "jwt",
		"user_claim":      "sub",
		"bound_subject":   sa.Subject(),
		"bound_audiences": []string{audience},
		"token_policies":  policies,
		"token_ttl":       "1h",
	})
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
