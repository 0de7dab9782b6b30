package auth

import (
	"container/list"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/lifetime"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// DefaultRefreshFraction is the share of a token's or lease's lifetime after
// which it is renewed or replaced.
const DefaultRefreshFraction = lifetime.DefaultFraction

// Identity is everything a Vault token stands for. Tokens are cached per
// Identity, so two pods never share one, and neither do two Vault servers,
// namespaces, auth mounts, roles or audiences.
type Identity struct {
	VaultAddress   string
	VaultNamespace string
	TLS            config.TLS
	AuthMount      string
	Role           string
	Audience       string
	PodNamespace   string
	PodName        string
	PodUID         string
	ServiceAccount string
}

// IdentityOf returns the identity a Mount request logs in as.
func IdentityOf(c *config.Config) Identity {
	return Identity{
		VaultAddress:   strings.TrimRight(c.VaultAddress, "/"),
		VaultNamespace: c.VaultNamespace,
		TLS:            c.TLS,
		AuthMount:      c.AuthMountPath,
		Role:           c.RoleName,
		Audience:       c.TokenAudience(),
		PodNamespace:   c.Pod.Namespace,
		PodName:        c.Pod.Name,
		PodUID:         c.Pod.UID,
		ServiceAccount: c.Pod.ServiceAccountName,
	}
}

// Key is a string form of the identity, for map and singleflight keys.
func (id Identity) Key() string {
	t := id.TLS
	return strings.Join([]string{
		id.VaultAddress, id.VaultNamespace, t.CACert, t.CADirectory, t.ServerName, t.ClientCert, t.ClientKey,
		boolString(t.SkipTLSVerify), id.AuthMount, id.Role, id.Audience,
		id.PodNamespace, id.PodName, id.PodUID, id.ServiceAccount,
	}, "\x00")
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// TokenCache keeps each pod identity's Vault token between Mounts: the driver
// calls Mount for every pod on every rotation poll, and a login per poll is
// the load that makes a naive provider expensive. Tokens are renewed when
// renewable and past RefreshFraction of their TTL, and replaced by a new
// login only when they cannot be renewed (enough) or Vault refuses them.
// The cache is an LRU bounded by Size; evicted tokens are revoked.
type TokenCache struct {
	Auth            *Authenticator
	Size            int
	RefreshFraction float64
	Now             func() time.Time
	// OnEvict, when set, is called with each token evicted (and revoked).
	OnEvict func(*vault.Token)

	mu    sync.Mutex
	order *list.List // of *tokenEntry, most recently used first
	items map[string]*list.Element
	group singleflight.Group
}

type tokenEntry struct {
	key      string
	tok      *vault.Token
	loginTTL time.Duration // TTL granted at login, the yardstick for renewals
	vc       *vault.Client
}

// NewTokenCache returns a cache of at most size tokens.
func NewTokenCache(a *Authenticator, size int) *TokenCache {
	return &TokenCache{Auth: a, Size: size, RefreshFraction: DefaultRefreshFraction}
}

func (c *TokenCache) policy() lifetime.Policy {
	return lifetime.Policy{Fraction: c.RefreshFraction, Now: c.Now}
}

func (c *TokenCache) now() time.Time { return c.policy().Time() }

// Token returns a usable Vault token for the identity cfg describes.
func (c *TokenCache) Token(ctx context.Context, vc *vault.Client, cfg *config.Config) (*vault.Token, error) {
	key := IdentityOf(cfg).Key()
	if e := c.lookup(key); e != nil && c.fresh(e) {
		metrics.TokenCache.WithLabelValues("hit").Inc()
		return e.tok, nil
	}
	// One login or renewal per identity at a time: concurrent Mounts of one
	// pod (several volumes) share it.
	v, err, _ := c.group.Do(key, func() (any, error) {
		e := c.lookup(key)
		if e != nil && c.fresh(e) {
			return e.tok, nil
		}
		if e != nil && e.tok.Renewable {
			if tok, ok := c.renew(ctx, vc, e); ok {
				return tok, nil
			}
		}
		return c.login(ctx, vc, cfg, key, "login")
	})
	if err != nil {
		return nil, err
	}
	return v.(*vault.Token), nil
}

// Time is the cache's clock.
func (c *TokenCache) Time() time.Time { return c.now() }

// Invalidate drops tok after Vault refused it, so the next Token logs in.
func (c *TokenCache) Invalidate(cfg *config.Config, tok *vault.Token) {
	key := IdentityOf(cfg).Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok && el.Value.(*tokenEntry).tok.Value == tok.Value {
		c.order.Remove(el)
		delete(c.items, key)
		metrics.CachedEntries.WithLabelValues("tokens").Set(float64(len(c.items)))
	}
}

// Relogin replaces a token Vault refused, once.
func (c *TokenCache) Relogin(ctx context.Context, vc *vault.Client, cfg *config.Config, refused *vault.Token) (*vault.Token, error) {
	c.Invalidate(cfg, refused)
	key := IdentityOf(cfg).Key()
	v, err, _ := c.group.Do(key, func() (any, error) {
		if e := c.lookup(key); e != nil && e.tok.Value != refused.Value && c.fresh(e) {
			return e.tok, nil // a concurrent Mount already logged in again
		}
		return c.login(ctx, vc, cfg, key, "relogin")
	})
	if err != nil {
		return nil, err
	}
	return v.(*vault.Token), nil
}

func (c *TokenCache) fresh(e *tokenEntry) bool {
	if e.tok.TTL <= 0 {
		return true // a token without expiry
	}
	return c.policy().Fresh(e.tok.IssuedAt, e.tok.TTL)
}

func (c *TokenCache) renew(ctx context.Context, vc *vault.Client, e *tokenEntry) (*vault.Token, bool) {
	tok, err := vc.RenewSelf(ctx, e.tok, e.loginTTL)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Token renewal failed; logging in again", "token", e.tok.String(), "err", err)
		return nil, false
	}
	// Near its max TTL Vault grants less than asked; then a new login beats
	// a token (and leases under it) that expires soon.
	if c.policy().ShortRenewal(tok.TTL, e.loginTTL) {
		return nil, false
	}
	tok.IssuedAt = c.now()
	metrics.TokenCache.WithLabelValues("renewed").Inc()
	c.store(e.key, tok, e.loginTTL, vc)
	return tok, true
}

func (c *TokenCache) login(ctx context.Context, vc *vault.Client, cfg *config.Config, key, outcome string) (*vault.Token, error) {
	tok, err := c.Auth.Login(ctx, vc, cfg)
	if err != nil {
		return nil, err
	}
	tok.IssuedAt = c.now()
	metrics.TokenCache.WithLabelValues(outcome).Inc()
	c.store(key, tok, tok.TTL, vc)
	return tok, nil
}

func (c *TokenCache) lookup(key string) *tokenEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		return nil
	}
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*tokenEntry)
}

