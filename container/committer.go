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
	cpm checkpoint.Manager // nil: no checkpoints
	log *slog.Logger
}

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

// write stores the checkpoint, trying up to 4 times with backoff (0.1, 0.4, 1.6 s)
// unless the manager has already retried it itself (checkpoint.ErrRetriesExhausted).
func (a atLeastOnce) write(ctx context.Context, task string, offsets map[system.SystemStreamPartition]string) error {
	const attempts = 4
	backoff := 100 * time.Millisecond
	var err error
	for i := 1; ; i++ {
		err = a.cpm.Write(ctx, task, checkpoint.Checkpoint{Offsets: offsets})
		if err == nil || i == attempts || errors.Is(err, checkpoint.ErrJobRunning) || errors.Is(err, checkpoint.ErrRetriesExhausted) {
			break
		}
		a.log.Warn("checkpoint write failed; retrying", "task", task, "attempt", i, "of", attempts, "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff *= 4
	}
	if err != nil {
		return fmt.Errorf("checkpoint write failed: %w", err)
	}
	return nil
}
