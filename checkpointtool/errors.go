package checkpointtool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-streams/sluice/config/properties"
)

// ErrBadInput is wrapped by every error that is the fault of what the tool was asked
// to do: conflicting or malformed flags, a --new-offsets file that does not validate,
// a stream that is not an input of the job. Nothing is written when it is returned.
// The sluice command exits with code 2 for these errors and 1 for all others.
var ErrBadInput = errors.New("bad input")

// inputError is a bad-input error with a message of its own.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return ErrBadInput }

func badInput(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// Problem is one thing wrong with one entry of a --new-offsets file.
type Problem struct {
	// File is the name of the file as given to the tool.
	File string
	// Line is the 1-based line the entry starts on.
	Line int
	// Key is the entry's key, unescaped; empty for a problem that is not about one entry.
	Key string
	// Msg says what is wrong.
	Msg string
}

// String returns "file:line: key: message", the key escaped as it would be written in
// the file.
func (p Problem) String() string {
	if p.Key == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, properties.EscapeKey(p.Key), p.Msg)
}

// ValidationError lists every problem found in a --new-offsets file. Nothing was
// written. It wraps ErrBadInput.
type ValidationError struct {
	File     string
	Problems []Problem
}

// Error returns a summary line followed by one line per problem.
func (e *ValidationError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	fmt.Fprintf(&b, "%s has %d %s; nothing was written", e.File, n, plural(n, "problem", "problems"))
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns ErrBadInput.
func (e *ValidationError) Unwrap() error { return ErrBadInput }

// PartialWriteError reports a write that failed after others succeeded: the
// checkpoints of Written were replaced, Failed's was not, nor were those of NotWritten.
type PartialWriteError struct {
	Written    []string
	Failed     string
	NotWritten []string
	Err        error
}

func (e *PartialWriteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "writing the checkpoint of task %s failed: %v", e.Failed, e.Err)
	if len(e.Written) == 0 {
		b.WriteString("\nno checkpoint was written; the stored checkpoints are unchanged")
	} else {
		fmt.Fprintf(&b, "\nalready written (now hold the new offsets): %s", strings.Join(e.Written, ", "))
	}
	fmt.Fprintf(&b, "\nnot written (still hold the old offsets): %s", strings.Join(append([]string{e.Failed}, e.NotWritten...), ", "))
	b.WriteString("\nfix the cause and run the command again to write the rest")
	return b.String()
}

// Unwrap returns the cause.
func (e *PartialWriteError) Unwrap() error { return e.Err }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
