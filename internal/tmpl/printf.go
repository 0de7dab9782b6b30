package tmpl

import (
	"fmt"
	"reflect"
	"unicode/utf8"
)

// MaxFormatWidth bounds the width and the precision of a printf verb,
// written in the format or taken from an argument ("%*d"): fmt pads to
// widths up to a million, and builds the whole result before we could
// charge it.
const MaxFormatWidth = 1024

// printf is fmt.Sprintf, verb by verb: it reads the format as fmt does,
// refuses widths and precisions over MaxFormatWidth, and formats each verb
// on its own into a builder, so that every byte is charged as it is
// written and no verb builds more than its width and one argument. Its
// output is fmt.Sprintf's, malformed formats included (%!d(MISSING), ...).
func (r *run) printf(format string, a ...any) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	b := &builder{r: r}
	p := printer{r: r, b: b, a: a}
	if err := p.doPrintf(format); err != nil {
		return "", err
	}
	return b.String(), nil
}

// print is fmt.Sprint, argument by argument, each charged as written.
func (r *run) print(a ...any) (string, error) {
	if err := r.call(); err != nil {
		return "", err
	}
	b := &builder{r: r}
	p := printer{r: r, b: b, a: a}
	prevString := false
	for i, arg := range a {
		isString := arg != nil && reflect.TypeOf(arg).Kind() == reflect.String
		// fmt adds a space between two operands when neither is a string.
		if i > 0 && !isString && !prevString {
			if _, err := b.WriteString(" "); err != nil {
				return "", err
			}
		}
		if err := p.printArg(arg, "", 0, 0, false, 'v'); err != nil {
			return "", err
		}
		prevString = isString
	}
	return b.String(), nil
}

type printer struct {
	r *run
	b *builder
	a []any
	// The state of fmt's pp that the reading of a format needs.
	reordered  bool
	goodArgNum bool
}

// printArg formats one argument with flags, a width and a precision
// (already checked) and verb. fmt reads its format again: the width and
// precision are passed as arguments, so that whatever follows them, even
// a verb that is a digit or '*', is read back as the verb.
func (p *printer) printArg(arg any, flags string, wid int, prec int, precPresent bool, verb rune) error {
	if s, ok := arg.(string); ok && flags == "" && wid == 0 && !precPresent && (verb == 'v' || verb == 's') {
		_, err := p.b.WriteString(s)
		return err
	}
	// Whatever the verb (but %T and %p), the output holds the argument's
	// strings, or with a precision a prefix of each: check they fit
	// before fmt builds them.
	if !precPresent && verb != 'T' && verb != 'p' {
		if err := p.r.need(sizeOf(arg)); err != nil {
			return err
		}
	}
	var err error
	if precPresent {
		_, err = fmt.Fprintf(p.b, "%"+flags+"[1]*.[2]*[3]"+string(verb), wid, prec, arg)
	} else {
		_, err = fmt.Fprintf(p.b, "%"+flags+"[1]*[2]"+string(verb), wid, arg)
	}
	return err
}

