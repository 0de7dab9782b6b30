package vault

import (
	"container/list"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
	// MaxClients bounds the clients the pool keeps (-vault-client-cache-size):
	// every distinct address, namespace and TLS setting a SecretProviderClass
	// names is one, so without a bound tenants could grow it without end.
	MaxClients int
	// MaxConnections bounds the connections to one Vault address (per TLS
	// setting, shared by its namespaces), idle or busy
	// (-vault-max-connections); requests beyond it wait for one. The
	// idle ones are kept for the next request: with go-cleanhttp's
	// GOMAXPROCS+1 idle connections a busy node dialed (and closed,
	// leaving TIME_WAIT behind) a connection for most requests, which
	// cost the provider more CPU than the rest of a rotation poll.
	MaxConnections int
}

// DefaultOptions are used for zero fields of Options.
var DefaultOptions = Options{
	Timeout:      30 * time.Second,
	MaxRetries:   2,
	MinRetryWait: 100 * time.Millisecond,
	MaxRetryWait: time.Second,
	MaxClients:   256,
	// A node's Mounts could make 128 requests at once (-max-concurrent-
	// mounts 32 x -fetch-concurrency 4); Vault answers them no faster
	// for it, and each connection costs the provider memory.
	MaxConnections: 32,
}

// Target says which Vault server to talk to and how.
type Target struct {
	// Address is an http(s) URL, or a unix:// socket address (a Vault
	// Agent on the node), spoken to in plain HTTP.
	Address   string
	Namespace string
	// TLS for a Mount is cfg.TLSFor(Address): the operator's settings only
	// for an address the operator trusts. It is ignored for a unix://
	// address: nothing is read, no TLS is spoken.
	TLS config.TLS
}

type clientKey struct {
	addr string
	tls  config.TLS
	ns   string
}

// transportKey is what clients sharing connections have in common.
type transportKey struct {
	addr string
	tls  config.TLS
}

// transport is one HTTP client (connections, TLS sessions) shared by the
// pool's clients of one address and TLS setting, whatever their namespace.
type transport struct {
	hc   *http.Client
	tr   *http.Transport
	refs int // pooled clients using it
}

// building is a transport being built; others wanting it wait for done.
type building struct {
	done chan struct{}
	t    *transport
	err  error
}

// Pool hands out clients, one per Target, so connections (and TLS sessions)
// are reused across Mounts instead of being set up for every pod. It keeps
// at most Options.MaxClients, dropping the least recently used.
//
// Building a client reads the TLS files its Target names; that happens
// outside the pool's lock, once per address and TLS setting however many
// ask at the same time, so a slow file delays only those who need it.
type Pool struct {
	opts Options

	mu         sync.Mutex
	clients    map[clientKey]*list.Element // of *Client, in lru
	lru        *list.List                  // front: most recently used
	transports map[transportKey]*transport
	building   map[transportKey]*building
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
	if opts.MaxClients <= 0 {
		opts.MaxClients = DefaultOptions.MaxClients
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultOptions.MaxConnections
	}
	return &Pool{
		opts:       opts,
		clients:    map[clientKey]*list.Element{},
		lru:        list.New(),
		transports: map[transportKey]*transport{},
		building:   map[transportKey]*building{},
	}
}

// Client talks to one Vault server in one namespace. It holds no token: each
// call is made with the token it is given.
type Client struct {
	addr string
	ns   string
	key  clientKey
	api  *api.Client
	t    *transport
	pool *Pool // for the client of an origin Vault redirects to
}

// Address is the Vault address the client talks to.
func (c *Client) Address() string { return c.addr }

// Len is the number of clients the pool holds.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lru.Len()
}

// Client returns the client for t, creating it on first use.
func (p *Pool) Client(t Target) (*Client, error) {
	addr := strings.TrimRight(t.Address, "/")
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		// config refuses these; the address would go out as basic auth.
		return nil, fmt.Errorf("the Vault address %s carries user information, which is not sent", redactAddr(addr))
	}
	if config.IsUnix(t.Address) {
		if _, ok := config.SocketPath(addr); !ok {
			// config refuses these too.
			return nil, fmt.Errorf("the Vault address %q is not a unix:// address of an absolute, clean socket path", addr)
		}
		// Plain HTTP over the socket: no TLS setting applies, and one
		// client serves the socket whatever settings the caller passed.
		t.TLS = config.TLS{}
	}
	k := clientKey{addr: addr, tls: t.TLS, ns: t.Namespace}
	if c := p.cached(k); c != nil {
		return c, nil
	}
	tr, err := p.transport(transportKey{addr: addr, tls: t.TLS})
	if err != nil {
		return nil, err
	}
	ac, err := p.newAPIClient(addr, tr.hc)
	if err != nil {
		return nil, err
	}
	if t.Namespace != "" {
		ac.SetNamespace(t.Namespace)
	}
	c := &Client{addr: addr, ns: t.Namespace, key: k, api: ac, t: tr, pool: p}

	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.clients[k]; ok { // made meanwhile by another caller
		p.lru.MoveToFront(e)
		return e.Value.(*Client), nil
	}
	tk := transportKey{addr: addr, tls: t.TLS}
	if _, ok := p.transports[tk]; !ok {
		p.transports[tk] = tr
	}
	tr.refs++
	p.clients[k] = p.lru.PushFront(c)
	for p.lru.Len() > p.opts.MaxClients {
		p.dropLocked(p.lru.Back())
	}
	return c, nil
}

