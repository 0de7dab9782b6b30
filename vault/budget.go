package vault

import (
	"io"
	"math"
	"net/http"
	"sync/atomic"
)

// Budget is a running bound on the bytes read of Vault's answers, shared
// by the concurrent calls of one Mount: without it each answer is read up
// to maxResponseBytes before anything checks the total, so a Mount of many
// large objects holds them all in memory at once. Safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used is the bytes charged so far.
func (b *Budget) Used() int64 { return b.used.Load() }

// check fails once the budget is spent; nil-safe.
func (b *Budget) check() error {
	if b != nil && b.used.Load() > b.limit {
		return &BudgetError{Limit: b.limit}
	}
	return nil
}

// remaining is what may still be read (unbounded for a nil Budget; at least
// 0 once check passed).
func (b *Budget) remaining() int64 {
	if b == nil {
		return math.MaxInt64 - 1
	}
	return max(b.limit-b.used.Load(), 0)
}

// charge counts n bytes read; nil-safe.
func (b *Budget) charge(n int) error {
	if b != nil && b.used.Add(int64(n)) > b.limit {
		return &BudgetError{Limit: b.limit}
	}
	return nil
}

// errTooLarge stops reading one answer past maxResponseBytes, including
// the error bodies the Vault client reads itself.
var errTooLarge error = tooLargeError{}

type tooLargeError struct{}

func (tooLargeError) Error() string {
	return "Vault's answer is larger than " + sizeString(maxResponseBytes)
}

// meteredTransport makes every response body stop at maxResponseBytes and
// charge the Budget of the request's context as it is read.
type meteredTransport struct{ base *http.Transport }

func (t *meteredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &meteredBody{rc: resp.Body, left: maxResponseBytes + 1, budget: policyFrom(r.Context()).Budget}
	return resp, nil
}

func (t *meteredTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

type meteredBody struct {
	rc     io.ReadCloser
	left   int64 // bytes this answer may still have: maxResponseBytes+1, so "more than" shows
	budget *Budget
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if err := b.budget.check(); err != nil {
		return 0, err
	}
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	if r := b.budget.remaining() + 1; int64(len(p)) > r {
		p = p[:r] // one byte over is enough to know
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if berr := b.budget.charge(n); berr != nil {
		return 0, berr
	}
	return n, err
}

func (b *meteredBody) Close() error { return b.rc.Close() }
