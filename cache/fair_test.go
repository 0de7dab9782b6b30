package cache

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// op is one call on a fairLRU in a test: "put pod/key", "get key" or
// "remove key". Keys name their pod: "a1" is pod a's.
type op string

func (o op) apply(f *fairLRU[string]) {
	verb, key, _ := strings.Cut(string(o), " ")
	switch verb {
	case "put":
		f.put(key, key[:1], "v-"+key)
	case "get":
		f.get(key)
	case "remove":
		f.remove(key)
	default:
		panic("unknown op " + string(o))
	}
}

func puts(keys ...string) []op {
	out := make([]op, len(keys))
	for i, k := range keys {
		out[i] = op("put " + k)
	}
	return out
}

func TestFairLRU(t *testing.T) {
	tests := []struct {
		name             string
		capacity, perPod int
		ops              []op
		want             []string // keys held afterwards, sorted
		evicted          []string // "key reason", in order
	}{
		{name: "at the pod quota nothing is evicted", capacity: 10, perPod: 2,
			ops: puts("a1", "a2", "b1", "b2"), want: []string{"a1", "a2", "b1", "b2"}},
		{name: "over its quota a pod loses its own least recently used", capacity: 10, perPod: 2,
			ops: puts("a1", "b1", "a2", "a3"), want: []string{"a2", "a3", "b1"}, evicted: []string{"a1 pod_quota"}},
		{name: "a hit keeps an entry within the quota", capacity: 10, perPod: 2,
			ops:  append(puts("a1", "a2"), "get a1", "put a3"),
			want: []string{"a1", "a3"}, evicted: []string{"a2 pod_quota"}},
		{name: "full: the biggest pod loses its least recently used", capacity: 4, perPod: 10,
			ops: puts("v1", "a1", "a2", "a3", "b1"), want: []string{"a2", "a3", "b1", "v1"}, evicted: []string{"a1 capacity"}},
		{name: "full: a smaller pod keeps even its oldest entry", capacity: 3, perPod: 10,
			ops:  puts("v1", "a1", "a2", "a3", "a4"),
			want: []string{"a3", "a4", "v1"}, evicted: []string{"a1 capacity", "a2 capacity"}},
		{name: "full, pods tied: the one whose least recently used entry is oldest", capacity: 4, perPod: 10,
			ops: puts("a1", "b1", "a2", "b2", "c1"), want: []string{"a2", "b1", "b2", "c1"}, evicted: []string{"a1 capacity"}},
		{name: "full, pods tied: a hit moves a pod back", capacity: 4, perPod: 10,
			ops:  append(puts("a1", "b1", "a2", "b2"), "get a1", "put c1"),
			want: []string{"a1", "a2", "b2", "c1"}, evicted: []string{"b1 capacity"}},
		{name: "full, one entry each: plain LRU", capacity: 2, perPod: 10,
			ops: append(puts("a1", "b1"), "get a1", "put c1"), want: []string{"a1", "c1"}, evicted: []string{"b1 capacity"}},
		{name: "quota first, then capacity", capacity: 3, perPod: 2,
			ops:  puts("b1", "b2", "a1", "a2", "a3"),
			want: []string{"a2", "a3", "b2"}, evicted: []string{"b1 capacity", "a1 pod_quota"}},
		{name: "replacing a value evicts nothing and makes it recently used", capacity: 2, perPod: 10,
			ops: puts("a1", "b1", "a1", "c1"), want: []string{"a1", "c1"}, evicted: []string{"b1 capacity"}},
		{name: "removed entries free their room", capacity: 2, perPod: 2,
			ops: append(puts("a1", "a2"), "remove a1", "put a3", "remove b9"), want: []string{"a2", "a3"}},
		{name: "a pod emptied by removal is gone from the order", capacity: 2, perPod: 10,
			ops: append(puts("a1", "b1"), "remove a1", "put c1", "put c2"), want: []string{"b1", "c2"}, evicted: []string{"c1 capacity"}},
		{name: "zero bounds hold one", capacity: 0, perPod: 0,
			ops: puts("a1", "a2", "b1"), want: []string{"b1"}, evicted: []string{"a1 pod_quota", "a2 capacity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFairLRU[string]("test", tt.capacity, tt.perPod)
			var evicted []string
			f.onEvict = func(key, v, reason string) {
				if v != "v-"+key {
					t.Errorf("evicted %s with value %q", key, v)
				}
				evicted = append(evicted, key+" "+reason)
			}
			for _, o := range tt.ops {
				o.apply(f)
				checkFair(t, f)
			}
			var got []string
			for k := range f.items {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("holds %v, want %v", got, tt.want)
			}
			if !slices.Equal(evicted, tt.evicted) {
				t.Errorf("evicted %v, want %v", evicted, tt.evicted)
			}
		})
	}
}

