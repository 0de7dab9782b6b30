package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// state returns the admission counters and the number of pods with state.
func (a *admission) state() (running, queued, pods, ready int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running, a.queued, len(a.pods), a.ready.Len()
}

func (a *admission) queuedNow() int {
	_, q, _, _ := a.state()
	return q
}

// checkIdle fails unless a holds nothing: no slot, no waiter, no pod state.
func checkIdle(t *testing.T, a *admission) {
	t.Helper()
	if running, queued, pods, ready := a.state(); running != 0 || queued != 0 || pods != 0 || ready != 0 {
		t.Errorf("admission not idle: running %d, queued %d, pods %d, ready %d", running, queued, pods, ready)
	}
}

func mustAcquire(t *testing.T, a *admission, uid string) func() {
	t.Helper()
	release, err := a.acquire(context.Background(), uid)
	if err != nil {
		t.Fatalf("acquire(%q): %v", uid, err)
	}
	return release
}

// acquireAsync starts an acquire and returns where its outcome arrives.
func acquireAsync(ctx context.Context, a *admission, uid string) <-chan error {
	res := make(chan error, 1)
	go func() {
		release, err := a.acquire(ctx, uid)
		if err == nil {
			release()
		}
		res <- err
	}()
	return res
}

func TestAdmissionRoundRobinByPod(t *testing.T) {
	a := newAdmission(1, 4, 1000)
	hold := mustAcquire(t, a, "A")

	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	queue := func(uid string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := a.acquire(context.Background(), uid)
			if err != nil {
				t.Errorf("acquire(%q): %v", uid, err)
				return
			}
			// One slot: the order of appends is the order of admission.
			mu.Lock()
			order = append(order, uid)
			mu.Unlock()
			release()
		}()
	}
	for range 100 {
		queue("A")
	}
	vaulttest.Eventually(t, "pod A queued 100 Mounts", func() bool { return a.queuedNow() == 100 })
	queue("B")
	vaulttest.Eventually(t, "pod B queued behind them", func() bool { return a.queuedNow() == 101 })
	hold()
	wg.Wait()

	if len(order) != 101 {
		t.Fatalf("%d Mounts admitted, want 101", len(order))
	}
	b := -1
	for i, uid := range order {
		if uid == "B" {
			b = i
		}
	}
	// Round-robin: A's oldest waiter had its turn first, then B's.
	if b != 1 {
		t.Errorf("pod B admitted at position %d of %d (want 1, after one of A's): %v", b, len(order), order[:min(len(order), 5)])
	}
	checkIdle(t, a)
}

func TestAdmissionPerPodBound(t *testing.T) {
	a := newAdmission(10, 2, 100)
	a1 := mustAcquire(t, a, "A")
	a2 := mustAcquire(t, a, "A")
	third := acquireAsync(context.Background(), a, "A")
	vaulttest.Eventually(t, "pod A's third Mount queued", func() bool { return a.queuedNow() == 1 })

	// Slots are free: another pod, and a request without a UID, do not wait
	// behind A.
	b := mustAcquire(t, a, "B")
	none := mustAcquire(t, a, "")
	if running, queued, _, _ := a.state(); running != 4 || queued != 1 {
		t.Errorf("running %d, queued %d; want 4 and 1", running, queued)
	}
	select {
	case err := <-third:
		t.Fatalf("pod A's third Mount admitted (%v) while A held 2 slots", err)
	default:
	}
	a1()
	if err := <-third; err != nil {
		t.Fatalf("pod A's third Mount: %v", err)
	}
	a2()
	b()
	none()
	checkIdle(t, a)
}

func TestAdmissionQueueFull(t *testing.T) {
	a := newAdmission(1, 1, 2)
	before := testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectQueueFull))
	hold := mustAcquire(t, a, "A")
	w1 := acquireAsync(context.Background(), a, "A")
	w2 := acquireAsync(context.Background(), a, "B")
	vaulttest.Eventually(t, "two Mounts queued", func() bool { return a.queuedNow() == 2 })

	_, err := a.acquire(context.Background(), "C")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third waiter = %v, want ResourceExhausted", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"overloaded", "-max-queued-mounts=2", "raise -max-queued-mounts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectQueueFull)) - before; got != 1 {
		t.Errorf("queue_full rejections rose by %v, want 1", got)
	}
	if _, _, pods, _ := a.state(); pods != 2 {
		t.Errorf("%d pods have state, want 2 (the refused pod's is dropped)", pods)
	}
	hold()
	if err := <-w1; err != nil {
		t.Error(err)
	}
	if err := <-w2; err != nil {
		t.Error(err)
	}
	checkIdle(t, a)
}

