// Package backoff is Sluice's one way to retry: capped exponential backoff bounded by
// a number of attempts, a time budget or both, on an injectable clock.
//
// A Policy says how long to wait between attempts and when to give up. Retrier.Do runs
// the common loop: call, and on a retriable failure wait and call again. A Loop is the
// state of one retry loop for code whose loop does not fit Do (a reader that counts
// failures between successes, a poll that waits for another process).
//
// Giving up is an *Error that says how many attempts over how long, wraps the last
// failure and wraps ErrExhausted. An error that wraps ErrExhausted is never retried
// again, by Do or by a Loop: when an inner layer has spent its budget, an outer layer
// returns its error at once instead of multiplying the budgets. Managers outside this
// module say the same with checkpoint.ErrRetriesExhausted, which callers test for
// themselves.
//
// Time is read and waited for through a Clock: the real one in production (a nil
// Clock), a FakeClock in tests, so that no test waits real seconds for a backoff.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy says how a retry loop waits and when it gives up. The zero Policy retries at
// once and for ever (until its context ends).
type Policy struct {
	// Initial is the wait after the first failed attempt.
	Initial time.Duration
	// Multiplier multiplies the wait after each further failure; 0 or 1 keeps it
	// constant.
	Multiplier float64
	// Max caps each wait; 0 means no cap.
	Max time.Duration
	// Attempts bounds the number of attempts (the first one included); 0 means no
	// bound.
	Attempts int
	// Budget bounds the time from the start of the first attempt to giving up; 0
	// means no bound. A wait is cut short so as not to end after the budget (Do
	// then gives up when it ends, with no attempt after it), and Do gives each
	// attempt a context that ends with the budget.
	Budget time.Duration
}

// next returns the wait that follows wait.
func (p Policy) next(wait time.Duration) time.Duration {
	if p.Multiplier > 1 {
		wait = time.Duration(min(float64(wait)*p.Multiplier, math.MaxInt64))
	}
	if p.Max > 0 {
		wait = min(wait, p.Max)
	}
	return wait
}

// Start starts a retry loop under p on clock (nil: the real clock): its first attempt
// and its budget start now.
func (p Policy) Start(clock Clock) *Loop {
	if clock == nil {
		clock = RealClock{}
	}
	l := &Loop{p: p, clock: clock}
	l.Reset()
	return l
}

// ErrExhausted is wrapped by the errors of retry loops that gave up because their
// policy allowed no more attempts (not because their context ended).
var ErrExhausted = errors.New("retries exhausted")

// Error is how a retry loop ends without success on a retriable failure: its policy
// allowed no more attempts (it wraps ErrExhausted), or its context ended (it wraps
// the context's error). It wraps the last failure too.
type Error struct {
	// Attempts is the number of attempts made.
	Attempts int
	// Elapsed is the time from the start of the first attempt to giving up, on the
	// loop's clock.
	Elapsed time.Duration
	// Err is the last failure.
	Err error
	// Ctx is the context's error when the context ended the loop, else nil.
	Ctx error
}

func (e *Error) Error() string {
	n := fmt.Sprintf("%d attempts", e.Attempts)
	if e.Attempts == 1 {
		n = "1 attempt"
	}
	took := e.Elapsed.Round(time.Millisecond)
	if e.Ctx != nil {
		if e.Err == nil {
			return fmt.Sprintf("%v after %s in %v", e.Ctx, n, took)
		}
		return fmt.Sprintf("%v after %s in %v (last error: %v)", e.Ctx, n, took, e.Err)
	}
	return fmt.Sprintf("gave up after %s in %v: %v", n, took, e.Err)
}

// Unwrap returns the context's error or ErrExhausted, and the last failure.
func (e *Error) Unwrap() []error {
	first := ErrExhausted
	if e.Ctx != nil {
		first = e.Ctx
	}
	if e.Err == nil {
		return []error{first}
	}
	return []error{first, e.Err}
}

// Loop is one retry loop under way: it counts the failed attempts, says how long to
// wait before the next one and when to give up. Create it with Policy.Start. A Loop
// is not safe for concurrent use.
type Loop struct {
	p        Policy
	clock    Clock
	start    time.Time
	attempts int
	wait     time.Duration // the next wait, before the budget cuts it
	last     error
}

// Reset starts the loop afresh, as after progress: the attempts, the waits and the
// budget start again from now.
func (l *Loop) Reset() {
	l.start, l.attempts, l.wait, l.last = l.clock.Now(), 0, l.p.Initial, nil
}

// Attempts returns the number of failed attempts since the loop started or was reset.
func (l *Loop) Attempts() int { return l.attempts }

