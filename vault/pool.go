package vault

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

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
		return nil, &SettingsError{Addr: addr, Err: err}
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
