package cache

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// DefaultMaxEntries bounds the lease cache when Options.LeaseCacheSize is
// zero.
const DefaultMaxEntries = 10000

// leaseCache keeps Vault answers that carry a lifetime — leased dynamic
// secrets (database, RabbitMQ, cloud credentials) and issued PKI certificates
// — per pod identity and request, so that rotation polls get the same
// credential back instead of a new one every poll. Leases are renewed when
// renewable; a new credential is requested only once the refresh point has
// passed.
//
// Answers without a lifetime (KV reads) are never served from the cache, so
// rotation sees every change, but identical concurrent reads of one identity
// are collapsed into one Vault call.
//
// Each lease is indexed under the token that created it (identity and
// accessor), as Vault Agent's cache indexes leases under their tokens: when
// that token is gone, so are its leases, and forgetting them touches only
// them.
//
// The cache is bounded fairly between pods (fairLRU): one Mount of
// thousands of leased objects evicts its own pod's answers, not other
// pods'. An answer evicted for room is forgotten; its lease stays valid in
// Vault until its TTL.
type leaseCache struct {
	life lifetime

	mu  sync.Mutex
	lru *fairLRU[*entry] // by identity key and request key
	// byToken holds the keys of the lease entries each creator token (see
	// tokenKey) created.
	byToken map[string]map[string]struct{}
	group   singleflight.Group
}

// newLeaseCache holds at most size answers, and perPod for one pod.
func newLeaseCache(life lifetime, size, perPod int) *leaseCache {
	c := &leaseCache{life: life, lru: newFairLRU[*entry]("leases", size, perPod), byToken: map[string]map[string]struct{}{}}
	c.lru.onEvict = func(key string, e *entry, _ string) { c.unindexLocked(key, e) }
	return c
}

type entry struct {
	resp      *vault.Response
	issued    time.Time // of the credential, or of its last renewal
	ttl       time.Duration
	origTTL   time.Duration // lifetime granted at issue: the renewal yardstick
	leaseID   string
	renewable bool
	// A lease dies with the token that created it.
	creator         string // tokenKey of that token; empty for certificates
	creatorAccessor string
	creatorEnd      time.Time // zero: no expiry
	creatorTTL      time.Duration
}

// tokenKey names a token among all identities: an accessor is Vault's name
// for a token, but only the identity says which Vault (and cache entry) it
// belongs to.
func tokenKey(identity, accessor string) string { return identity + "\x00" + accessor }

// Outcome says how a Fetch was served.
type Outcome string

// Outcomes of Fetch.
const (
	Hit     Outcome = "hit"     // cached credential, still fresh
	Renewed Outcome = "renewed" // cached credential, lease renewed
	Issued  Outcome = "issued"  // new credential from Vault
	Read    Outcome = "read"    // uncacheable answer, read from Vault
)

// fetch returns the answer to req for id, from the cache when it holds a
// fresh one.
func (c *leaseCache) fetch(ctx context.Context, vc *vault.Client, tok *vault.Token, id Identity, req config.Request) (*vault.Response, Outcome, error) {
	key := id.Key() + "\x00" + req.Key()
	type result struct {
		resp    *vault.Response
		outcome Outcome
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		now := c.life.now()
		if e := c.get(key); e != nil {
			if now.Before(c.refreshAt(e, tok)) {
				return result{e.resp, Hit}, nil
			}
			if e.renewable && e.leaseID != "" && e.creatorAccessor == tok.Accessor {
				if ok := c.renew(ctx, vc, tok, id, key, e); ok {
					return result{e.resp, Renewed}, nil
				}
			}
		}
		resp, err := vc.Do(ctx, tok.Value, req)
		if err != nil {
			return nil, err
		}
		if e := lifetimeOf(resp, c.life.now()); e != nil {
			e.creatorAccessor = tok.Accessor
			if e.leaseID != "" && tok.Accessor != "" {
				e.creator = tokenKey(id.Key(), tok.Accessor)
			}
			if tok.TTL > 0 {
				e.creatorEnd = tok.IssuedAt.Add(tok.TTL)
				e.creatorTTL = tok.TTL
			}
			c.put(key, id.pod, e)
			return result{resp, Issued}, nil
		}
		c.drop(key)
		return result{resp, Read}, nil
	})
	if err != nil {
		return nil, "", err
	}
	r := v.(result)
	if r.outcome != Read {
		metrics.LeaseCache.WithLabelValues(string(r.outcome)).Inc()
	}
	return r.resp, r.outcome, nil
}

