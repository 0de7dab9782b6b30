// Package cache keeps a pod identity's Vault credentials between Mounts: its
// Vault token (tokens.go) and the leased answers it obtained with it —
// dynamic secrets and certificates (leases.go) — under one refresh rule
// (lifetime.go). The driver calls Mount for every pod volume on every
// rotation poll; without this, each poll would cost a login and a new
// credential.
package cache

import (
	"context"
	"errors"
	"net/http"
	"time"

	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// Defaults of the per-pod quotas (Options.MaxTokensPerPod,
// MaxLeasesPerPod).
const (
	DefaultMaxTokensPerPod = 8
	DefaultMaxLeasesPerPod = 100
)

// Options size and tune a Cache.
type Options struct {
	// TokenCacheSize bounds the tokens kept (one per identity); at least
	// one is.
	TokenCacheSize int
	// LeaseCacheSize bounds the leased answers kept; zero means
	// DefaultMaxEntries.
	LeaseCacheSize int
	// MaxTokensPerPod bounds the tokens (identities) one pod keeps; zero
	// means DefaultMaxTokensPerPod.
	MaxTokensPerPod int
	// MaxLeasesPerPod bounds the leased answers one pod keeps; zero means
	// DefaultMaxLeasesPerPod.
	MaxLeasesPerPod int
	// RefreshFraction is the share of a lifetime after which a token, lease
	// or certificate is renewed or replaced; outside (0, 1) it is
	// DefaultRefreshFraction.
	RefreshFraction float64
	// Now is the clock of both caches; nil means time.Now.
	Now func() time.Time
}

// Cache holds pod identities' Vault tokens and the leases created under
// them, each pod within its quotas (see fairLRU). A token's leases go with
// it: when the token is evicted for room or Vault refuses it, the cache
// forgets them. Eviction never revokes anything in Vault; only RevokeAll
// does. It is safe for concurrent use.
type Cache struct {
	life   lifetime
	tokens *tokenCache
	leases *leaseCache
}

// New returns a Cache that logs in through login.
func New(login Loginer, o Options) *Cache {
	life := lifetime{fraction: o.RefreshFraction, clock: o.Now}
	c := &Cache{
		life:   life,
		tokens: newTokenCache(login, life, o.TokenCacheSize, orDefault(o.MaxTokensPerPod, DefaultMaxTokensPerPod)),
		leases: newLeaseCache(life, orDefault(o.LeaseCacheSize, DefaultMaxEntries), orDefault(o.MaxLeasesPerPod, DefaultMaxLeasesPerPod)),
	}
	// An evicted token's leases stay valid in Vault until their TTL, but
	// the cache can no longer renew them with their creator: it forgets
	// them, and the pod's next Mount logs in and gets new ones. (RevokeAll
	// revokes them in Vault with the token.)
	c.tokens.onEvict = func(key string, tok *vault.Token) { c.leases.forgetToken(key, tok.Accessor) }
	return c
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Now is the caches' clock. A token issued before a Mount's start was cached
// by an earlier one (see Refused).
func (c *Cache) Now() time.Time { return c.life.now() }

// Token returns a usable Vault token for id: the cached one, renewed when
// due, or a new login with cfg.
func (c *Cache) Token(ctx context.Context, vc *vault.Client, id Identity, cfg *config.Config) (*vault.Token, error) {
	return c.tokens.token(ctx, vc, id, cfg)
}

// Fetch returns the answer to req for id, made with tok: a cached leased
// answer while it is fresh, else Vault's.
func (c *Cache) Fetch(ctx context.Context, vc *vault.Client, tok *vault.Token, id Identity, req config.Request) (*vault.Response, Outcome, error) {
	return c.leases.fetch(ctx, vc, tok, id, req)
}

// Refused handles Vault refusing (403) a request made with tok for id. Vault
// says 403 for a policy denial and for a token that was revoked or expired
// early alike; only the latter is worth a new login, and only for a token
// cached by an earlier Mount (issued before issuedBefore): one from this
// Mount is as new as a login gets. So Refused asks Vault (lookup-self): a
// live token is kept with its leases, and retry is false, since logging in
// again would only abandon a valid token (and its leases) on every poll of a
// pod with a denied path. A dead token's leases are forgotten (Vault revoked
// them with it) and the identity logs in again, once: then newTok is the new
// token and retry true.
func (c *Cache) Refused(ctx context.Context, vc *vault.Client, id Identity, cfg *config.Config, tok *vault.Token, issuedBefore time.Time) (newTok *vault.Token, retry bool, err error) {
	if !tok.IssuedAt.Before(issuedBefore) {
		return nil, false, nil
	}
	if err := vc.LookupSelf(ctx, tok); err == nil || !forbidden(err) {
		return nil, false, nil
	}
	klog.FromContext(ctx).V(2).Info("Vault refused a cached token; logging in again", "token", tok.String())
	c.leases.forgetToken(id.Key(), tok.Accessor)
	newTok, err = c.tokens.relogin(ctx, vc, id, cfg, tok)
	if err != nil {
		return nil, false, err
	}
	return newTok, true, nil
}

func forbidden(err error) bool {
	var se *vault.StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusForbidden
}

// RevokeAll empties the cache and revokes every token it held (and with each,
// in Vault, the leases created under it, which it forgets), waiting for
// Vault's answers. It returns how many tokens Vault revoked and the first
// error. It is for short-lived users such as `provider mount`: the server
// never calls it, since its pods keep using their credentials across
// provider restarts.
func (c *Cache) RevokeAll(ctx context.Context) (int, error) {
	return c.tokens.revokeAll(ctx)
}

// Leases is the number of cached leased answers (dynamic credentials,
// certificates).
func (c *Cache) Leases() int { return c.leases.count() }
