package tmpl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrLimit marks an execution stopped by a Limits bound.
var ErrLimit = errors.New("template limit exceeded")

// execError is an execution error as Execute returns it: the template's
// name and position and a reason, wrapping only the sentinel it was
// caused by (ErrLimit, the context's error), never the message it was
// made from.
type execError struct {
	msg   string
	cause error
}

func (e *execError) Error() string { return e.msg }
func (e *execError) Unwrap() error { return e.cause }

// execError rewrites an error of text/template's Execute. Its messages
// read
//
//	template: NAME:LINE:COL: executing "NAME" at <NODE>: REASON
//
// NODE is the (rewritten) source of the node that failed; REASON is
// text/template's, naming source, types and field names, or "error
// calling F: " and one of our functions' errors, which name kinds and
// literal keys only. What is kept is "template: NAME:LINE:COL: REASON",
// and in case a value reached REASON all the same, each value of at
// least minScrub bytes is cut out of it.
func (t *Template) execError(err error, values map[string]any, lim Limits) error {
	name := t.t.Name()
	var cause error
	for _, c := range []error{ErrLimit, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, c) {
			cause = c
			break
		}
	}
	if errors.Is(err, errOutput) {
		return &execError{msg: fmt.Sprintf("template: %s: %v: it renders more than %d bytes (MaxOutput)", name, ErrLimit, lim.MaxOutput), cause: ErrLimit}
	}
	msg := err.Error()
	loc, reason := name, msg
	if rest, ok := strings.CutPrefix(msg, "template: "+name+":"); ok {
		if pos, after, ok := cutPosition(rest); ok {
			loc = name + ":" + pos
			reason = after
			if r, ok := strings.CutPrefix(after, "executing "+strconv.Quote(name)+" at <"); ok {
				// NODE is source text: a ">: " in it would end it early
				// and leave some source in REASON, nothing worse.
				if _, r, ok := strings.Cut(r, ">: "); ok {
					reason = r
				}
			}
		} else if r, ok := strings.CutPrefix(rest, " "); ok {
			reason = r
		}
	}
	// The functions the rewritten tree calls are named for what the
	// source wrote.
	for hidden, shown := range map[string]string{guard: "range", tick: "range", andTick: "and", orTick: "or"} {
		if r, ok := strings.CutPrefix(reason, "error calling "+hidden+": "); ok {
			reason = shown + ": " + r
		}
	}
	return &execError{msg: "template: " + loc + ": " + scrub(reason, values), cause: cause}
}

// cutPosition splits "LINE:COL: REST".
func cutPosition(s string) (pos, rest string, ok bool) {
	line, s, ok := cutDigits(s)
	if !ok || !strings.HasPrefix(s, ":") {
		return "", "", false
	}
	col, s, ok := cutDigits(s[1:])
	if !ok || !strings.HasPrefix(s, ": ") {
		return "", "", false
	}
	return line + ":" + col, s[2:], true
}

func cutDigits(s string) (digits, rest string, ok bool) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:], i > 0
}

// minScrub: shorter values are not cut out of messages, where they would
// cut up words ("string", "map") more often than hide a secret.
const minScrub = 6

// scrub replaces each value of at least minScrub bytes in msg.
func scrub(msg string, values map[string]any) string {
	cut := func(v string) {
		if len(v) >= minScrub {
			msg = strings.ReplaceAll(msg, v, "(a value, not shown)")
		}
	}
	for _, v := range values {
		switch v := v.(type) {
		case string:
			cut(v)
		case map[string]string:
			for _, s := range v {
				cut(s)
			}
		}
	}
	return msg
}