func (p *Pool) cached(k clientKey) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.clients[k]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*Client)
	}
	return nil
}

// dropLocked removes a client. A Mount still holding it may go on using it;
// once no pooled client shares its transport, the idle connections are
// closed (a Mount in flight opens new ones if it needs to).
func (p *Pool) dropLocked(e *list.Element) {
	c := p.lru.Remove(e).(*Client)
	delete(p.clients, c.key)
	c.t.refs--
	if c.t.refs > 0 {
		return
	}
	tk := transportKey{addr: c.key.addr, tls: c.key.tls}
	if p.transports[tk] == c.t {
		delete(p.transports, tk)
	}
	c.t.tr.CloseIdleConnections()
}

// CloseIdleConnections closes the connections the pool keeps open for the
// next requests (see Options.MaxConnections); busy ones are left alone.
func (p *Pool) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.tr.CloseIdleConnections()
	}
}

// transport returns the shared transport for k, building it (reading the
// TLS files) without holding the pool's lock; concurrent callers for the
// same k wait for the one build.
func (p *Pool) transport(k transportKey) (*transport, error) {
	p.mu.Lock()
	if tr, ok := p.transports[k]; ok {
		p.mu.Unlock()
		return tr, nil
	}
	if b, ok := p.building[k]; ok {
		p.mu.Unlock()
		<-b.done
		return b.t, b.err
	}
	b := &building{done: make(chan struct{})}
	p.building[k] = b
	p.mu.Unlock()

	b.t, b.err = p.newTransport(k)

	// Client keeps it while a pooled client uses it; a settings error is
	// not remembered: the next call tries again.
	p.mu.Lock()
	delete(p.building, k)
	p.mu.Unlock()
	close(b.done)
	return b.t, b.err
}

func (p *Pool) newTransport(k transportKey) (*transport, error) {
	if sock, ok := config.SocketPath(k.addr); ok {
		return newSocketTransport(sock, p.opts.MaxConnections), nil
	}
	tc, err := tlsConfig(k.tls)
	if err != nil {
		return nil, &SettingsError{Addr: k.addr, Err: err}
	}
	// As go-cleanhttp's pooled transport, which api.DefaultConfig uses,
	// with our TLS configuration and the proxy the VAULT_* environment
	// gives (VAULT_PROXY_ADDR, VAULT_HTTP_PROXY, else HTTP(S)_PROXY).
	tr := &http.Transport{
		Proxy: proxyFromEnvironment(),
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          p.opts.MaxConnections,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		MaxIdleConnsPerHost:   p.opts.MaxConnections,
		MaxConnsPerHost:       p.opts.MaxConnections,
		TLSClientConfig:       tc,
	}
	return newTransportFor(tr), nil
}

// newSocketTransport is the transport for a Vault Agent (or any Vault
// listener) on the Unix socket sock: every connection goes to the socket,
// whatever host the request URL names, in plain HTTP/1.1, and never through
// a proxy. The Vault client would set up the same itself for a unix://
// address, but only on an *http.Transport of its own, dialling without the
// request's context. At most maxConns connections, all kept alive (see
// Options.MaxConnections).
func newSocketTransport(sock string, maxConns int) *transport {
	d := &net.Dialer{Timeout: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns:          maxConns,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
	}
	return newTransportFor(tr)
}

func newTransportFor(tr *http.Transport) *transport {
	hc := &http.Client{
		Transport: &meteredTransport{base: tr},
		// send follows redirects itself, with the client of the origin
		// redirected to; net/http must hand them back untouched.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &transport{hc: hc, tr: tr}
}

// socketURL is the URL the Vault client addresses requests over a Unix
// socket to, as its own unix:// support does: the host names no server,
// the transport dials the socket.
const socketURL = "http://localhost"

// proxyFromEnvironment is the proxy api.DefaultConfig would use.
func proxyFromEnvironment() func(*http.Request) (*url.URL, error) {
	if t, ok := api.DefaultConfig().HttpClient.Transport.(*http.Transport); ok && t.Proxy != nil {
		return t.Proxy
	}
	return http.ProxyFromEnvironment
}

func (p *Pool) newAPIClient(addr string, hc *http.Client) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client defaults: %w", cfg.Error)
	}
	cfg.Address = addr
	if config.IsUnix(addr) {
		// The transport dials the socket (newSocketTransport).
		cfg.Address = socketURL
	}
	// DefaultConfig reads VAULT_AGENT_ADDR, which NewClient prefers over
	// Address: the SPC's or flag's address must win.
	cfg.AgentAddress = ""
	cfg.HttpClient = hc
	cfg.Timeout = p.opts.Timeout
	cfg.MaxRetries = p.opts.MaxRetries
	cfg.MinRetryWait = p.opts.MinRetryWait
	cfg.MaxRetryWait = p.opts.MaxRetryWait
	// The client would follow a redirect with the same HTTP client, so
	// with this address's TLS client certificate, to wherever it points;
	// send follows redirects itself (see redirect.go), whatever
	// VAULT_DISABLE_REDIRECTS says.
	cfg.DisableRedirects = true
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Vault client for %s: %w", redactAddr(addr), err)
	}
	// api.NewClient picks up VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment; the provider must only ever act as the pod.
	c.ClearToken()
	c.ClearNamespace()
	// The default asks the environment ($VAULT_WRAP_TTL) on every
	// request; a wrapped answer holds no secret to mount.
	c.SetWrappingLookupFunc(func(string, string) string { return "" })
	return c, nil
}
