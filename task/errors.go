package task

import "fmt"

// KindSkippable is the kind of the errors Skippable returns.
const KindSkippable = "skippable"

// KindError is an error a task marked with a kind name. A job lists the kinds whose
// messages it skips in task.ignored.exceptions (Samza lists Java exception classes
// there); a message whose Process failed with such an error is logged, counted, sent
// to the dead-letter stream if one is configured, and checkpointed past instead of
// stopping the job.
type KindError struct {
	Kind string
	Err  error
}

func (e *KindError) Error() string { return e.Err.Error() }

// Unwrap returns the marked error.
func (e *KindError) Unwrap() error { return e.Err }

// Kind marks err with a kind name for task.ignored.exceptions. A nil err stays nil.
func Kind(kind string, err error) error {
	if err == nil {
		return nil
	}
	return &KindError{Kind: kind, Err: err}
}

// Skippable marks err as a failure that concerns the message alone (it cannot be
// decoded, it fails validation), not the task or its environment: a job with
// task.ignored.exceptions=skippable skips such a message instead of stopping. It is
// Kind(KindSkippable, err).
func Skippable(err error) error { return Kind(KindSkippable, err) }

// Ignored reports whether a job whose task.ignored.exceptions lists the entries
// ignored skips a message whose processing failed with err. An entry matches when it
// is "*" (every error, panics included), the kind of a KindError in err's chain, or
// the dynamic type of an error in the chain as fmt's %T prints it (e.g.
// "*json.SyntaxError", "*strconv.NumError"), the Go counterpart of Samza's exception
// class names.
func Ignored(err error, ignored []string) bool {
	if err == nil || len(ignored) == 0 {
		return false
	}
	set := make(map[string]bool, len(ignored))
	for _, e := range ignored {
		if e == "*" {
			return true
		}
		set[e] = true
	}
	found := false
	walk(err, func(e error) bool {
		if ke, ok := e.(*KindError); ok && set[ke.Kind] {
			found = true
		} else if set[fmt.Sprintf("%T", e)] {
			found = true
		}
		return found
	})
	return found
}

// walk calls fn for err and every error it wraps, depth first, until fn returns true.
func walk(err error, fn func(error) bool) bool {
	if err == nil {
		return false
	}
	if fn(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, fn) {
				return true
			}
		}
	}
	return false
}