// Elapsed returns the time since the loop started or was reset, on its clock.
func (l *Loop) Elapsed() time.Duration { return l.clock.Now().Sub(l.start) }

// Failed notes a failed attempt and returns how long to wait before the next one, or,
// when the policy allows no more, an *Error wrapping ErrExhausted and err. An err that
// wraps ErrExhausted already (an inner loop gave up) is returned as it is: it is not
// retried.
func (l *Loop) Failed(err error) (time.Duration, error) {
	if errors.Is(err, ErrExhausted) {
		return 0, err
	}
	l.attempts++
	l.last = informative(l.last, err)
	if l.p.Attempts > 0 && l.attempts >= l.p.Attempts {
		return 0, l.exhausted()
	}
	wait := l.wait
	if l.p.Budget > 0 {
		left := l.left()
		if left <= 0 {
			return 0, l.exhausted()
		}
		wait = min(wait, left)
	}
	l.wait = l.p.next(l.wait)
	return wait, nil
}

// Wait waits d on the loop's clock. When ctx ends first it returns an *Error wrapping
// ctx's error and the last failure.
func (l *Loop) Wait(ctx context.Context, d time.Duration) error {
	if err := Sleep(ctx, l.clock, d); err != nil {
		return l.ended(err)
	}
	return nil
}

// left returns the time left in the budget, which must be set.
func (l *Loop) left() time.Duration { return l.p.Budget - l.Elapsed() }

// spent reports whether the budget is set and spent.
func (l *Loop) spent() bool { return l.p.Budget > 0 && l.left() <= 0 }

func (l *Loop) exhausted() *Error {
	return &Error{Attempts: l.attempts, Elapsed: l.Elapsed(), Err: l.last}
}

func (l *Loop) ended(ctxErr error) *Error {
	return &Error{Attempts: l.attempts, Elapsed: l.Elapsed(), Err: l.last, Ctx: ctxErr}
}

// informative returns the failure worth reporting of an earlier one and a later one:
// the later one, unless it only says that a context ended and the earlier one says
// more (a broker's error rather than our own deadline).
func informative(earlier, later error) error {
	if earlier != nil && (errors.Is(later, context.DeadlineExceeded) || errors.Is(later, context.Canceled)) {
		return earlier
	}
	return later
}

// Retrier retries an operation under a Policy.
type Retrier struct {
	Policy
	// Clock tells time for the waits and the budget; nil is the real clock.
	Clock Clock
	// Retriable reports whether a failure is worth another attempt; nil retries
	// every failure. A failure that wraps ErrExhausted is never retried.
	Retriable func(error) bool
	// OnRetry, when set, hears of each failure that will be retried, before the wait
	// (to log it): the attempt's number from 1, the wait and the failure. It does not
	// hear of the last wait of a budget, after which Do gives up.
	OnRetry func(attempt int, wait time.Duration, err error)
}

// errBudget is the cause of the context of an attempt that the budget ended.
var errBudget = errors.New("the retry budget is spent")

// Do calls fn until it succeeds, fails with an error that is not retriable (returned
// as it is), or the policy allows no more attempts (an *Error wrapping ErrExhausted
// and the last failure). With a Budget, fn's context ends when the budget does. When
// ctx ends after a failure or during a wait, Do returns an *Error wrapping ctx's error
// and the last failure. Do calls fn at least once, even when ctx has ended already.
func (r Retrier) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	l := r.Start(r.Clock)
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.Budget > 0 {
			actx, cancel = context.WithTimeoutCause(ctx, l.left(), errBudget)
		}
		err := fn(actx)
		// The budget ended the attempt (not ctx): whatever it returned, give up.
		cutShort := ctx.Err() == nil && context.Cause(actx) == errBudget
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrExhausted):
			return err // an inner loop spent its budget: do not multiply it
		case !cutShort && r.Retriable != nil && !r.Retriable(err):
			return err
		}
		wait, gaveUp := l.Failed(err)
		switch {
		case cutShort:
			return l.exhausted()
		case ctx.Err() != nil:
			return l.ended(ctx.Err())
		case gaveUp != nil:
			return gaveUp
		}
		// A wait cut to the end of the budget is the last: Do waits it out and gives
		// up, so that the loop ends with its budget and not before.
		last := r.Budget > 0 && wait >= l.left()
		if r.OnRetry != nil && !last {
			r.OnRetry(l.Attempts(), wait, err)
		}
		if err := l.Wait(ctx, wait); err != nil {
			return err
		}
		if last || l.spent() {
			return l.exhausted()
		}
	}
}

// Sleep waits d on clock (nil: the real clock), or returns ctx's error if ctx ends
// first or has ended already.
func Sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if clock == nil {
		clock = RealClock{}
	}
	select {
	case <-clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
