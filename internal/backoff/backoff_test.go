package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/backoff"
)

var errBoom = errors.New("boom")

// failing returns an operation that fails n times with err (for ever when n < 0),
// then succeeds, and a pointer to the number of calls.
func failing(n int, err error) (func(context.Context) error, *int) {
	calls := new(int)
	return func(context.Context) error {
		*calls++
		if n < 0 || *calls <= n {
			return err
		}
		return nil
	}, calls
}

func TestDoWaitsGrowAndAttemptsBound(t *testing.T) {
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	fn, calls := failing(-1, errBoom)
	r := backoff.Retrier{Policy: backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 4, Attempts: 4}, Clock: clock}
	err := r.Do(t.Context(), fn)
	if *calls != 4 {
		t.Errorf("fn called %d times, want 4", *calls)
	}
	if want := []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v", clock.Waits(), want)
	}
	if !errors.Is(err, backoff.ErrExhausted) || !errors.Is(err, errBoom) {
		t.Fatalf("Do = %v, want ErrExhausted and the last failure", err)
	}
	if got, want := err.Error(), "gave up after 4 attempts in 2.1s: boom"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	be, ok := errors.AsType[*backoff.Error](err)
	if !ok || be.Attempts != 4 || be.Elapsed != 2100*time.Millisecond || be.Ctx != nil {
		t.Errorf("*Error = %+v", be)
	}
}

func TestDoSucceedsAfterFailures(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	fn, calls := failing(2, errBoom)
	var heard []string
	r := backoff.Retrier{
		Policy: backoff.Policy{Initial: 10 * time.Millisecond, Multiplier: 2, Attempts: 5},
		Clock:  clock,
		OnRetry: func(attempt int, wait time.Duration, err error) {
			heard = append(heard, fmt.Sprintf("%d %v %v", attempt, wait, err))
		},
	}
	if err := r.Do(t.Context(), fn); err != nil {
		t.Fatalf("Do = %v", err)
	}
	if *calls != 3 {
		t.Errorf("fn called %d times, want 3", *calls)
	}
	if got, want := strings.Join(heard, ", "), "1 10ms boom, 2 20ms boom"; got != want {
		t.Errorf("OnRetry heard %q, want %q", got, want)
	}
}

func TestMaxCapsTheWait(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	fn, _ := failing(-1, errBoom)
	r := backoff.Retrier{Policy: backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 300 * time.Millisecond, Attempts: 5}, Clock: clock}
	_ = r.Do(t.Context(), fn)
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v", clock.Waits(), want)
	}
}

func TestMultiplierOfOneOrLessIsConstant(t *testing.T) {
	for _, m := range []float64{0, 0.5, 1} {
		clock := backoff.NewFakeClock(time.Time{})
		fn, _ := failing(-1, errBoom)
		_ = backoff.Retrier{Policy: backoff.Policy{Initial: time.Second, Multiplier: m, Attempts: 3}, Clock: clock}.Do(t.Context(), fn)
		if want := []time.Duration{time.Second, time.Second}; !slices.Equal(clock.Waits(), want) {
			t.Errorf("Multiplier %v: waits = %v, want %v", m, clock.Waits(), want)
		}
	}
}

func TestHugeWaitsDoNotOverflow(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	fn, _ := failing(-1, errBoom)
	_ = backoff.Retrier{Policy: backoff.Policy{Initial: time.Hour, Multiplier: 1e6, Attempts: 6}, Clock: clock}.Do(t.Context(), fn)
	for i, d := range clock.Waits() {
		if d <= 0 {
			t.Errorf("wait %d = %v, want positive", i, d)
		}
	}
}

