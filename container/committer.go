package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
)

// committer is the commit algorithm of a task, the seam between today's at-least-once
// order and a transactional one: it makes the messages a task sent durable and then
// stores the task's checkpoint.
type committer interface {
	// checkpoints reports whether the job stores checkpoints at all.
	checkpoints() bool
	// commit makes every message sent through producers durable (dirty says whether
	// any was sent since the last commit) and then, when write is set, stores offsets
	// as task's checkpoint. An error means the outputs may not be durable or the
	// checkpoint may not be stored; the task is never committed again.
	commit(ctx context.Context, task string, producers map[string]system.Producer, dirty bool, offsets map[system.SystemStreamPartition]string, write bool) error
}

// atLeastOnce commits in Samza's order: flush every producer the task wrote to and
// wait for the acknowledgements, then write the checkpoint. A crash between the two
// leaves outputs without a checkpoint covering them: they are sent again after the
// restart (duplicates, never loss).
type atLeastOnce struct {
	cpm   checkpoint.Manager // nil: no checkpoints
	log   *slog.Logger
	clock Clock // of the write's retries; nil: the real clock
}

// checkpointWriteRetry is how the container retries a checkpoint write that failed: 4
// attempts, waiting 0.1, 0.4 and 1.6 s in between (2.1 s in all). A manager that
// retries on its own (Kafka, for task.checkpoint.write.timeout.ms) says it has with
// checkpoint.ErrRetriesExhausted (Sluice's own managers with backoff.ErrExhausted
// too), and its write is not retried again: the budgets do not multiply.
var checkpointWriteRetry = backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 4, Attempts: 4}

func (a atLeastOnce) checkpoints() bool { return a.cpm != nil }

func (a atLeastOnce) commit(ctx context.Context, task string, producers map[string]system.Producer, dirty bool, offsets map[system.SystemStreamPartition]string, write bool) error {
	if dirty {
		for _, sys := range slices.Sorted(maps.Keys(producers)) {
			if err := producers[sys].Flush(ctx); err != nil {
				return fmt.Errorf("flush of outputs to system %s failed, so no checkpoint was written: %w", sys, err)
			}
		}
	}
	if !write {
		return nil
	}
	return a.write(ctx, task, offsets)
}

// write stores the checkpoint, retrying under checkpointWriteRetry unless the manager
// has retried it already (checkpoint.ErrRetriesExhausted) or the job is running
// elsewhere (checkpoint.ErrJobRunning).
func (a atLeastOnce) write(ctx context.Context, task string, offsets map[system.SystemStreamPartition]string) error {
	r := backoff.Retrier{
		Policy: checkpointWriteRetry,
		Clock:  a.clock,
		Retriable: func(err error) bool {
			return !errors.Is(err, checkpoint.ErrJobRunning) && !errors.Is(err, checkpoint.ErrRetriesExhausted)
		},
		OnRetry: func(attempt int, wait time.Duration, err error) {
			a.log.Warn("checkpoint write failed; retrying", "task", task, "attempt", attempt, "of", checkpointWriteRetry.Attempts, "retry_in", wait, "error", err)
		},
	}
	err := r.Do(ctx, func(ctx context.Context) error {
		return a.cpm.Write(ctx, task, checkpoint.Checkpoint{Offsets: offsets})
	})
	if err != nil {
		return fmt.Errorf("checkpoint write failed: %w", err)
	}
	return nil
}

// errTransactionAborted marks a commit of an exactly-once task whose transaction was
// aborted: nothing of it is visible, and the task is restarted from its last
// committed checkpoint.
var errTransactionAborted = errors.New("transaction aborted")

// exactlyOnce commits a task's outputs and its checkpoint in one transaction (see
// checkpoint.TaskTransaction): its producer of the checkpoint topic's system sys.
type exactlyOnce struct{ sys string }

func (exactlyOnce) checkpoints() bool { return true }

func (e exactlyOnce) commit(ctx context.Context, task string, producers map[string]system.Producer, dirty bool, offsets map[system.SystemStreamPartition]string, write bool) error {
	if !dirty && !write {
		return nil
	}
	tx, ok := producers[e.sys].(checkpoint.TaskTransaction)
	if !ok {
		return fmt.Errorf("exactly-once: task %s has no transaction", task)
	}
	if err := tx.Commit(ctx, checkpoint.Checkpoint{Offsets: offsets}); err != nil {
		if errors.Is(err, checkpoint.ErrFenced) {
			return err
		}
		return fmt.Errorf("%w: %w", errTransactionAborted, err)
	}
	return nil
}
