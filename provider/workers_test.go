package provider

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every function runs, all at once if they are handed over at once, and
// a worker that finished is reused.
func TestWorkers(t *testing.T) {
	w := &workers{work: make(chan func())}
	const n = 20
	var (
		wg      sync.WaitGroup
		running atomic.Int32
		release = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		w.Go(func() {
			defer wg.Done()
			running.Add(1)
			<-release
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d functions running: one waits for a worker", running.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()

	// An idle worker takes the next function.
	taken := make(chan bool)
	deadline = time.Now().Add(5 * time.Second)
	for {
		select {
		case w.work <- func() { taken <- true }:
			<-taken
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no idle worker took a function")
		}
		time.Sleep(time.Millisecond)
	}
}

// A burst's workers beyond maxIdleWorkers do not stay.
func TestWorkersIdleBounded(t *testing.T) {
	w := &workers{work: make(chan func())}
	const n = 3 * maxIdleWorkers
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		w.Go(func() {
			defer wg.Done()
			<-release
		})
	}
	close(release)
	wg.Wait()
	// Wait for the count to settle: every worker has become idle or exited.
	last, since := int32(-1), time.Now()
	for time.Since(since) < 100*time.Millisecond {
		if idle := w.idle.Load(); idle != last {
			last, since = idle, time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	if last != maxIdleWorkers {
		t.Fatalf("%d idle workers after a burst of %d, want %d", last, n, maxIdleWorkers)
	}
}