// TestBudgetBoundsTheLoop: the attempts' own time counts, and the last wait is cut so
// as not to end after the budget.
func TestBudgetBoundsTheLoop(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	calls := 0
	r := backoff.Retrier{Policy: backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 2, Budget: 1500 * time.Millisecond}, Clock: clock}
	err := r.Do(t.Context(), func(context.Context) error {
		calls++
		clock.Advance(250 * time.Millisecond) // each attempt takes a while
		return errBoom
	})
	// 0-250 fail, wait 100, 350-600 fail, wait 200, 800-1050 fail, wait 400 (450
	// left), 1450-1700 fail: the budget is spent.
	if calls != 4 {
		t.Errorf("fn called %d times, want 4", calls)
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v", clock.Waits(), want)
	}
	if got, want := fmt.Sprint(err), "gave up after 4 attempts in 1.7s: boom"; got != want {
		t.Errorf("Do = %q, want %q", got, want)
	}

	// Without the attempts' time, the fourth wait is cut to the 800 ms left and the
	// loop gives up when it ends, with no attempt after the budget.
	clock = backoff.NewFakeClock(time.Time{})
	fn, n := failing(-1, errBoom)
	r.Clock = clock
	var announced []time.Duration
	r.OnRetry = func(_ int, wait time.Duration, _ error) { announced = append(announced, wait) }
	err = r.Do(t.Context(), fn)
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v", clock.Waits(), want)
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(announced, want) {
		t.Errorf("OnRetry heard of waits %v, want %v (not the last one, which no retry follows)", announced, want)
	}
	if got, want := fmt.Sprint(err), "gave up after 4 attempts in 1.5s: boom"; got != want || *n != 4 {
		t.Errorf("Do = %q after %d calls, want %q after 4", got, *n, want)
	}
}

// TestBudgetEndsAnAttempt: an attempt still running when the budget ends is cut short,
// and the error reports the failure before it rather than the deadline.
func TestBudgetEndsAnAttempt(t *testing.T) {
	calls := 0
	r := backoff.Retrier{Policy: backoff.Policy{Initial: time.Millisecond, Budget: 50 * time.Millisecond}}
	err := r.Do(t.Context(), func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return errBoom
		}
		<-ctx.Done() // hangs until the budget ends
		return ctx.Err()
	})
	if calls != 2 {
		t.Errorf("fn called %d times, want 2", calls)
	}
	if !errors.Is(err, backoff.ErrExhausted) || !errors.Is(err, errBoom) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want ErrExhausted and boom, not the deadline", err)
	}
	if !strings.HasPrefix(err.Error(), "gave up after 2 attempts in ") {
		t.Errorf("Do = %q", err)
	}
}

func TestNotRetriableIsReturnedAsIs(t *testing.T) {
	errFatal := errors.New("fatal")
	fn, calls := failing(-1, errFatal)
	r := backoff.Retrier{
		Policy:    backoff.Policy{Initial: time.Second, Attempts: 5},
		Clock:     backoff.NewFakeClock(time.Time{}),
		Retriable: func(err error) bool { return !errors.Is(err, errFatal) },
	}
	if err := r.Do(t.Context(), fn); err != errFatal || *calls != 1 {
		t.Errorf("Do = %v after %d calls, want fatal after 1", err, *calls)
	}
}

// TestBudgetsDoNotMultiply: an outer loop does not retry an inner loop that gave up,
// whatever its Retriable says.
func TestBudgetsDoNotMultiply(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	fn, calls := failing(-1, errBoom)
	inner := backoff.Retrier{Policy: backoff.Policy{Initial: time.Second, Attempts: 3}, Clock: clock}
	outer := backoff.Retrier{Policy: backoff.Policy{Initial: time.Second, Attempts: 4}, Clock: clock, Retriable: func(error) bool { return true }}
	outerCalls := 0
	err := outer.Do(t.Context(), func(ctx context.Context) error {
		outerCalls++
		return fmt.Errorf("writing: %w", inner.Do(ctx, fn))
	})
	if outerCalls != 1 || *calls != 3 {
		t.Errorf("outer called %d times and inner %d, want 1 and 3", outerCalls, *calls)
	}
	if got, want := fmt.Sprint(err), "writing: gave up after 3 attempts in 2s: boom"; got != want {
		t.Errorf("Do = %q, want %q", got, want)
	}
	// A Loop does not count it either.
	l := backoff.Policy{Initial: time.Second, Attempts: 10}.Start(clock)
	if d, gaveUp := l.Failed(err); gaveUp != err || d != 0 || l.Attempts() != 0 {
		t.Errorf("Loop.Failed(exhausted) = %v, %v, attempts %d; want the error back at once", d, gaveUp, l.Attempts())
	}
}

