package server

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// Admission defaults: enough for a node starting many pods at once, while a
// burst of Mounts (each holding its request, Vault answers and files in
// memory) queues instead of exhausting the provider's memory.
const (
	DefaultMaxConcurrentMounts       = 32
	DefaultMaxConcurrentMountsPerPod = 4
	DefaultMaxQueuedMounts           = 1024
)

// Why a Mount was refused a slot; the label of the rejections metric.
const (
	rejectQueueFull = "queue_full"
	rejectDeadline  = "deadline"
	rejectCanceled  = "canceled"
)

// admission bounds the Mounts running at once, overall and per pod. Mounts
// beyond the bounds wait in a bounded queue; freed slots go to waiting pods
// in turn (round-robin by pod, FIFO within a pod), so a pod that queues many
// Mounts delays another pod's Mount by at most one Mount per slot.
//
// Invariant (under mu): while running < limit, no pod in ready exists, i.e.
// every waiter is held back by its pod's bound, not by a free slot.
type admission struct {
	limit, perPod, maxQueued int

	mu      sync.Mutex
	running int
	queued  int
	pods    map[string]*podQueue // pods running or waiting; dropped when neither
	ready   list.List            // of *podQueue: pods with waiters below perPod, in turn order
}

// podQueue is one pod's share of the admission state.
type podQueue struct {
	uid     string
	running int
	waiters list.List     // of *waiter, in arrival order
	turn    *list.Element // its place in admission.ready, nil when not there
}

type waiter struct {
	admitted chan struct{} // closed when a slot is handed over
	elem     *list.Element // in podQueue.waiters; nil once admitted
}

func newAdmission(limit, perPod, maxQueued int) *admission {
	return &admission{limit: limit, perPod: perPod, maxQueued: maxQueued, pods: map[string]*podQueue{}}
}

// acquire waits for a Mount slot for pod uid ("" for a request without one:
// those share a bucket). It returns the function that gives the slot back,
// or an *admissionError when the queue is full or ctx ends first.
func (a *admission) acquire(ctx context.Context, uid string) (func(), error) {
	start := time.Now()
	a.mu.Lock()
	p := a.pods[uid]
	if p == nil {
		p = &podQueue{uid: uid}
		a.pods[uid] = p
	}
	if a.running < a.limit && p.running < a.perPod {
		a.grant(p)
		a.mu.Unlock()
		return a.admitted(p, start), nil
	}
	if a.queued >= a.maxQueued {
		e := a.refusal(rejectQueueFull, p)
		a.forget(p)
		a.mu.Unlock()
		return nil, e
	}
	w := &waiter{admitted: make(chan struct{})}
	w.elem = p.waiters.PushBack(w)
	a.queued++
	metrics.MountsQueued.Inc()
	if p.turn == nil && p.running < a.perPod {
		p.turn = a.ready.PushBack(p)
	}
	a.mu.Unlock()

	select {
	case <-w.admitted:
		return a.admitted(p, start), nil
	case <-ctx.Done():
	}
	reason := rejectCanceled
	if deadlinePassed(ctx) {
		reason = rejectDeadline
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.elem == nil {
		// Admitted as ctx ended: the Mount would fail at once, so the slot
		// goes to the next waiter instead.
		a.release(p)
	} else {
		p.waiters.Remove(w.elem)
		a.queued--
		metrics.MountsQueued.Dec()
		if p.waiters.Len() == 0 && p.turn != nil {
			a.ready.Remove(p.turn)
			p.turn = nil
		}
	}
	e := a.refusal(reason, p)
	a.forget(p)
	return nil, e
}

// deadlineSlack is how close to its deadline a canceled Mount counts as
// having run out of time.
const deadlineSlack = time.Second

// deadlinePassed tells a Mount that ran out of time from one given up on.
// A gRPC client whose deadline passes cancels the call (RST_STREAM) rather
// than waiting for the server's own timer, which runs slightly later, so
// the server mostly sees context.Canceled just before its deadline.
func deadlinePassed(ctx context.Context) bool {
	if ctx.Err() == context.DeadlineExceeded {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < deadlineSlack
}

// admitted records an admission and returns its release function, which
// may safely be called more than once.
func (a *admission) admitted(p *podQueue, start time.Time) func() {
	metrics.MountAdmissionWait.Observe(time.Since(start).Seconds())
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.release(p)
			a.mu.Unlock()
		})
	}
}

