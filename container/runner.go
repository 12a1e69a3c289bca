package container

import (
	"context"
	"sync"
	"time"
)

// taskRunner is the shell around one task's core: the goroutine that feeds the core
// the batches of its mailbox, runs its commit and window timers, and passes what the
// task asks of the container to the control loop.
type taskRunner struct {
	core     *taskCore
	box      *mailbox
	commitCh chan struct{} // capacity 1: a commit asked by the control loop
	stop     chan struct{} // closed: return after the current message
	stopOnce sync.Once
	done     chan struct{} // closed when run has returned
	err      error         // what run returned; read after done
	// held are batches of other inputs that came while the task was bootstrapping.
	held []batch
	// own reads the task's broadcast partitions (see broadcast.go); nil without.
	own *ownConsumers
}

// drainHeld processes, once the task has bootstrapped, the batches that waited, in
// the order they came, and resumes their partitions.
func (tr *taskRunner) drainHeld(ctx context.Context, pass func(upcalls, error) error) error {
	t := tr.core
	if len(tr.held) == 0 || len(t.bootstrap) > 0 {
		return nil
	}
	held := tr.held
	tr.held = nil
	for i, b := range held {
		up, err := t.processBatch(ctx, b.envs)
		b.lease.release()
		if err := pass(up, err); err != nil {
			for _, rest := range held[i+1:] {
				rest.lease.release()
			}
			return err
		}
	}
	tr.box.release()
	return nil
}

func newTaskRunner(core *taskCore, bufferedBatches int) *taskRunner {
	return &taskRunner{core: core, box: newMailbox(bufferedBatches), commitCh: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// requestCommit asks the task's goroutine for a commit; a pending request is enough.
func (tr *taskRunner) requestCommit() { signal(tr.commitCh) }

// halt makes the task return after its current message.
func (tr *taskRunner) halt() {
	tr.stopOnce.Do(func() {
		tr.core.halt.Store(true)
		close(tr.stop)
	})
}

// stopped reports whether halt was called.
func (tr *taskRunner) stopped() bool { return tr.core.halt.Load() }

// run runs the task until it is halted or fails; post passes the task's requests to
// the control loop. A commit requested before the halt is still made.
func (tr *taskRunner) run(ctx context.Context, commitEvery, windowEvery time.Duration, post func(string, upcalls)) {
	defer close(tr.done)
	tr.err = tr.loop(ctx, commitEvery, windowEvery, post)
}

func (tr *taskRunner) loop(ctx context.Context, commitEvery, windowEvery time.Duration, post func(string, upcalls)) error {
	t := tr.core
	var commitC, windowC <-chan time.Time
	if commitEvery > 0 {
		tk := time.NewTicker(commitEvery)
		defer tk.Stop()
		commitC = tk.C
	}
	if windowEvery > 0 {
		tk := time.NewTicker(windowEvery)
		defer tk.Stop()
		windowC = tk.C
	}
	pass := func(up upcalls, err error) error {
		if up.any() {
			post(t.name, up)
		}
		return err
	}
	for {
		select {
		case <-tr.stop:
			select {
			case <-tr.commitCh: // a commit requested before the stop is still honoured
				return t.commit(ctx, "requested")
			default:
				return nil
			}
		case <-tr.box.ready:
			if b, ok := tr.box.take(); ok {
				if ssp := b.envs[0].SSP; t.holds(ssp) {
					// Bootstrapping: keep it for later, and stop its partition.
					tr.held = append(tr.held, b)
					tr.box.hold(ssp)
					continue
				}
				up, err := t.processBatch(ctx, b.envs)
				b.lease.release()
				if err := pass(up, err); err != nil {
					return err
				}
				if err := tr.drainHeld(ctx, pass); err != nil {
					return err
				}
			}
		case <-commitC:
			if err := t.commit(ctx, "periodic"); err != nil {
				return err
			}
		case <-tr.commitCh:
			if err := t.commit(ctx, "requested"); err != nil {
				return err
			}
		case <-t.wake: // Commit or Shutdown called outside Process and Window
			if err := pass(t.handleRequests(ctx)); err != nil {
				return err
			}
		case <-windowC:
			if err := pass(t.window(ctx)); err != nil {
				return err
			}
		}
	}
}
