package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Token is a Vault token obtained by a login.
type Token struct {
	Value     string
	Accessor  string
	TTL       time.Duration // zero for tokens that do not expire
	Renewable bool
	IssuedAt  time.Time
}

// String never prints the token itself.
func (t *Token) String() string { return "vault-token(accessor=" + t.Accessor + ")" }

// Login logs in to the auth mount (kubernetes or jwt: both take role and jwt)
// and returns the Vault token.
func (c *Client) Login(ctx context.Context, mount, role, jwt string) (*Token, error) {
	body, err := json.Marshal(map[string]string{"role": role, "jwt": jwt})
	if err != nil {
		return nil, err
	}
	op := "login to auth/" + mount
	req := c.api.NewRequest(http.MethodPost, "/v1/auth/"+mount+"/login")
	req.ClientToken = "" // a login presents the JWT, never a token
	req.BodyBytes = body
	resp, err := c.send(ctx, "login", op, req)
	if err != nil {
		return nil, err
	}
	a := resp.Secret.Auth
	if a == nil || a.ClientToken == "" {
		return nil, fmt.Errorf("%s at %s: Vault's answer holds no token", op, c.addr)
	}
	return &Token{
		Value:     a.ClientToken,
		Accessor:  a.Accessor,
		TTL:       time.Duration(a.LeaseDuration) * time.Second,
		Renewable: a.Renewable,
		IssuedAt:  time.Now(),
	}, nil
}

// RenewSelf extends token by increment (Vault may grant less) and returns
// the token with its new TTL.
func (c *Client) RenewSelf(ctx context.Context, token *Token, increment time.Duration) (*Token, error) {
	body, _ := json.Marshal(map[string]any{"increment": int64(increment / time.Second)})
	req := c.api.NewRequest(http.MethodPost, "/v1/auth/token/renew-self")
	req.ClientToken = token.Value
	req.BodyBytes = body
	resp, err := c.send(ctx, "renew-token", "renew token "+token.Accessor, req)
	if err != nil {
		return nil, err
	}
	a := resp.Secret.Auth
	if a == nil {
		return nil, fmt.Errorf("renewing token at %s: Vault's answer holds no auth", c.addr)
	}
	out := *token
	out.TTL = time.Duration(a.LeaseDuration) * time.Second
	out.Renewable = a.Renewable
	out.IssuedAt = time.Now()
	return &out, nil
}

// RevokeSelf revokes token (and, in Vault, every lease it created).
func (c *Client) RevokeSelf(ctx context.Context, token *Token) error {
	req := c.api.NewRequest(http.MethodPost, "/v1/auth/token/revoke-self")
	req.ClientToken = token.Value
	_, err := c.send(ctx, "revoke-token", "revoke token "+token.Accessor, req)
	var empty *EmptyResponseError
	if errors.As(err, &empty) { // 204 is success here
		return nil
	}
	return err
}

// LookupSelf checks that token is still valid: a 403 on a read may be a
// policy denial with a perfectly good token, or a revoked one.
func (c *Client) LookupSelf(ctx context.Context, token *Token) error {
	req := c.api.NewRequest(http.MethodGet, "/v1/auth/token/lookup-self")
	req.ClientToken = token.Value
	_, err := c.send(ctx, "lookup-token", "look up token "+token.Accessor, req)
	return err
}
