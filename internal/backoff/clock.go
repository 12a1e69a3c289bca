package backoff

import (
	"sync"
	"time"
)

// Clock tells the time and waits. Retry loops take one so that tests can replace the
// real clock with a FakeClock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the system's clock: time.Now and time.After.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// FakeClock is a Clock for tests that never sleeps: each After moves the clock forward
// by its duration at once and returns a channel that is ready, so a retry loop runs
// through its waits immediately while Now, and so the budget, sees them pass. It
// records every wait. The waits of concurrent loops add up on the one clock, and a
// loop bounded by its context only (no attempts, no budget) spins until the context
// ends. The zero FakeClock starts at the zero time; it is safe for concurrent use.
type FakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

// NewFakeClock returns a FakeClock that starts at start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After records d, moves the clock forward by d (when positive) and returns a channel
// holding the new time.
func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// Advance moves the clock forward by d, as if an operation took that long.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Waits returns the durations passed to After so far, in order.
func (c *FakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// Waited returns the sum of Waits.
func (c *FakeClock) Waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, d := range c.waits {
		sum += d
	}
	return sum
}