// grant gives p a slot. Called with mu held.
func (a *admission) grant(p *podQueue) {
	a.running++
	p.running++
	metrics.MountsInFlight.Inc()
}

// release takes p's slot back and hands free slots on. Called with mu held.
func (a *admission) release(p *podQueue) {
	a.running--
	p.running--
	metrics.MountsInFlight.Dec()
	if p.turn == nil && p.waiters.Len() > 0 && p.running < a.perPod {
		p.turn = a.ready.PushBack(p)
	}
	a.dispatch()
	a.forget(p)
}

// dispatch admits waiters while slots are free: the pod whose turn it is
// admits its oldest waiter and, if it has more and is below its bound, goes
// to the back of the line. Called with mu held.
func (a *admission) dispatch() {
	for a.running < a.limit && a.ready.Len() > 0 {
		p := a.ready.Remove(a.ready.Front()).(*podQueue)
		p.turn = nil
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		w.elem = nil
		a.queued--
		metrics.MountsQueued.Dec()
		a.grant(p)
		close(w.admitted)
		if p.waiters.Len() > 0 && p.running < a.perPod {
			p.turn = a.ready.PushBack(p)
		}
	}
}

// forget drops p's state once it neither runs nor waits, so memory follows
// the pods currently mounting, not every pod ever seen. Called with mu held.
func (a *admission) forget(p *podQueue) {
	if p.running == 0 && p.waiters.Len() == 0 && a.pods[p.uid] == p {
		delete(a.pods, p.uid)
	}
}

// refusal describes the state that refused a Mount. Called with mu held.
func (a *admission) refusal(reason string, p *podQueue) *admissionError {
	metrics.MountAdmissionRejections.WithLabelValues(reason).Inc()
	return &admissionError{
		reason: reason, running: a.running, limit: a.limit, queued: a.queued, maxQueued: a.maxQueued,
		podRunning: p.running, perPod: a.perPod,
	}
}

// admissionError is a Mount refused a slot. It carries its gRPC status (see
// GRPCStatus), so the driver reports the overload in the pod's events.
type admissionError struct {
	reason             string
	running, limit     int
	queued, maxQueued  int
	podRunning, perPod int
}

func (e *admissionError) Error() string { return e.GRPCStatus().Message() }

// GRPCStatus maps the refusal to its code and a message naming the flag
// that bounds it.
func (e *admissionError) GRPCStatus() *status.Status {
	switch e.reason {
	case rejectQueueFull:
		return status.Newf(codes.ResourceExhausted,
			"the vault provider is overloaded: %d Mounts running (-max-concurrent-mounts=%d) and %d waiting (-max-queued-mounts=%d); the driver retries later, or raise -max-queued-mounts or -max-concurrent-mounts",
			e.running, e.limit, e.queued, e.maxQueued)
	}
	code, what := codes.Canceled, "canceled"
	if e.reason == rejectDeadline {
		code, what = codes.DeadlineExceeded, "deadline exceeded"
	}
	msg := fmt.Sprintf("%s while waiting for a free Mount slot: %d Mounts running (-max-concurrent-mounts=%d), %d waiting",
		what, e.running, e.limit, e.queued)
	if e.podRunning >= e.perPod {
		msg += fmt.Sprintf("; this pod already runs %d (-max-concurrent-mounts-per-pod=%d)", e.podRunning, e.perPod)
	}
	return status.New(code, msg)
}
