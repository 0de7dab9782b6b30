package vault

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestTokenStringHidesValue(t *testing.T) {
	tok := &Token{Value: "hvs.secret-token", Accessor: "acc-1"}
	if s := tok.String(); strings.Contains(s, "hvs.secret-token") || !strings.Contains(s, "acc-1") {
		t.Errorf("String() = %q", s)
	}
}

func TestLogin(t *testing.T) {
	v := vaulttest.New(t)
	v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{"the-jwt"}, TTL: 120 * time.Second})
	c := newClient(t, Options{}, Target{Address: v.URL()})
	tok, err := c.Login(context.Background(), "kubernetes", "app", "the-jwt")
	if err != nil {
		t.Fatal(err)
	}
	issued := v.Logins()
	if len(issued) != 1 || tok.Value != issued[0].Value || tok.Accessor != issued[0].Accessor ||
		tok.TTL != 120*time.Second || !tok.Renewable || tok.IssuedAt.IsZero() {
		t.Errorf("Token = %+v, Vault issued %+v", tok, issued)
	}
	got := last(t, v)
	if got.Method != "POST" || got.Path != "auth/kubernetes/login" {
		t.Errorf("login sent %s %s", got.Method, got.Path)
	}
	if body := got.JSON(); body["role"] != "app" || body["jwt"] != "the-jwt" {
		t.Errorf("login body = %q", got.Body)
	}
	if _, has := got.Header["X-Vault-Token"]; has {
		t.Errorf("login sent a Vault token %q", got.Token)
	}
}

func TestLoginErrors(t *testing.T) {
	v := vaulttest.New(t)
	v.EnableAuth("jwt") // without role "app"
	c := newClient(t, Options{}, Target{Address: v.URL()})

	_, err := c.Login(context.Background(), "jwt", "app", "the-jwt")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || se.Op != "login to auth/jwt" {
		t.Fatalf("err = %v, want StatusError 400 for login to auth/jwt", err)
	}
	if strings.Contains(err.Error(), "the-jwt") {
		t.Errorf("error %q contains the JWT", err)
	}

	v.Handle("auth/jwt/login", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"data":{}}`)) })
	_, err = c.Login(context.Background(), "jwt", "app", "the-jwt")
	if err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Fatalf("err = %v, want a no-token error", err)
	}
}