// doPrintf follows fmt's doPrintf (Go 1.26, fmt/print.go), writing what
// it writes, in the same order.
func (p *printer) doPrintf(format string) error {
	a := p.a
	end := len(format)
	argNum := 0
	afterIndex := false
	p.reordered = false
	write := func(s string) error {
		_, err := p.b.WriteString(s)
		return err
	}
	for i := 0; i < end; {
		p.goodArgNum = true
		lasti := i
		for i < end && format[i] != '%' {
			i++
		}
		if i > lasti {
			if err := write(format[lasti:i]); err != nil {
				return err
			}
		}
		if i >= end {
			break
		}
		i++ // the '%'

		// Flags, kept as written: fmt reads them the same way again.
		flagStart := i
		for i < end && isFlag(format[i]) {
			i++
		}
		flags := format[flagStart:i]

		argNum, i, afterIndex = p.argNumber(argNum, format, i, len(a))

		var wid, prec int
		var widPresent, precPresent bool
		if i < end && format[i] == '*' {
			i++
			wid, widPresent, argNum = intFromArg(a, argNum)
			if !widPresent {
				if err := write("%!(BADWIDTH)"); err != nil {
					return err
				}
			}
			// A negative width pads on the right: fmt does it again
			// when given it.
			afterIndex = false
		} else {
			wid, widPresent, i = parsenum(format, i, end)
			if afterIndex && widPresent {
				p.goodArgNum = false
			}
		}

		if i+1 < end && format[i] == '.' {
			i++
			if afterIndex {
				p.goodArgNum = false
			}
			argNum, i, afterIndex = p.argNumber(argNum, format, i, len(a))
			if i < end && format[i] == '*' {
				i++
				prec, precPresent, argNum = intFromArg(a, argNum)
				if prec < 0 {
					prec = 0
					precPresent = false
				}
				if !precPresent {
					if err := write("%!(BADPREC)"); err != nil {
						return err
					}
				}
				afterIndex = false
			} else {
				prec, precPresent, i = parsenum(format, i, end)
				if !precPresent {
					prec = 0
					precPresent = true
				}
			}
		}

		if !afterIndex {
			argNum, i, _ = p.argNumber(argNum, format, i, len(a))
		}

		if i >= end {
			if err := write("%!(NOVERB)"); err != nil {
				return err
			}
			break
		}

		verb, size := utf8.DecodeRuneInString(format[i:])
		i += size

		var err error
		switch {
		case verb == '%': // takes no argument, ignores width and precision
			err = write("%")
		case !p.goodArgNum:
			err = write("%!" + string(verb) + "(BADINDEX)")
		case argNum >= len(a):
			err = write("%!" + string(verb) + "(MISSING)")
		default:
			if (widPresent && (wid > MaxFormatWidth || wid < -MaxFormatWidth)) || (precPresent && prec > MaxFormatWidth) {
				return fmt.Errorf("%w: printf: a width or precision is over %d (MaxFormatWidth)", ErrLimit, MaxFormatWidth)
			}
			// A width fmt found bad is 0 here, as in fmt, and a width of 0
			// prints as no width.
			err = p.printArg(a[argNum], flags, wid, prec, precPresent, verb)
			argNum++
		}
		if err != nil {
			return err
		}
	}

	// Arguments left over, unless they were used out of order.
	if !p.reordered && argNum < len(a) {
		if err := write("%!(EXTRA "); err != nil {
			return err
		}
		for i, arg := range a[argNum:] {
			if i > 0 {
				if err := write(", "); err != nil {
					return err
				}
			}
			if arg == nil {
				if err := write("<nil>"); err != nil {
					return err
				}
				continue
			}
			if err := write(reflect.TypeOf(arg).String() + "="); err != nil {
				return err
			}
			if err := p.printArg(arg, "", 0, 0, false, 'v'); err != nil {
				return err
			}
		}
		return write(")")
	}
	return nil
}

func isFlag(c byte) bool {
	switch c {
	case '#', '0', '+', '-', ' ':
		return true
	}
	return false
}

// argNumber is fmt's: an explicit argument index "[n]" at format[i:].
func (p *printer) argNumber(argNum int, format string, i int, numArgs int) (newArgNum, newi int, found bool) {
	if len(format) <= i || format[i] != '[' {
		return argNum, i, false
	}
	p.reordered = true
	index, wid, ok := parseArgNumber(format[i:])
	if ok && 0 <= index && index < numArgs {
		return index, i + wid, true
	}
	p.goodArgNum = false
	return argNum, i + wid, ok
}

// parseArgNumber, parsenum, tooLarge and intFromArg are fmt's.

func parseArgNumber(format string) (index int, wid int, ok bool) {
	if len(format) < 3 {
		return 0, 1, false
	}
	for i := 1; i < len(format); i++ {
		if format[i] == ']' {
			width, ok, newi := parsenum(format, 1, i)
			if !ok || newi != i {
				return 0, i + 1, false
			}
			return width - 1, i + 1, true
		}
	}
	return 0, 1, false
}

func tooLarge(x int) bool {
	const max int = 1e6
	return x > max || x < -max
}

func parsenum(s string, start, end int) (num int, isnum bool, newi int) {
	if start >= end {
		return 0, false, end
	}
	for newi = start; newi < end && '0' <= s[newi] && s[newi] <= '9'; newi++ {
		if tooLarge(num) {
			return 0, false, end
		}
		num = num*10 + int(s[newi]-'0')
		isnum = true
	}
	return
}

func intFromArg(a []any, argNum int) (num int, isInt bool, newArgNum int) {
	newArgNum = argNum
	if argNum < len(a) {
		num, isInt = a[argNum].(int)
		if !isInt {
			switch v := reflect.ValueOf(a[argNum]); v.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				n := v.Int()
				if int64(int(n)) == n {
					num = int(n)
					isInt = true
				}
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				n := v.Uint()
				if int64(n) >= 0 && uint64(int(n)) == n {
					num = int(n)
					isInt = true
				}
			}
		}
		newArgNum = argNum + 1
		if tooLarge(num) {
			num = 0
			isInt = false
		}
	}
	return
}
