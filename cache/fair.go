package cache

import (
	"container/heap"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// Why an entry was evicted (the reason label of
// vault_csi_provider_cache_evictions_total).
const (
	// evictPodQuota: its pod went over its own quota and lost its least
	// recently used entry.
	evictPodQuota = "pod_quota"
	// evictCapacity: the cache was full and the entry was the least
	// recently used of a pod holding the most entries.
	evictCapacity = "capacity"
)

// fairLRU is the bounded store of both caches, shared fairly between pods:
// every SecretProviderClass parameter is a pod author's input, so a plain
// LRU would let one pod push every other pod's entries out by creating
// many (identities, leased objects). Here a pod holds at most perPod
// entries, going over which evicts its own least recently used one; when
// the whole cache is over capacity, the entry evicted is the least
// recently used of the pods holding the most entries, never one of a pod
// holding fewer. A pod with one or two entries thus keeps them while a pod
// with many loses its own.
//
// A lookup is O(1), an insertion or eviction O(log pods) amortized: each
// pod has its own LRU list, and a heap orders the pods by size, then by the
// last use of their least recently used entry. Lookups, the hot path (every
// Mount of every pod), do not touch the heap: a pod's place there keeps the
// last use its least recently used entry had when the pod last changed
// size, which only ever underestimates it, and an eviction brings the top
// pod's up to date before trusting it (see evictBiggest). It is not safe
// for concurrent use: its owner locks.
type fairLRU[V any] struct {
	name     string // the cache label of the metrics: "tokens" or "leases"
	capacity int    // at least 1
	perPod   int    // at least 1
	// onEvict, if set, is called for each entry evicted for room (not for
	// those removed), with the owner's lock held.
	onEvict func(key string, v V, reason string)

	items map[string]*fairEntry[V]
	pods  map[string]*podEntries[V]
	heap  podHeap[V]
	tick  uint64 // use counter: the LRU order across pods
}

type fairEntry[V any] struct {
	key  string
	val  V
	pod  *podEntries[V]
	used uint64
	// Neighbours in the pod's list: newer is towards the most recently
	// used.
	newer, older *fairEntry[V]
}

// podEntries is one pod's entries, most recently used first.
type podEntries[V any] struct {
	key      string
	n        int
	mru, lru *fairEntry[V]
	// lruUsed is the pod's heap key after n: lru.used as of the last time
	// the pod was placed in the heap; lookups since may have raised
	// lru.used, never lowered it.
	lruUsed   uint64
	heapIndex int
}

func newFairLRU[V any](name string, capacity, perPod int) *fairLRU[V] {
	return &fairLRU[V]{
		name:     name,
		capacity: max(capacity, 1),
		perPod:   max(perPod, 1),
		items:    map[string]*fairEntry[V]{},
		pods:     map[string]*podEntries[V]{},
	}
}

// get returns the value at key and marks it used.
func (f *fairLRU[V]) get(key string) (V, bool) {
	e, ok := f.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	f.touch(e)
	return e.val, true
}

// peek returns the value at key without marking it used.
func (f *fairLRU[V]) peek(key string) (V, bool) {
	e, ok := f.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	return e.val, true
}

// put stores v at key for pod, as the most recently used entry, and evicts
// for room: first the pod's own least recently used entry if it holds more
// than perPod, then, while the cache holds more than capacity, the least
// recently used entry of a biggest pod. Replacing a key's value evicts
// nothing (a key stays with the pod it was first stored for).
func (f *fairLRU[V]) put(key, pod string, v V) {
	if e, ok := f.items[key]; ok {
		e.val = v
		f.touch(e)
		return
	}
	f.tick++
	p, known := f.pods[pod]
	if !known {
		p = &podEntries[V]{key: pod}
		f.pods[pod] = p
	}
	e := &fairEntry[V]{key: key, val: v, pod: p, used: f.tick}
	f.items[key] = e
	p.pushFront(e)
	p.lruUsed = p.lru.used
	if known {
		heap.Fix(&f.heap, p.heapIndex)
	} else {
		heap.Push(&f.heap, p)
	}

	if p.n > f.perPod {
		f.evict(p.lru, evictPodQuota)
	}
	for len(f.items) > f.capacity {
		f.evictBiggest()
	}
	f.gauge()
}

// evictBiggest evicts the least recently used entry of the biggest pods.
// Heap keys only underestimate their pod's least recent use, so a top
// whose key is current is the right pod: its use is at most the others'
// keys, which are at most their uses. A stale top is brought up to date
// and the heap asked again; each such step follows at least one lookup.
func (f *fairLRU[V]) evictBiggest() {
	for {
		p := f.heap[0]
		if p.lruUsed == p.lru.used {
			f.evict(p.lru, evictCapacity)
			return
		}
		p.lruUsed = p.lru.used
		heap.Fix(&f.heap, 0)
	}
}

// remove drops key, if present, and returns its value.
func (f *fairLRU[V]) remove(key string) (V, bool) {
	e, ok := f.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	f.unlink(e)
	f.gauge()
	return e.val, true
}

// drain empties the cache and returns its values, calling no onEvict.
func (f *fairLRU[V]) drain() []V {
	out := make([]V, 0, len(f.items))
	for _, e := range f.items {
		out = append(out, e.val)
	}
	clear(f.items)
	clear(f.pods)
	f.heap = nil
	f.gauge()
	return out
}

func (f *fairLRU[V]) len() int { return len(f.items) }

// podLen is the number of entries pod holds.
func (f *fairLRU[V]) podLen(pod string) int {
	if p := f.pods[pod]; p != nil {
		return p.n
	}
	return 0
}

func (f *fairLRU[V]) evict(e *fairEntry[V], reason string) {
	f.unlink(e)
	metrics.CacheEvictions.WithLabelValues(f.name, reason).Inc()
	if f.onEvict != nil {
		f.onEvict(e.key, e.val, reason)
	}
}

// touch marks e used; the heap is left as it is (see lruUsed).
func (f *fairLRU[V]) touch(e *fairEntry[V]) {
	f.tick++
	e.used = f.tick
	if p := e.pod; p.mru != e {
		p.unlink(e)
		p.pushFront(e)
	}
}

func (f *fairLRU[V]) unlink(e *fairEntry[V]) {
	p := e.pod
	delete(f.items, e.key)
	p.unlink(e)
	if p.n == 0 {
		heap.Remove(&f.heap, p.heapIndex)
		delete(f.pods, p.key)
		return
	}
	p.lruUsed = p.lru.used
	heap.Fix(&f.heap, p.heapIndex)
}

func (f *fairLRU[V]) gauge() {
	metrics.CachedEntries.WithLabelValues(f.name).Set(float64(len(f.items)))
}

func (p *podEntries[V]) pushFront(e *fairEntry[V]) {
	e.newer, e.older = nil, p.mru
	if p.mru != nil {
		p.mru.newer = e
	}
	p.mru = e
	if p.lru == nil {
		p.lru = e
	}
	p.n++
}

func (p *podEntries[V]) unlink(e *fairEntry[V]) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		p.mru = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		p.lru = e.newer
	}
	e.newer, e.older = nil, nil
	p.n--
}

// podHeap orders pods by entries held, most first, then by lruUsed, oldest
// first: its top is, once up to date, whose entry a full cache evicts.
type podHeap[V any] []*podEntries[V]

func (h podHeap[V]) Len() int { return len(h) }

func (h podHeap[V]) Less(i, j int) bool {
	if h[i].n != h[j].n {
		return h[i].n > h[j].n
	}
	return h[i].lruUsed < h[j].lruUsed
}

func (h podHeap[V]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}

func (h *podHeap[V]) Push(x any) {
	p := x.(*podEntries[V])
	p.heapIndex = len(*h)
	*h = append(*h, p)
}

func (h *podHeap[V]) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.heapIndex = -1
	return p
}
