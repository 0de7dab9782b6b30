package provider

import (
	"sync/atomic"
	"time"
)

// A Mount's Vault calls run on goroutines of their own (fetch). Each call
// goes deep (cache, Vault client, HTTP), so a new goroutine grew its stack
// several times on every call: 8% of the provider's CPU on a busy node.
// Workers that stay for a while after their call keep their grown stacks
// for the next one.

// workerIdle is how long a worker waits for its next call before it exits.
const workerIdle = 5 * time.Second

// maxIdleWorkers bounds the workers waiting for a call. Calls go to the
// waiting workers in turn, so under a steady trickle of calls every one
// of them would stay: a burst's workers beyond this exit when done.
const maxIdleWorkers = 32

// workers runs functions on reused goroutines; the zero value is ready.
// As many run at once as are handed to it: a function never waits for a
// worker.
type workers struct {
	work chan func() // unbuffered: taken only by an idle worker
	idle atomic.Int32
}

var fetchWorkers = workers{work: make(chan func())}

// Go runs f on an idle worker, or on a new one.
func (w *workers) Go(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // not kept alive while idle
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		idle.Reset(workerIdle)
		select {
		case f = <-w.work:
			w.idle.Add(-1)
		case <-idle.C:
			w.idle.Add(-1)
			return
		}
	}
}
