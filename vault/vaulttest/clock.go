package vaulttest

import (
	"sync"
	"testing"
	"time"
)

// Epoch is where a Clock starts: a fixed instant, so tests do not depend on
// when they run.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is a test clock: time moves only when the test calls Advance. The
// fake Vault measures token, lease and certificate lifetimes on it; a test
// can hand the same clock's Now to the caches under test, so both sides
// agree on when "later" is. The zero Clock reads Epoch. It is safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	d  time.Duration // since Epoch
}

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Epoch.Add(c.d)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}

// Eventually polls cond every millisecond until it holds and fails the test
// if it does not within 10 seconds. what says what was awaited.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
