// Package decimal is the offset arithmetic of systems whose offsets are message
// numbers written in decimal, as Kafka's and the in-memory system's are: "0", "1", ...,
// up to the largest int64.
//
// An offset is written plainly, the one way Format writes it: digits only, no sign,
// no leading zeros ("0" itself excepted), no spaces. Parse refuses every other form
// ("+5", "007", "-0", " 7", "1e3"), so that two strings that are different offsets
// never name the same message, and its error gives the plain form when there is one.
package decimal

import (
	"fmt"
	"math"
	"strconv"
)

// SyntaxError is the error of Parse: s is not an offset.
type SyntaxError struct {
	// Offset is the string refused.
	Offset string
	// Plain is how to write it, when it is a number not written plainly ("+5" is
	// "5"); else "".
	Plain string
}

func (e *SyntaxError) Error() string {
	if e.Plain != "" {
		return fmt.Sprintf("offset %q is not written plainly: write %s (a whole number without a sign or leading zeros)", e.Offset, e.Plain)
	}
	return fmt.Sprintf("%q is not an offset (a whole number from 0 to %d, written without a sign or leading zeros)", e.Offset, int64(math.MaxInt64))
}

// Parse returns the number offset s stands for. Its error is a *SyntaxError, which
// names s and, for a number not written plainly ("+5", "007"), says how to write it.
func Parse(s string) (int64, error) {
	if n, ok := parse(s); ok {
		return n, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return 0, &SyntaxError{Offset: s, Plain: Format(n)}
	}
	return 0, &SyntaxError{Offset: s}
}

// parse accepts exactly the strings Format returns.
func parse(s string) (int64, bool) {
	switch {
	case s == "" || len(s) > 19:
		return 0, false
	case s == "0":
		return 0, true
	case s[0] == '0':
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// Format writes offset n plainly. n must not be negative.
func Format(n int64) string { return strconv.FormatInt(n, 10) }

// Offsets implements the offset arithmetic of system.Admin (CompareOffsets,
// OffsetAfter and Distance) for decimal offsets; a system's admin embeds it.
type Offsets struct {
	// Prefix starts every error, as in "kafka: ..."; empty for none.
	Prefix string
}

func (o Offsets) parse(s string) (int64, error) {
	n, err := Parse(s)
	if err != nil && o.Prefix != "" {
		return 0, fmt.Errorf("%s: %w", o.Prefix, err)
	}
	return n, err
}

// CompareOffsets returns -1, 0 or 1 as a is before, equal to or after b.
func (o Offsets) CompareOffsets(a, b string) (int, error) {
	x, err := o.parse(a)
	if err != nil {
		return 0, err
	}
	y, err := o.parse(b)
	if err != nil {
		return 0, err
	}
	switch {
	case x < y:
		return -1, nil
	case x > y:
		return 1, nil
	}
	return 0, nil
}

// OffsetAfter returns offset + 1. The largest offset has no successor.
func (o Offsets) OffsetAfter(offset string) (string, error) {
	n, err := o.parse(offset)
	if err != nil {
		return "", err
	}
	if n == math.MaxInt64 {
		err := fmt.Errorf("offset %s has no successor", offset)
		if o.Prefix != "" {
			err = fmt.Errorf("%s: %w", o.Prefix, err)
		}
		return "", err
	}
	return Format(n + 1), nil
}

// Distance returns to − from: the number of messages from "from" up to, excluding,
// "to" (negative when to is before from).
func (o Offsets) Distance(from, to string) (int64, error) {
	f, err := o.parse(from)
	if err != nil {
		return 0, err
	}
	t, err := o.parse(to)
	if err != nil {
		return 0, err
	}
	return t - f, nil
}