// refreshAt is when a cached credential stops being served as it is: once
// less than (1-fraction) of its lifetime is left. A lease cannot outlive the
// token it was created under (Vault revokes it with the token), so its end is
// the earlier of the two, and the margin is taken of the shorter lifetime:
// otherwise a long lease under a short token would be past its refresh point
// from the start. Certificates do not depend on the token.
func (c *leaseCache) refreshAt(e *entry, current *vault.Token) time.Time {
	end := e.issued.Add(e.ttl)
	life := e.origTTL
	if e.leaseID != "" {
		creatorEnd, creatorTTL := e.creatorEnd, e.creatorTTL
		if e.creatorAccessor == current.Accessor {
			// The creator is the token in use: the token cache keeps it renewed.
			creatorEnd, creatorTTL = time.Time{}, current.TTL
			if current.TTL > 0 {
				creatorEnd = current.IssuedAt.Add(current.TTL)
			}
		}
		if !creatorEnd.IsZero() && creatorEnd.Before(end) {
			end = creatorEnd
			if creatorTTL > 0 && creatorTTL < life {
				life = creatorTTL
			}
		}
	}
	return end.Add(-c.life.margin(life))
}

// forgetToken drops every lease created under the token of identity id with
// this accessor: Vault revoked them with it (a 403, or RevokeAll), or the
// token was evicted for room, so the cache cannot renew them with it.
// Another identity's token with the same accessor string, on another Vault,
// keeps its leases.
func (c *leaseCache) forgetToken(id, accessor string) {
	if accessor == "" {
		return
	}
	tk := tokenKey(id, accessor)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.byToken[tk] {
		c.lru.remove(k)
	}
	delete(c.byToken, tk)
}

func (c *leaseCache) renew(ctx context.Context, vc *vault.Client, tok *vault.Token, id Identity, key string, e *entry) bool {
	l, err := vc.RenewLease(ctx, tok.Value, e.leaseID, e.origTTL)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Lease renewal failed; requesting a new credential", "err", err)
		return false
	}
	// Near the lease's max TTL Vault grants less than asked: replace the
	// credential while the old one still works.
	if c.life.shortRenewal(l.Duration, e.origTTL) {
		return false
	}
	renewed := *e
	renewed.issued = c.life.now()
	renewed.ttl = l.Duration
	renewed.renewable = l.Renewable
	c.put(key, id.pod, &renewed)
	return true
}

// lifetimeOf returns a cache entry for answers that carry a lifetime: a
// lease, or a certificate's expiration; nil for the rest.
func lifetimeOf(resp *vault.Response, now time.Time) *entry {
	s := resp.Secret
	if s.LeaseID != "" && s.LeaseDuration > 0 {
		d := time.Duration(s.LeaseDuration) * time.Second
		return &entry{resp: resp, issued: now, ttl: d, origTTL: d, leaseID: s.LeaseID, renewable: s.Renewable}
	}
	// PKI issue/sign answers: no lease, but the certificate's expiration.
	if _, isCert := s.Data["certificate"]; isCert {
		if exp, ok := unixSeconds(s.Data["expiration"]); ok {
			d := exp.Sub(now)
			if d > 0 {
				return &entry{resp: resp, issued: now, ttl: d, origTTL: d}
			}
		}
	}
	return nil
}

func unixSeconds(v any) (time.Time, bool) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		x, err := n.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = x
	case float64:
		f = n
	case int64:
		f = float64(n)
	default:
		return time.Time{}, false
	}
	if f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// get returns the answer cached at key, marking it used.
func (c *leaseCache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, _ := c.lru.get(key)
	return e
}

func (c *leaseCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.remove(key); ok {
		c.unindexLocked(key, e)
	}
}

// put caches e at key for pod, evicting for room (see fairLRU).
func (c *leaseCache) put(key, pod string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.peek(key); ok {
		c.unindexLocked(key, old) // its creator may differ from e's
	}
	c.lru.put(key, pod, e)
	if e.creator != "" {
		keys := c.byToken[e.creator]
		if keys == nil {
			keys = map[string]struct{}{}
			c.byToken[e.creator] = keys
		}
		keys[key] = struct{}{}
	}
}

// unindexLocked removes the entry e at key from the token index.
func (c *leaseCache) unindexLocked(key string, e *entry) {
	if e.creator == "" {
		return
	}
	if keys := c.byToken[e.creator]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byToken, e.creator)
		}
	}
}

// count is the number of cached answers.
func (c *leaseCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.len()
}
