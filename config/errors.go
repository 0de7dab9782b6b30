package config

import (
	"errors"
	"fmt"
)

// Error is an input error. Its message is meant for the pod's events, so it
// says which parameter or object is wrong and how to fix it.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

// Errorf returns an input error.
func Errorf(format string, args ...any) error { return &Error{msg: fmt.Sprintf(format, args...)} }

func errorf(format string, args ...any) error { return Errorf(format, args...) }

// IsInputError reports whether err (or anything it wraps) is an input error.
func IsInputError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