// blockedClock never lets a wait end.
type blockedClock struct{ backoff.FakeClock }

func (*blockedClock) After(time.Duration) <-chan time.Time { return nil }

func TestContextEndsTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	fn, calls := failing(-1, errBoom)
	r := backoff.Retrier{
		Policy:  backoff.Policy{Initial: time.Hour, Attempts: 5},
		Clock:   &blockedClock{},
		OnRetry: func(int, time.Duration, error) { cancel() },
	}
	err := r.Do(ctx, fn)
	if *calls != 1 {
		t.Errorf("fn called %d times, want 1", *calls)
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) || errors.Is(err, backoff.ErrExhausted) {
		t.Fatalf("Do = %v, want Canceled and boom, not ErrExhausted", err)
	}
	if got, want := err.Error(), "context canceled after 1 attempt in 0s (last error: boom)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// TestEndedContextStillTriesOnce: a final commit may run with a cancelled context; fn
// decides what that means.
func TestEndedContextStillTriesOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fn, calls := failing(0, errBoom)
	if err := (backoff.Retrier{Policy: backoff.Policy{Attempts: 3}}).Do(ctx, fn); err != nil || *calls != 1 {
		t.Errorf("Do = %v after %d calls, want success after 1", err, *calls)
	}
	fn, calls = failing(-1, errBoom)
	err := backoff.Retrier{Policy: backoff.Policy{Attempts: 3}, Clock: backoff.NewFakeClock(time.Time{})}.Do(ctx, fn)
	if *calls != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
		t.Errorf("Do = %v after %d calls, want Canceled and boom after 1", err, *calls)
	}
}

func TestLoopReset(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	l := backoff.Policy{Initial: 10 * time.Millisecond, Multiplier: 2, Attempts: 3}.Start(clock)
	for range 2 {
		for i, want := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond} {
			d, err := l.Failed(errBoom)
			if err != nil || d != want {
				t.Fatalf("failure %d: Failed = %v, %v; want %v", i+1, d, err, want)
			}
			if err := l.Wait(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
		l.Reset() // progress: start again
		if l.Attempts() != 0 || l.Elapsed() != 0 {
			t.Fatalf("after Reset: %d attempts, %v elapsed", l.Attempts(), l.Elapsed())
		}
	}
	l.Failed(errBoom)
	l.Failed(errBoom)
	if _, err := l.Failed(errBoom); !errors.Is(err, backoff.ErrExhausted) {
		t.Errorf("third failure = %v, want ErrExhausted", err)
	}
}

// TestLoopBudgetWithoutAttempts: a poll bounded by time only gives up at the first
// failure after the budget.
func TestLoopBudgetWithoutAttempts(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	l := backoff.Policy{Initial: 50 * time.Millisecond, Budget: 300 * time.Millisecond}.Start(clock)
	polls := 0
	for {
		polls++
		d, err := l.Failed(errBoom)
		if err != nil {
			if !errors.Is(err, backoff.ErrExhausted) || l.Elapsed() != 300*time.Millisecond {
				t.Fatalf("Failed = %v after %v", err, l.Elapsed())
			}
			break
		}
		if err := l.Wait(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	if polls != 7 {
		t.Errorf("%d polls, want 7 (at 0, 50, ..., 300 ms)", polls)
	}
}

func TestSleep(t *testing.T) {
	clock := backoff.NewFakeClock(time.Time{})
	if err := backoff.Sleep(t.Context(), clock, time.Minute); err != nil || clock.Now() != (time.Time{}).Add(time.Minute) {
		t.Errorf("Sleep = %v, clock at %v", err, clock.Now())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := backoff.Sleep(ctx, clock, time.Minute); !errors.Is(err, context.Canceled) || clock.Waited() != time.Minute {
		t.Errorf("Sleep with an ended context = %v, waited %v; want Canceled without waiting", err, clock.Waited())
	}
	if err := backoff.Sleep(t.Context(), nil, time.Millisecond); err != nil {
		t.Errorf("Sleep on the real clock = %v", err)
	}
}
