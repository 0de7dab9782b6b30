package tmpl

import (
	"context"
	"fmt"
	"strings"
)

// callCost is the work one function call counts, whatever it produces:
// calls that produce nothing (eq, len, and, ...) still cost time, and in a
// loop that time must run out of budget.
const callCost = 16

// run is the state of one execution: the budget the functions draw on.
type run struct {
	ctx        context.Context
	values     map[string]any
	work       int
	iterations int
	lim        Limits
	// literals are the template's string constants: a key that is one of
	// them may be quoted in a message, any other key was computed and may
	// be a value.
	literals map[string]bool
}

// charge draws n bytes of work, and checks the deadline. Functions charge
// before they allocate what they charge for.
func (r *run) charge(n int) error {
	if r.ctx != nil {
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	r.work -= n
	if r.work < 0 {
		return fmt.Errorf("%w: work budget: more than %d bytes of work (MaxWork; a call counts %d, a range iteration the length of its body, a function's output its length)", ErrLimit, r.lim.MaxWork, callCost)
	}
	return nil
}

// call charges one function call.
func (r *run) call() error { return r.charge(callCost) }

// need fails, without charging, if the budget left is less than n: a
// function about to produce at least n bytes checks before it allocates
// them.
func (r *run) need(n int) error {
	if n > r.work {
		return r.charge(n)
	}
	return nil
}

// builder is where a function builds its result: each write is charged
// before it is copied, so a result stops growing where the budget ends
// instead of being built whole and charged afterwards.
type builder struct {
	r    *run
	sb   strings.Builder
	paid int // bytes charged ahead of writing, by grow
}

// grow charges n bytes ahead and reserves room for them: for results whose
// size is known before they are built.
func (b *builder) grow(n int) error {
	if err := b.r.charge(n); err != nil {
		return err
	}
	b.paid += n
	b.sb.Grow(n)
	return nil
}

func (b *builder) WriteString(s string) (int, error) {
	if err := b.room(len(s)); err != nil {
		return 0, err
	}
	return b.sb.WriteString(s)
}

func (b *builder) Write(p []byte) (int, error) {
	if err := b.room(len(p)); err != nil {
		return 0, err
	}
	return b.sb.Write(p)
}

// room charges what of n bytes grow did not pay for, and makes room for
// them: Grow doubles the buffer, where append would grow a large one by a
// quarter at a time and leave five times its size behind as garbage.
func (b *builder) room(n int) error {
	if over := b.sb.Len() + n - b.paid; over > 0 {
		if err := b.r.charge(over); err != nil {
			return err
		}
		b.paid += over
	}
	if b.sb.Cap()-b.sb.Len() < n {
		b.sb.Grow(n)
	}
	return nil
}

func (b *builder) String() string { return b.sb.String() }

// sizeOf is a lower bound of the bytes printing v takes: the strings in
// it. Values are strings or maps of them; anything else counts nothing.
func sizeOf(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case map[string]string:
		n := 0
		for k, s := range v {
			n += len(k) + len(s)
		}
		return n
	case map[string]any:
		n := 0
		for k, s := range v {
			n += len(k) + sizeOf(s)
		}
		return n
	}
	return 0
}