func TestFairLRUDrain(t *testing.T) {
	f := newFairLRU[string]("test", 10, 10)
	evictions := 0
	f.onEvict = func(string, string, string) { evictions++ }
	for _, o := range puts("a1", "a2", "b1") {
		o.apply(f)
	}
	got := f.drain()
	slices.Sort(got)
	if want := []string{"v-a1", "v-a2", "v-b1"}; !slices.Equal(got, want) {
		t.Errorf("drain = %v, want %v", got, want)
	}
	if f.len() != 0 || f.podLen("a") != 0 || len(f.heap) != 0 || evictions != 0 {
		t.Errorf("after drain: %d entries, pod a %d, heap %d, %d evictions", f.len(), f.podLen("a"), len(f.heap), evictions)
	}
	// Usable again.
	puts("a1")[0].apply(f)
	if v, ok := f.get("a1"); !ok || v != "v-a1" {
		t.Errorf("get after drain and put = %q %v", v, ok)
	}
	checkFair(t, f)
}

// The fairLRU decides as a model that scans everything would: random
// operations on few pods (so quotas, capacity and ties all happen), the
// same evictions in the same order.
func TestFairLRUModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		capacity, perPod := 1+rng.IntN(12), 1+rng.IntN(5)
		f := newFairLRU[string]("test", capacity, perPod)
		m := &fairModel{capacity: capacity, perPod: perPod}
		var got []string
		f.onEvict = func(key, _, reason string) { got = append(got, key+" "+reason) }
		for range 2000 {
			key := fmt.Sprintf("%c%d", 'a'+rng.IntN(5), rng.IntN(8))
			var o op
			switch n := rng.IntN(10); {
			case n < 5:
				o = op("put " + key)
			case n < 9:
				o = op("get " + key)
			default:
				o = op("remove " + key)
			}
			o.apply(f)
			m.apply(o)
			if !slices.Equal(got, m.evicted) {
				t.Fatalf("seed %d, capacity %d, perPod %d, after %s: evicted %v, model %v", seed, capacity, perPod, o, got, m.evicted)
			}
			checkFair(t, f)
		}
	}
}

// fairModel is the eviction rule written as plainly as possible.
type fairModel struct {
	capacity, perPod int
	tick             int
	used             map[string]int // key -> last use
	evicted          []string
}

func (m *fairModel) apply(o op) {
	if m.used == nil {
		m.used = map[string]int{}
	}
	verb, key, _ := strings.Cut(string(o), " ")
	m.tick++
	switch verb {
	case "get":
		if _, ok := m.used[key]; ok {
			m.used[key] = m.tick
		}
	case "remove":
		delete(m.used, key)
	case "put":
		_, exists := m.used[key]
		m.used[key] = m.tick
		if exists {
			return
		}
		if own := m.keys(key[:1]); len(own) > m.perPod {
			m.evict(m.oldest(own), evictPodQuota)
		}
		for len(m.used) > m.capacity {
			// Among the pods holding the most, the oldest entry.
			most := 0
			var candidates []string
			for _, pod := range m.pods() {
				own := m.keys(pod)
				switch {
				case len(own) > most:
					most, candidates = len(own), []string{m.oldest(own)}
				case len(own) == most:
					candidates = append(candidates, m.oldest(own))
				}
			}
			m.evict(m.oldest(candidates), evictCapacity)
		}
	}
}

