package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-streams/sluice/internal/backoff"
)

func Example() {
	// A write retried 4 times at most, waiting 0.1, 0.4 and 1.6 s in between. The
	// fake clock lets the example run at once; production code leaves Clock nil.
	clock := backoff.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	errDiskFull := errors.New("disk full")
	errJobRunning := errors.New("the job is running")
	r := backoff.Retrier{
		Policy:    backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 4, Attempts: 4},
		Clock:     clock,
		Retriable: func(err error) bool { return !errors.Is(err, errJobRunning) },
		OnRetry: func(attempt int, wait time.Duration, err error) {
			fmt.Printf("attempt %d failed (%v); retrying in %v\n", attempt, err, wait)
		},
	}
	err := r.Do(context.Background(), func(ctx context.Context) error {
		return errDiskFull
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, errDiskFull), errors.Is(err, backoff.ErrExhausted))

	// An outer layer does not retry what an inner layer gave up on.
	calls := 0
	err = r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		return fmt.Errorf("checkpoint: %w", err)
	})
	fmt.Println(calls, "call:", err)
	// Output:
	// attempt 1 failed (disk full); retrying in 100ms
	// attempt 2 failed (disk full); retrying in 400ms
	// attempt 3 failed (disk full); retrying in 1.6s
	// gave up after 4 attempts in 2.1s: disk full
	// true true
	// 1 call: checkpoint: gave up after 4 attempts in 2.1s: disk full
}
