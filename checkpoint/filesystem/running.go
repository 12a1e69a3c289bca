package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sluice-streams/sluice/internal/flock"
)

// RunningContainers returns, in order, the ids among 0..count-1 of the job's
// containers whose run lock is held now, for `sluice status`.
func (m *Manager) RunningContainers(ctx context.Context, count int) ([]int, error) {
	return m.lockedContainers(ctx, count, -1)
}

// lockedContainers returns, in order, the ids among 0..count-1 whose lock file is
// locked: self (unless -1), and each other one whose lock cannot be taken shared for
// an instant.
func (m *Manager) lockedContainers(ctx context.Context, count, self int) ([]int, error) {
	var live []int
	for id := range count {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if id == self {
			live = append(live, id)
			continue
		}
		f, err := os.Open(m.ContainerLockPath(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // never ran here
		}
		if err != nil {
			return nil, fmt.Errorf("filesystem checkpoints: run lock of container %d: %w", id, err)
		}
		err = flock.TryShared(f)
		f.Close() // releases the lock, if taken
		switch {
		case errors.Is(err, flock.ErrLocked):
			live = append(live, id)
		case err != nil:
			return nil, m.lockErr(f.Name(), err)
		}
	}
	return live, nil
}
