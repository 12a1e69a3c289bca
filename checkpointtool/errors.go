package checkpointtool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config/properties"
	"github.com/sluice-streams/sluice/system"
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

// RestoreHow says how a task's old checkpoint was put back after a failed rewrite.
type RestoreHow int

const (
	// RestoredOld: the task's old offsets were written back (as a new checkpoint, with
	// a new id and time).
	RestoredOld RestoreHow = iota + 1
	// RestoredDeleted: the task had no checkpoint, and the one written was deleted.
	RestoredDeleted
	// RestoredEmpty: the task had no checkpoint and the manager cannot delete one, so
	// it got a checkpoint without partitions, which the job treats exactly like none
	// (every partition starts at its default).
	RestoredEmpty
)

// Restored is a task whose new checkpoint was written and then undone.
type Restored struct {
	Task string
	How  RestoreHow
}

// Unrestored is a task left holding the new offsets after a failed rewrite, because
// putting its old checkpoint back failed too.
type Unrestored struct {
	Task string
	// HadNone: the task had no checkpoint before. Corrupt: it had one that could not be
	// read (and so cannot be written back). Otherwise Old holds its old offsets.
	HadNone, Corrupt bool
	Old              map[system.SystemStreamPartition]string
	// Path is the file that holds the task's checkpoint, for managers that keep one
	// file per task; "" otherwise.
	Path string
	// Err says why the old checkpoint could not be put back.
	Err error
}

// WriteError reports a rewrite whose write of task Failed failed, and what the tool did
// about it. The tool undoes the rewrite: it puts back the old checkpoint of every task
// written before Failed (Restored), and of Failed itself, in case its write was stored
// after all (FailedRestored; a failure to do so is FailedRestoreErr, reported but
// harmless when the write really failed). Only the tasks in LeftChanged hold new
// offsets: no checkpoint is changed when it is empty. The tasks of NotWritten were not
// written. Unwrap returns the write's error.
type WriteError struct {
	Failed           string
	Err              error
	Restored         []Restored
	FailedRestored   RestoreHow // 0 when FailedRestoreErr is set
	FailedRestoreErr error
	LeftChanged      []Unrestored
	NotWritten       []string
}

func (e *WriteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "writing the checkpoint of task %q failed: %v", e.Failed, e.Err)
	if len(e.LeftChanged) == 0 {
		b.WriteString("\nthe rewrite was undone: every task holds its old offsets again")
	} else {
		n := len(e.LeftChanged)
		fmt.Fprintf(&b, "\nthe rewrite could NOT be fully undone: %d %s the NEW offsets; put the old ones back by hand:", n, plural(n, "task holds", "tasks hold"))
		for _, u := range e.LeftChanged {
			fmt.Fprintf(&b, "\n  task %q: putting its old checkpoint back failed: %v", u.Task, u.Err)
			switch {
			case u.Corrupt:
				b.WriteString("\n    its old checkpoint could not be read; there are no old offsets to put back")
			case u.HadNone:
				b.WriteString("\n    it had no checkpoint before: delete its checkpoint")
				if u.Path != "" {
					fmt.Fprintf(&b, " (the file %s)", u.Path)
				}
				b.WriteString(" while the job is stopped, so that it starts from its default offsets")
			default:
				b.WriteString("\n    its old offsets, to write back with --new-offsets=FILE --replace:")
				for _, ssp := range checkpoint.New(u.Old).Partitions() {
					fmt.Fprintf(&b, "\n      %s=%s", properties.EscapeKey(Key(u.Task, ssp)), properties.EscapeValue(u.Old[ssp]))
				}
			}
		}
	}
	for _, r := range e.Restored {
		switch r.How {
		case RestoredOld:
			fmt.Fprintf(&b, "\ntask %q: written, then its old offsets were written back", r.Task)
		case RestoredDeleted:
			fmt.Fprintf(&b, "\ntask %q: written, then deleted again (it had no checkpoint)", r.Task)
		case RestoredEmpty:
			fmt.Fprintf(&b, "\ntask %q: written, then replaced by an empty checkpoint (it had none, and this checkpoint manager cannot delete one; the job treats an empty checkpoint like none)", r.Task)
		}
	}
	switch {
	case e.FailedRestoreErr != nil:
		fmt.Fprintf(&b, "\ntask %q: not written; writing its old checkpoint back as a precaution failed too (%v), which is harmless if its write stored nothing, as a failed write should", e.Failed, e.FailedRestoreErr)
	case e.FailedRestored == RestoredEmpty:
		fmt.Fprintf(&b, "\ntask %q: not written; it had no checkpoint and, as a precaution, now holds an empty one (this checkpoint manager cannot delete one; the job treats an empty checkpoint like none)", e.Failed)
	case e.FailedRestored == RestoredDeleted:
		fmt.Fprintf(&b, "\ntask %q: not written; it had no checkpoint, and any it might hold was deleted as a precaution", e.Failed)
	default:
		fmt.Fprintf(&b, "\ntask %q: not written; its old offsets were written back as a precaution", e.Failed)
	}
	if len(e.NotWritten) > 0 {
		fmt.Fprintf(&b, "\nnot written: %s", quoteList(e.NotWritten))
	}
	b.WriteString("\nfix the cause and run the command again")
	return b.String()
}

// Unwrap returns the write's error.
func (e *WriteError) Unwrap() error { return e.Err }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
