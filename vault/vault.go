// Package vault is the provider's only door to Vault: it builds (and reuses)
// HTTP clients per Vault address and TLS settings, logs in with a service
// account JWT, and performs the reads and writes objects ask for. Errors are
// typed (StatusError, UnreachableError) so callers can map them to gRPC codes
// without parsing strings, and never carry tokens, bodies or query values.
package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// maxResponseBytes bounds what is read of one Vault response. The driver
// refuses Mount responses over 4 MiB anyway.
const maxResponseBytes = 8 << 20

// Options tune every client the pool creates.
type Options struct {
	// Timeout bounds one HTTP attempt; the caller's context bounds the whole call.
	Timeout time.Duration
	// MaxRetries is how often a connection error or 5xx is retried.
	MaxRetries   int
	MinRetryWait time.Duration
	MaxRetryWait time.Duration
}

// DefaultOptions are used for zero fields of Options.
var DefaultOptions = Options{
	Timeout:      30 * time.Second,
	MaxRetries:   2,
	MinRetryWait: 100 * time.Millisecond,
	MaxRetryWait: time.Second,
}

// Target says which Vault server to talk to and how.
type Target struct {
	Address   string
	Namespace string
	TLS       config.TLS
}

type clientKey struct {
	addr string
	tls  config.TLS
	ns   string
}

// Pool hands out clients, one per Target, so connections (and TLS sessions)
// are reused across Mounts instead of being set up for every pod.
type Pool struct {
	opts Options
	mu   sync.Mutex
	m    map[clientKey]*Client
}

// NewPool returns an empty pool.
func NewPool(opts Options) *Pool {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultOptions.Timeout
	}
	if opts.MinRetryWait == 0 {
		opts.MinRetryWait = DefaultOptions.MinRetryWait
	}
	if opts.MaxRetryWait == 0 {
		opts.MaxRetryWait = DefaultOptions.MaxRetryWait
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	return &Pool{opts: opts, m: map[clientKey]*Client{}}
}

// Client talks to one Vault server in one namespace. It holds no token: each
// call is made with the token it is given.
type Client struct {
	addr string
	api  *api.Client
}

// Address is the Vault address the client talks to.
func (c *Client) Address() string { return c.addr }

// Client returns the client for t, creating it on first use.
func (p *Pool) Client(t Target) (*Client, error) {
	k := clientKey{addr: strings.TrimRight(t.Address, "/"), tls: t.TLS, ns: t.Namespace}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.m[k]; ok {
		return c, nil
	}
	// Clients of one server and TLS setting share the HTTP transport.
	base := clientKey{addr: k.addr, tls: k.tls}
	var c *Client
	if b, ok := p.m[base]; ok {
		ac, err := cloneClean(b.api)
		if err != nil {
			return nil, err
		}
		c = &Client{addr: k.addr, api: ac}
	} else {
		ac, err := p.newAPIClient(k.addr, k.tls)
		if err != nil {
			return nil, err
		}
		c = &Client{addr: k.addr, api: ac}
		p.m[base] = c
		if k == base {
			return c, nil
		}
		ac2, err := cloneClean(ac)
		if err != nil {
			return nil, err
		}
		c = &Client{addr: k.addr, api: ac2}
	}
	c.api.SetNamespace(k.ns)
	p.m[k] = c
	return c, nil
}

// cloneClean clones c. Clone goes through api.NewClient, which reads
// VAULT_TOKEN (and VAULT_HEADERS) from the environment again: clear them, or
// a namespaced client would present the provider's own token.
func cloneClean(c *api.Client) (*api.Client, error) {
	ac, err := c.Clone()
	if err != nil {
		return nil, fmt.Errorf("cloning Vault client: %w", err)
	}
	ac.ClearToken()
	return ac, nil
}

func (p *Pool) newAPIClient(addr string, t config.TLS) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client defaults: %w", cfg.Error)
	}
	cfg.Address = addr
	// DefaultConfig reads VAULT_AGENT_ADDR, which NewClient prefers over
	// Address: the SPC's or flag's address must win.
	cfg.AgentAddress = ""
	cfg.Timeout = p.opts.Timeout
	cfg.MaxRetries = p.opts.MaxRetries
	cfg.MinRetryWait = p.opts.MinRetryWait
	cfg.MaxRetryWait = p.opts.MaxRetryWait
	if err := cfg.ConfigureTLS(&api.TLSConfig{
		CACert:        t.CACert,
		CAPath:        t.CADirectory,
		ClientCert:    t.ClientCert,
		ClientKey:     t.ClientKey,
		TLSServerName: t.ServerName,
		Insecure:      t.SkipTLSVerify,
	}); err != nil {
		return nil, config.Errorf("Vault TLS settings for %s cannot be used: %v; check vaultCACertPath, vaultCADirectory and the client cert/key paths (they are read on the provider's node)", addr, err)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Vault client for %s: %w", addr, err)
	}
	// api.NewClient picks up VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment; the provider must only ever act as the pod.
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

// Response is a successful Vault response.
type Response struct {
	// Secret is the decoded body; numbers are json.Number so re-encoding
	// keeps them as Vault sent them.
	Secret *api.Secret
}

// StatusError is an HTTP error status from Vault.
type StatusError struct {
	Op         string // what was attempted, e.g. "GET secret/data/app"
	Addr       string
	StatusCode int
	Errors     []string
}

func (e *StatusError) Error() string {
	msg := strings.Join(cleanErrors(e.Errors), "; ")
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s at %s: Vault answered %d: %s", e.Op, e.Addr, e.StatusCode, msg)
}

