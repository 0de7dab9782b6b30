package cache

import (
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
// they cannot be renewed (enough) or Vault refuses them.
//
// The cache is bounded fairly between pods (fairLRU). A token evicted for
// room is forgotten, never revoked: eviction is decided by what other pods
// do, and every SecretProviderClass parameter is a pod author's input, so
// revoking on eviction would let one pod revoke another's token, and with it
// every credential that pod holds. An evicted token stays valid in Vault
// until its TTL, and so do the leases created under it.
type tokenCache struct {
	login Loginer
	life  lifetime
	// onEvict is called with each token dropped for room or by revokeAll,
	// under the identity key it was cached for.
	onEvict func(key string, tok *vault.Token)

	mu    sync.Mutex
	lru   *fairLRU[*tokenEntry] // by identity key
	group singleflight.Group
}

type tokenEntry struct {
	key      string
	tok      *vault.Token
	loginTTL time.Duration // TTL granted at login, the yardstick for renewals
	vc       *vault.Client
}

// newTokenCache holds at most size tokens, and perPod for one pod.
func newTokenCache(login Loginer, life lifetime, size, perPod int) *tokenCache {
	c := &tokenCache{login: login, life: life, lru: newFairLRU[*tokenEntry]("tokens", size, perPod)}
	c.lru.onEvict = func(key string, e *tokenEntry, _ string) {
		metrics.TokenCache.WithLabelValues("evicted").Inc()
		if c.onEvict != nil {
			c.onEvict(key, e.tok)
		}
	}
	return c
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
			if tok, ok := c.renew(ctx, vc, id, e); ok {
				return tok, nil
			}
		}
		return c.loginAs(ctx, vc, cfg, id, "login")
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
	if e, ok := c.lru.peek(key); ok && e.tok.Value == tok.Value {
		c.lru.remove(key)
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
		return c.loginAs(ctx, vc, cfg, id, "relogin")
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

func (c *tokenCache) renew(ctx context.Context, vc *vault.Client, id Identity, e *tokenEntry) (*vault.Token, bool) {
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
	c.store(id, tok, e.loginTTL, vc)
	return tok, true
}

func (c *tokenCache) loginAs(ctx context.Context, vc *vault.Client, cfg *config.Config, id Identity, outcome string) (*vault.Token, error) {
	tok, err := c.login.Login(ctx, vc, cfg)
	if err != nil {
		return nil, err
	}
	tok.IssuedAt = c.life.now()
	metrics.TokenCache.WithLabelValues(outcome).Inc()
	c.store(id, tok, tok.TTL, vc)
	return tok, nil
}

func (c *tokenCache) lookup(key string) *tokenEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, _ := c.lru.get(key)
	return e
}

// store caches tok for id, evicting (never revoking) for room.
func (c *tokenCache) store(id Identity, tok *vault.Token, loginTTL time.Duration, vc *vault.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.put(id.key, id.pod, &tokenEntry{key: id.key, tok: tok, loginTTL: loginTTL, vc: vc})
}

// revokeAll empties the cache and revokes every token it held (and with each,
// in Vault, the leases created under it), waiting for Vault's answers;
// onEvict is called for each. It returns how many tokens Vault revoked and
// the first error.
func (c *tokenCache) revokeAll(ctx context.Context) (int, error) {
	c.mu.Lock()
	entries := c.lru.drain()
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