func (c *TokenCache) store(key string, tok *vault.Token, loginTTL time.Duration, vc *vault.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[string]*list.Element{}
		c.order = list.New()
	}
	e := &tokenEntry{key: key, tok: tok, loginTTL: loginTTL, vc: vc}
	if el, ok := c.items[key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
	} else {
		c.items[key] = c.order.PushFront(e)
	}
	size := c.Size
	if size <= 0 {
		size = 1
	}
	for c.order.Len() > size {
		old := c.order.Remove(c.order.Back()).(*tokenEntry)
		delete(c.items, old.key)
		metrics.TokenCache.WithLabelValues("evicted").Inc()
		if c.OnEvict != nil {
			c.OnEvict(old.tok)
		}
		go revoke(old)
	}
	metrics.CachedEntries.WithLabelValues("tokens").Set(float64(len(c.items)))
}

// RevokeAll empties the cache and revokes every token it held (and with each,
// in Vault, the leases created under it), waiting for Vault's answers; OnEvict
// is called for each. It returns how many tokens Vault revoked and the first
// error. It is for short-lived users such as `provider mount`: the server
// never calls it, since its pods keep using their credentials across provider
// restarts.
func (c *TokenCache) RevokeAll(ctx context.Context) (int, error) {
	c.mu.Lock()
	var entries []*tokenEntry
	if c.order != nil {
		for el := c.order.Front(); el != nil; el = el.Next() {
			entries = append(entries, el.Value.(*tokenEntry))
		}
		c.order.Init()
	}
	c.items = nil
	metrics.CachedEntries.WithLabelValues("tokens").Set(0)
	c.mu.Unlock()

	n := 0
	var first error
	for _, e := range entries {
		if c.OnEvict != nil {
			c.OnEvict(e.tok)
		}
		if err := e.vc.RevokeSelf(ctx, e.tok); err != nil {
			if first == nil {
				first = fmt.Errorf("revoking %s: %w", e.tok, err)
			}
			continue
		}
		n++
	}
	return n, first
}

// revoke is best effort: an evicted token most likely belongs to a pod that
// is gone, and leaving it to expire would leave its leases alive too.
func revoke(e *tokenEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.vc.RevokeSelf(ctx, e.tok); err != nil {
		klog.V(2).InfoS("Revoking an evicted token failed", "token", e.tok.String(), "err", err)
	}
}