func (m *fairModel) evict(key, reason string) {
	delete(m.used, key)
	m.evicted = append(m.evicted, key+" "+reason)
}

func (m *fairModel) keys(pod string) []string {
	var out []string
	for k := range m.used {
		if k[:1] == pod {
			out = append(out, k)
		}
	}
	return out
}

func (m *fairModel) pods() []string {
	seen := map[string]bool{}
	for k := range m.used {
		seen[k[:1]] = true
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	return out
}

func (m *fairModel) oldest(keys []string) string {
	best := keys[0]
	for _, k := range keys[1:] {
		if m.used[k] < m.used[best] {
			best = k
		}
	}
	return best
}

// checkFair fails the test unless f's lists, counts and heap agree.
func checkFair[V any](t *testing.T, f *fairLRU[V]) {
	t.Helper()
	n := 0
	for key, p := range f.pods {
		if p.key != key || p.n == 0 {
			t.Fatalf("pod %q: key %q, %d entries", key, p.key, p.n)
		}
		count := 0
		var newer *fairEntry[V]
		for e := p.mru; e != nil; e = e.older {
			if e.pod != p || e.newer != newer || f.items[e.key] != e {
				t.Fatalf("pod %q: entry %q out of place", key, e.key)
			}
			if newer != nil && newer.used <= e.used {
				t.Fatalf("pod %q: %q used at %d before older %q at %d", key, newer.key, newer.used, e.key, e.used)
			}
			newer = e
			count++
		}
		if count != p.n || p.lru != newer {
			t.Fatalf("pod %q: %d entries listed, %d counted", key, count, p.n)
		}
		if f.heap[p.heapIndex] != p {
			t.Fatalf("pod %q not at its heap index", key)
		}
		if p.lruUsed > p.lru.used {
			t.Fatalf("pod %q: heap key %d later than its least recent use %d", key, p.lruUsed, p.lru.used)
		}
		n += count
	}
	if n != len(f.items) || len(f.heap) != len(f.pods) {
		t.Fatalf("%d listed, %d items; %d pods in the heap, %d in the map", n, len(f.items), len(f.heap), len(f.pods))
	}
	for i := 1; i < len(f.heap); i++ {
		if f.heap.Less(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	if len(f.items) > f.capacity {
		t.Fatalf("%d entries, capacity %d", len(f.items), f.capacity)
	}
}

// Benchmarks of the structure alone, at the scale of a busy node: 10,000
// entries in 1,000 pods.
func BenchmarkFairLRU(b *testing.B) {
	const pods, perPod = 1000, 10
	fill := func() (*fairLRU[int], []string) {
		f := newFairLRU[int]("bench", pods*perPod, perPod)
		keys := make([]string, 0, pods*perPod)
		for p := range pods {
			for i := range perPod {
				k := fmt.Sprintf("pod-%d/%d", p, i)
				f.put(k, fmt.Sprintf("pod-%d", p), i)
				keys = append(keys, k)
			}
		}
		return f, keys
	}
	b.Run("get hit", func(b *testing.B) {
		f, keys := fill()
		for i := 0; b.Loop(); i++ {
			f.get(keys[i%len(keys)])
		}
	})
	b.Run("put new key, full cache: capacity eviction", func(b *testing.B) {
		f, _ := fill()
		f.perPod = 1 << 30 // only capacity evicts
		for i := 0; b.Loop(); i++ {
			f.put(fmt.Sprintf("new-%d", i), fmt.Sprintf("pod-%d", i%pods), i)
		}
	})
	b.Run("put new key, pod over quota", func(b *testing.B) {
		f, _ := fill()
		for i := 0; b.Loop(); i++ {
			f.put(fmt.Sprintf("new-%d", i), fmt.Sprintf("pod-%d", i%pods), i)
		}
	})
}