func TestAdmissionDeadlineWhileQueued(t *testing.T) {
	a := newAdmission(1, 1, 10)
	before := testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectDeadline))
	hold := mustAcquire(t, a, "A")

	// Another pod: held back by the node-wide bound only.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := a.acquire(ctx, "B")
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("acquire past its deadline = %v, want DeadlineExceeded", err)
	}
	var ae *admissionError
	if !errors.As(err, &ae) {
		t.Errorf("error %T is not an *admissionError", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"waiting for a free Mount slot", "1 Mounts running", "-max-concurrent-mounts=1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "per-pod") {
		t.Errorf("message %q blames the per-pod bound, which pod B did not reach", msg)
	}

	// The same pod: its own bound is named too.
	_, err = a.acquire(ctx, "A")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "-max-concurrent-mounts-per-pod=1") {
		t.Errorf("message %q does not name the per-pod bound", msg)
	}
	if got := testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectDeadline)) - before; got != 2 {
		t.Errorf("deadline rejections rose by %v, want 2", got)
	}
	if running, queued, pods, ready := a.state(); running != 1 || queued != 0 || pods != 1 || ready != 0 {
		t.Errorf("after the deadlines: running %d, queued %d, pods %d, ready %d; want 1, 0, 1, 0", running, queued, pods, ready)
	}
	hold()
	checkIdle(t, a)
}

func TestAdmissionCanceledNearDeadline(t *testing.T) {
	a := newAdmission(1, 1, 10)
	hold := mustAcquire(t, a, "A")
	defer hold()
	// As a gRPC server sees a client whose deadline passed: canceled just
	// before its own deadline.
	dctx, dcancel := context.WithTimeout(context.Background(), deadlineSlack/2)
	defer dcancel()
	ctx, cancel := context.WithCancel(dctx)
	cancel()
	if _, err := a.acquire(ctx, "B"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("canceled just before the deadline = %v, want DeadlineExceeded", err)
	}
	// Canceled with time to spare: a cancellation.
	lctx, lcancel := context.WithTimeout(context.Background(), time.Hour)
	lcancel()
	if _, err := a.acquire(lctx, "B"); status.Code(err) != codes.Canceled {
		t.Errorf("canceled an hour before the deadline = %v, want Canceled", err)
	}
}

func TestAdmissionCanceledWhileQueued(t *testing.T) {
	a := newAdmission(1, 1, 10)
	hold := mustAcquire(t, a, "A")
	ctx, cancel := context.WithCancel(context.Background())
	res := acquireAsync(ctx, a, "B")
	later := acquireAsync(context.Background(), a, "C")
	vaulttest.Eventually(t, "two Mounts queued", func() bool { return a.queuedNow() == 2 })
	cancel()
	err := <-res
	if status.Code(err) != codes.Canceled {
		t.Fatalf("canceled waiter = %v, want Canceled", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "waiting for a free Mount slot") {
		t.Errorf("message %q", msg)
	}
	// The canceled waiter left the line: the next one gets the slot.
	hold()
	if err := <-later; err != nil {
		t.Fatal(err)
	}
	checkIdle(t, a)
}

func TestAdmissionReleaseTwice(t *testing.T) {
	a := newAdmission(1, 1, 1)
	release := mustAcquire(t, a, "A")
	release()
	release()
	checkIdle(t, a)
	mustAcquire(t, a, "A")()
}

// TestAdmissionStress mixes pods, cancellations and queue refusals and
// checks the bounds from inside the admitted sections.
func TestAdmissionStress(t *testing.T) {
	const limit, perPod, pods, requests = 3, 2, 7, 400
	a := newAdmission(limit, perPod, 50)
	var (
		mu                  sync.Mutex
		running, maxRunning int
		byPod               = map[string]int{}
		admitted, refused   int
		wg                  sync.WaitGroup
	)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := fmt.Sprint(i % pods)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%5 == 0 {
				cancel() // some give up at once, some while queued or admitted
			} else if i%7 == 0 {
				go cancel()
			}
			release, err := a.acquire(ctx, uid)
			if err != nil {
				if c := status.Code(err); c != codes.Canceled && c != codes.ResourceExhausted {
					t.Errorf("acquire = %v", err)
				}
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			mu.Lock()
			admitted++
			running++
			byPod[uid]++
			maxRunning = max(maxRunning, running)
			if byPod[uid] > perPod {
				t.Errorf("pod %s runs %d Mounts, over %d", uid, byPod[uid], perPod)
			}
			mu.Unlock()
			runtime.Gosched()
			mu.Lock()
			running--
			byPod[uid]--
			mu.Unlock()
			release()
		}()
	}
	wg.Wait()
	if maxRunning > limit {
		t.Errorf("%d Mounts ran at once, over %d", maxRunning, limit)
	}
	if admitted+refused != requests || admitted == 0 {
		t.Errorf("admitted %d, refused %d of %d", admitted, refused, requests)
	}
	checkIdle(t, a)
}

