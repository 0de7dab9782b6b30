package config

import (
	"container/list"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"sync"
)

// The driver sends every pod's volume again on every rotation poll, and a
// node's pods share a few SecretProviderClasses: parsing and checking the
// same "objects" YAML on every Mount was the largest share of the
// provider's own CPU. Classes keeps the parsed objects of recent classes.
//
// Tenant safety: the key is a SHA-256 of the objects text together with
// the Limits it was parsed under, which is everything parseObjects reads;
// nothing of the pod (identity, token, volume attributes other than the
// objects text) enters the key or the value. A cached value is what
// parsing the same text under the same limits returns, so a Mount can get
// from the cache only what it would have parsed itself; errors are not
// cached. The cached objects are never modified: each Mount gets its own
// copy of the slice, and the maps, templates and derived values the
// objects point to are only read.

// Default bounds of a Classes cache.
const (
	DefaultClassCacheEntries = 512
	DefaultClassCacheBytes   = 32 << 20
)

// Classes is a bounded LRU cache of parsed objects parameters, safe for
// concurrent use. A nil *Classes caches nothing.
type Classes struct {
	maxEntries int
	maxBytes   int

	mu    sync.Mutex
	lru   *list.List // of *class, most recently used first
	items map[classKey]*list.Element
	bytes int
}

type classKey struct {
	sum [sha256.Size]byte
	lim Limits
}

type class struct {
	key     classKey
	objects []Object
	size    int
}

// NewClasses returns a cache of at most maxEntries classes and about
// maxBytes of parsed objects (estimated; see classSize); zero or negative
// bounds are the defaults.
func NewClasses(maxEntries, maxBytes int) *Classes {
	if maxEntries <= 0 {
		maxEntries = DefaultClassCacheEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultClassCacheBytes
	}
	return &Classes{maxEntries: maxEntries, maxBytes: maxBytes, lru: list.New(), items: map[classKey]*list.Element{}}
}

// Len is the number of classes cached.
func (c *Classes) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// objects returns parseObjects(s, lim), from the cache when it holds s
// parsed under lim.
func (c *Classes) objects(s string, lim Limits) ([]Object, error) {
	if c == nil {
		return parseObjects(s, lim)
	}
	k := classKey{sum: sha256.Sum256([]byte(s)), lim: lim}
	c.mu.Lock()
	if e, ok := c.items[k]; ok {
		c.lru.MoveToFront(e)
		objs := e.Value.(*class).objects
		c.mu.Unlock()
		return slices.Clone(objs), nil
	}
	c.mu.Unlock()

	objs, err := parseObjects(s, lim)
	if err != nil {
		return nil, err
	}
	size := classSize(s, objs)
	if size > c.maxBytes {
		return objs, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; !ok { // else parsed meanwhile by another Mount
		c.items[k] = c.lru.PushFront(&class{key: k, objects: objs, size: size})
		c.bytes += size
		for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
			old := c.lru.Remove(c.lru.Back()).(*class)
			delete(c.items, old.key)
			c.bytes -= old.size
		}
	}
	return slices.Clone(objs), nil
}

// classSize estimates the memory parsed objects hold: their text about
// twice over (strings, secretArgs, derived requests and versions), a fixed
// share per object, and text/template's tree of up to ~90 bytes per
// template source byte (see Limits).
func classSize(s string, objs []Object) int {
	n := 2*len(s) + 512*len(objs)
	for i := range objs {
		n += 90 * len(objs[i].Template)
	}
	return n
}

// derived is what a Mount computes from a parsed object alone, computed
// once by parseObjects and shared (read-only) by the Mounts of a cached
// class.
type derived struct {
	req    Request // with its key; valid when reqErr is nil
	reqErr error
	// config is the object as JSON, the configuration its version covers.
	config    []byte
	configErr error
}

// derive computes o's derived values; o is normalized.
func (o *Object) derive() {
	d := &derived{}
	if !o.IsTemplate() {
		d.req, d.reqErr = o.request()
		if d.reqErr == nil {
			d.req.key = d.req.computeKey()
		}
	}
	d.config, d.configErr = json.Marshal(o)
	o.derived = d
}

// VersionConfig is the object's configuration as its version covers it:
// the object as JSON.
func (o *Object) VersionConfig() ([]byte, error) {
	if o.derived != nil {
		return o.derived.config, o.derived.configErr
	}
	return json.Marshal(o)
}
