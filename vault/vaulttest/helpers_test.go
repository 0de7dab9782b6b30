package vaulttest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

var ctx = context.Background()

// client is the provider's real Vault client for s, without retries.
func client(t *testing.T, s *vaulttest.Server) *vault.Client {
	t.Helper()
	return clientWith(t, s, vault.Options{MaxRetries: 0})
}

func clientWith(t *testing.T, s *vaulttest.Server, opts vault.Options) *vault.Client {
	t.Helper()
	c, err := vault.NewPool(opts).Client(vault.Target{Address: s.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// login logs in at jwt as role app with any JWT, enabling both first.
func login(t *testing.T, s *vaulttest.Server, r vaulttest.Role) *vault.Token {
	t.Helper()
	s.EnableAuth("jwt").Role("app", r)
	tok, err := client(t, s).Login(ctx, "jwt", "app", "a-jwt")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return tok
}

func get(path string) config.Request { return config.Request{Method: "GET", Path: path} }

func put(path string, body map[string]any) config.Request {
	b, _ := json.Marshal(body)
	return config.Request{Method: "PUT", Path: path, Body: b}
}

// status is the HTTP status of a *vault.StatusError, 0 for nil and -1 for
// other errors.
func status(err error) int {
	var se *vault.StatusError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se):
		return se.StatusCode
	}
	return -1
}

// makeJWT is an unsigned JWT with subject sub.
func makeJWT(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"sub": sub, "aud": []string{"vault"}})
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(claims) + ".c2ln"
}
