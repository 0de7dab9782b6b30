package cache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// Loginer exchanges the pod's service account token for a Vault token; it is
// all the cache needs of auth (auth.Authenticator is one).
type Loginer interface {
	Login(ctx context.Context, vc *vault.Client, cfg *config.Config) (*vault.Token, error)
}

// tokenCache keeps each pod identity's Vault token between Mounts: the driver
// calls Mount for every pod on every rotation poll, and a login per poll is
// the load that makes a naive provider expensive. Tokens are renewed when
// renewable and past the refresh point, and replaced by a new login only when
// they cannot be renewed (enough) or Vault refuses them. The cache is an LRU
// bounded by size; evicted tokens are revoked.
type tokenCache struct {
	login Loginer
	size  int // at least one token is kept
	life  lifetime
	// onEvict is called with each token evicted (and revoked), under the
	// identity key it was cached for.
	onEvict func(key string, tok *vault.Token)

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

// token returns a usable Vault token for id; cfg is what logs it in.
func (c *tokenCache) token(ctx context.Context, vc *vault.Client, id Identity, cfg *config.Config) (*vault.Token, error) {
	key := id.Key()
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
		return c.loginAs(ctx, vc, cfg, key, "login")
	})
	if err != nil {
		return nil, err
	}
	return v.(*vault.Token), nil
}

// invalidate drops tok after Vault refused it, so the next token call logs
// in.
func (c *tokenCache) invalidate(id Identity, tok *vault.Token) {
	key := id.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok && el.Value.(*tokenEntry).tok.Value == tok.Value {
		c.order.Remove(el)
		delete(c.items, key)
		metrics.CachedEntries.WithLabelValues("tokens").Set(float64(len(c.items)))
	}
}

// relogin replaces a token Vault refused, once.
func (c *tokenCache) relogin(ctx context.Context, vc *vault.Client, id Identity, cfg *config.Config, refused *vault.Token) (*vault.Token, error) {
	c.invalidate(id, refused)
	key := id.Key()
	v, err, _ := c.group.Do(key, func() (any, error) {
		if e := c.lookup(key); e != nil && e.tok.Value != refused.Value && c.fresh(e) {
			return e.tok, nil // a concurrent Mount already logged in again
		}
		return c.loginAs(ctx, vc, cfg, key, "relogin")
	})
	if err != nil {
		return nil, err
	}
	return v.(*vault.Token), nil
}

func (c *tokenCache) fresh(e *tokenEntry) bool {
	if e.tok.TTL <= 0 {
		return true // a token without expiry
	}
	return c.life.fresh(e.tok.IssuedAt, e.tok.TTL)
}

func (c *tokenCache) renew(ctx context.Context, vc *vault.Client, e *tokenEntry) (*vault.Token, bool) {
	tok, err := vc.RenewSelf(ctx, e.tok, e.loginTTL)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Token renewal failed; logging in again", "token", e.tok.String(), "err", err)
		return nil, false
	}
	// Near its max TTL Vault grants less than asked; then a new login beats
	// a token (and leases under it) that expires soon.
	if c.life.shortRenewal(tok.TTL, e.loginTTL) {
		return nil, false
	}
	tok.IssuedAt = c.life.now()
	metrics.TokenCache.WithLabelValues("renewed").Inc()
	c.store(e.key, tok, e.loginTTL, vc)
	return tok, true
}

func (c *tokenCache) loginAs(ctx context.Context, vc *vault.Client, cfg *config.Config, key, outcome string) (*vault.Token, error) {
	tok, err := c.login.Login(ctx, vc, cfg)
	if err != nil {
		return nil, err
	}
	tok.IssuedAt = c.life.now()
	metrics.TokenCache.WithLabelValues(outcome).Inc()
	c.store(key, tok, tok.TTL, vc)
	return tok, nil
}

func (c *tokenCache) lookup(key string) *tokenEntry {
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

func (c *tokenCache) store(key string, tok *vault.Token, loginTTL time.Duration, vc *vault.Client) {
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
	size := max(c.size, 1)
	for c.order.Len() > size {
		old := c.order.Remove(c.order.Back()).(*tokenEntry)
		delete(c.items, old.key)
		metrics.TokenCache.WithLabelValues("evicted").Inc()
		if c.onEvict != nil {
			c.onEvict(old.key, old.tok)
		}
		go revoke(old)
	}
	metrics.CachedEntries.WithLabelValues("tokens").Set(float64(len(c.items)))
}

// revokeAll empties the cache and revokes every token it held (and with each,
// in Vault, the leases created under it), waiting for Vault's answers;
// onEvict is called for each. It returns how many tokens Vault revoked and
// the first error.
func (c *tokenCache) revokeAll(ctx context.Context) (int, error) {
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
		if c.onEvict != nil {
			c.onEvict(e.key, e.tok)
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