// gate is a Mounter that blocks each Mount until released, counting how many
// run at once, in all and per pod.
type gate struct {
	started   chan string   // each Mount's pod UID as it starts
	release   chan struct{} // one receive lets one Mount finish
	ignoreCtx bool          // wait for release even when the call ends

	mu                  sync.Mutex
	running, maxRunning int
	byPod, maxByPod     map[string]int
}

func newGate() *gate {
	return &gate{started: make(chan string, 1000), release: make(chan struct{}), byPod: map[string]int{}, maxByPod: map[string]int{}}
}

func (g *gate) Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error) {
	var attrs map[string]string
	if err := json.Unmarshal([]byte(req.GetAttributes()), &attrs); err != nil {
		return nil, err
	}
	uid := attrs[config.AttrPodUID]
	g.mu.Lock()
	g.running++
	g.byPod[uid]++
	g.maxRunning = max(g.maxRunning, g.running)
	g.maxByPod[uid] = max(g.maxByPod[uid], g.byPod[uid])
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.byPod[uid]--
		g.mu.Unlock()
	}()
	g.started <- uid
	if g.ignoreCtx {
		<-g.release
		return &pb.MountResponse{}, nil
	}
	select {
	case <-g.release:
		return &pb.MountResponse{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func podAttrs(uid string) string {
	b, _ := json.Marshal(map[string]string{config.AttrPodUID: uid, config.ParamRoleName: "app"})
	return string(b)
}

// serveLimited serves m with o; the server stops when the test ends.
func serveLimited(t *testing.T, m Mounter, o Options) (pb.CSIDriverProviderClient, *admission) {
	t.Helper()
	lis, err := Listen(filepath.Join(shortDir(t), "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	gs, adm := newGRPC(m, "test", o)
	served := make(chan struct{})
	go func() {
		_ = gs.Serve(lis)
		close(served)
	}()
	conn, err := grpc.NewClient("unix:"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		<-served
	})
	return pb.NewCSIDriverProviderClient(conn), adm
}

// mountAsync sends a Mount for pod uid and returns where its error arrives.
func mountAsync(ctx context.Context, c pb.CSIDriverProviderClient, uid string) <-chan error {
	res := make(chan error, 1)
	go func() {
		_, err := c.Mount(ctx, &pb.MountRequest{Attributes: podAttrs(uid)})
		res <- err
	}()
	return res
}

func TestMountsBoundedOverGRPC(t *testing.T) {
	const limit, perPod, pods, each = 3, 2, 5, 4
	g := newGate()
	client, adm := serveLimited(t, g, Options{MaxConcurrentMounts: limit, MaxConcurrentMountsPerPod: perPod, MaxQueuedMounts: 100})
	inFlight0, queued0 := testutil.ToFloat64(metrics.MountsInFlight), testutil.ToFloat64(metrics.MountsQueued)

	// One pod first: it gets only its share of the free slots.
	var results []<-chan error
	for range each {
		results = append(results, mountAsync(callCtx(t), client, "pod-0"))
	}
	vaulttest.Eventually(t, "pod-0 at its bound, the rest of its Mounts queued", func() bool {
		running, queued, _, _ := adm.state()
		return running == perPod && queued == each-perPod
	})
	for p := 1; p < pods; p++ {
		for range each {
			results = append(results, mountAsync(callCtx(t), client, fmt.Sprint("pod-", p)))
		}
	}
	const total = pods * each
	vaulttest.Eventually(t, "the limit reached and the rest queued", func() bool {
		running, queued, _, _ := adm.state()
		return running == limit && queued == total-limit
	})
	if got := testutil.ToFloat64(metrics.MountsInFlight) - inFlight0; got != limit {
		t.Errorf("mounts_in_flight rose by %v, want %d", got, limit)
	}
	if got := testutil.ToFloat64(metrics.MountsQueued) - queued0; got != total-limit {
		t.Errorf("mounts_queued rose by %v, want %d", got, total-limit)
	}
	// Let the Mounts finish one at a time: each freed slot admits one more.
	for range total {
		g.release <- struct{}{}
	}
	for _, res := range results {
		if err := <-res; err != nil {
			t.Errorf("Mount: %v", err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxRunning != limit {
		t.Errorf("at most %d Mounts ran at once, want exactly %d", g.maxRunning, limit)
	}
	for uid, n := range g.maxByPod {
		if n > perPod {
			t.Errorf("pod %s ran %d Mounts at once, over %d", uid, n, perPod)
		}
	}
	if len(g.maxByPod) != pods {
		t.Errorf("%d pods mounted, want %d", len(g.maxByPod), pods)
	}
	vaulttest.Eventually(t, "admission idle", func() bool { r, q, p, _ := adm.state(); return r+q+p == 0 })
}

func TestVersionNotLimited(t *testing.T) {
	g := newGate()
	client, adm := serveLimited(t, g, Options{MaxConcurrentMounts: 1, MaxConcurrentMountsPerPod: 1, MaxQueuedMounts: 1})
	first := mountAsync(callCtx(t), client, "a")
	<-g.started
	second := mountAsync(callCtx(t), client, "b")
	vaulttest.Eventually(t, "a Mount queued", func() bool { return adm.queuedNow() == 1 })

	// Saturated: Mounts are refused, Version still answers.
	_, err := client.Mount(callCtx(t), &pb.MountRequest{Attributes: podAttrs("c")})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "-max-queued-mounts") {
		t.Errorf("Mount with the queue full = %v, want ResourceExhausted naming -max-queued-mounts", err)
	}
	for range 5 {
		if _, err := client.Version(callCtx(t), &pb.VersionRequest{Version: "v1alpha1"}); err != nil {
			t.Fatalf("Version while Mounts are saturated: %v", err)
		}
	}

	g.release <- struct{}{}
	g.release <- struct{}{}
	for _, res := range []<-chan error{first, second} {
		if err := <-res; err != nil {
			t.Error(err)
		}
	}
}

func TestMountDeadlineWhileQueuedOverGRPC(t *testing.T) {
	g := newGate()
	client, adm := serveLimited(t, g, Options{MaxConcurrentMounts: 1})
	before := testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectDeadline))
	first := mountAsync(callCtx(t), client, "a")
	<-g.started

	// Long enough for the request to reach the server and queue even on a
	// loaded machine; how long it takes is not asserted.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := client.Mount(ctx, &pb.MountRequest{Attributes: podAttrs("b")})
	// The client sees its own deadline before the server's answer.
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("queued Mount past its deadline = %v, want DeadlineExceeded", err)
	}
	// The client cancels the call at its deadline; the server still counts
	// a deadline, not a cancellation.
	vaulttest.Eventually(t, "the server counted the deadline", func() bool {
		return testutil.ToFloat64(metrics.MountAdmissionRejections.WithLabelValues(rejectDeadline))-before == 1
	})
	if q := adm.queuedNow(); q != 0 {
		t.Errorf("%d Mounts still queued", q)
	}
	g.release <- struct{}{}
	if err := <-first; err != nil {
		t.Error(err)
	}
}

func TestAdmissionNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Run("burst", func(t *testing.T) {
		g := newGate()
		g.ignoreCtx = true // the slots stay taken while the callers give up
		client, adm := serveLimited(t, g, Options{MaxConcurrentMounts: 2, MaxConcurrentMountsPerPod: 1, MaxQueuedMounts: 10})
		ctx, cancel := context.WithCancel(context.Background())
		var results []<-chan error
		for i := range 30 {
			results = append(results, mountAsync(ctx, client, fmt.Sprint(i%4)))
		}
		<-g.started
		<-g.started
		vaulttest.Eventually(t, "the queue full", func() bool { return adm.queuedNow() == 10 })
		cancel()
		for _, res := range results {
			switch c := status.Code(<-res); c {
			case codes.Canceled, codes.ResourceExhausted:
			default:
				t.Errorf("Mount = %v, want Canceled or ResourceExhausted", c)
			}
		}
		// The waiters left although no slot freed.
		vaulttest.Eventually(t, "the queue empty", func() bool { return adm.queuedNow() == 0 })
		g.release <- struct{}{}
		g.release <- struct{}{}
		vaulttest.Eventually(t, "admission idle", func() bool { r, q, p, _ := adm.state(); return r+q+p == 0 })
	})
	const slack = 5
	vaulttest.Eventually(t, fmt.Sprintf("goroutines back to %d (+%d)", base, slack), func() bool {
		return runtime.NumGoroutine() <= base+slack
	})
}