// cleanErrors flattens Vault's multierror text ("1 error occurred:\n\t*
// permission denied\n\n") into one line per error.
func cleanErrors(errs []string) []string {
	var out []string
	for _, e := range errs {
		lines := strings.Split(e, "\n")
		if len(lines) > 1 && strings.HasSuffix(strings.TrimSpace(lines[0]), "occurred:") {
			lines = lines[1:]
		}
		for _, l := range lines {
			l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
			if l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// Sealed reports whether Vault refused because it is sealed.
func (e *StatusError) Sealed() bool {
	if e.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	for _, m := range e.Errors {
		if strings.Contains(strings.ToLower(m), "sealed") {
			return true
		}
	}
	return false
}

// UnreachableError is a failure to get any HTTP answer from Vault.
type UnreachableError struct {
	Op   string
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s: cannot reach Vault at %s: %v", e.Op, e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// EmptyResponseError is a success status with no body to read a secret from.
type EmptyResponseError struct {
	Op         string
	StatusCode int
}

func (e *EmptyResponseError) Error() string {
	return fmt.Sprintf("%s: Vault answered %d with no data", e.Op, e.StatusCode)
}

// Do performs r with token and decodes the answer.
func (c *Client) Do(ctx context.Context, token string, r config.Request) (*Response, error) {
	op := r.Method + " " + r.Path
	req := c.api.NewRequest(r.Method, "/v1/"+r.Path)
	req.ClientToken = token
	if len(r.Query) > 0 {
		req.Params = r.Query
	}
	if r.Body != nil {
		req.BodyBytes = r.Body
	}
	kind := "write"
	if r.Method == http.MethodGet {
		kind = "read"
	}
	resp, err := c.send(ctx, kind, op, req)
	var se *StatusError
	if errors.As(err, &se) {
		se.Errors = redact(se.Errors, requestValues(r))
	}
	return resp, err
}

// requestValues are the query values and body strings of r: what a pod
// author passed as secretArgs or in a ?query, which Vault's error texts
// quote ("common name X not allowed") and messages must not.
func requestValues(r config.Request) []string {
	var vals []string
	for _, vs := range r.Query {
		vals = append(vals, vs...)
	}
	if len(r.Body) > 0 {
		var body any
		if json.Unmarshal(r.Body, &body) == nil {
			var walk func(any)
			walk = func(v any) {
				switch t := v.(type) {
				case string:
					vals = append(vals, t)
				case map[string]any:
					for _, e := range t {
						walk(e)
					}
				case []any:
					for _, e := range t {
						walk(e)
					}
				}
			}
			walk(body)
		}
	}
	return vals
}

// redact replaces every value of 3 bytes or more in msgs; shorter ones are
// too common in prose to replace and too short to matter.
func redact(msgs, values []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		for _, v := range values {
			if len(v) >= 3 {
				m = strings.ReplaceAll(m, v, "<redacted>")
			}
		}
		out[i] = m
	}
	return out
}

func (c *Client) send(ctx context.Context, kind, op string, req *api.Request) (*Response, error) {
	start := time.Now()
	//lint:ignore SA1019 RawRequestWithContext is the one call that takes any method, query and body.
	resp, err := c.api.RawRequestWithContext(ctx, req)
	metrics.VaultDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	statusLabel := "error"
	if resp != nil {
		statusLabel = strconv.Itoa(resp.StatusCode)
	}
	metrics.VaultRequests.WithLabelValues(kind, statusLabel).Inc()
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			return nil, &StatusError{Op: op, Addr: c.addr, StatusCode: re.StatusCode, Errors: re.Errors}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s at %s: %w", op, c.addr, ctxErr)
		}
		return nil, &UnreachableError{Op: op, Addr: c.addr, Err: scrub(err)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s at %s: %w", op, c.addr, ctxErr)
		}
		return nil, &UnreachableError{Op: op, Addr: c.addr, Err: err}
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%s: Vault's answer is larger than %d MiB", op, maxResponseBytes>>20)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &EmptyResponseError{Op: op, StatusCode: resp.StatusCode}
	}
	secret, err := api.ParseSecret(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: Vault's answer is not JSON: %v", op, err)
	}
	if secret == nil {
		return nil, &EmptyResponseError{Op: op, StatusCode: resp.StatusCode}
	}
	return &Response{Secret: secret}, nil
}

// scrub drops the request URL that net/http puts in transport errors: for a
// GET it holds the query, which may carry secretArgs values.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

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

// Lease is the state of a renewed lease.
type Lease struct {
	ID        string
	Duration  time.Duration
	Renewable bool
}

// RenewLease extends a secret's lease by increment (Vault may grant less).
func (c *Client) RenewLease(ctx context.Context, token, leaseID string, increment time.Duration) (*Lease, error) {
	body, _ := json.Marshal(map[string]any{"lease_id": leaseID, "increment": int64(increment / time.Second)})
	req := c.api.NewRequest(http.MethodPut, "/v1/sys/leases/renew")
	req.ClientToken = token
	req.BodyBytes = body
	resp, err := c.send(ctx, "renew-lease", "renew lease", req)
	if err != nil {
		return nil, err
	}
	return &Lease{
		ID:        resp.Secret.LeaseID,
		Duration:  time.Duration(resp.Secret.LeaseDuration) * time.Second,
		Renewable: resp.Secret.Renewable,
	}, nil
}

// LookupSelf checks that token is still valid: a 403 on a read may be a
// policy denial with a perfectly good token, or a revoked one.
func (c *Client) LookupSelf(ctx context.Context, token *Token) error {
	req := c.api.NewRequest(http.MethodGet, "/v1/auth/token/lookup-self")
	req.ClientToken = token.Value
	_, err := c.send(ctx, "lookup-token", "look up token "+token.Accessor, req)
	return err
}
