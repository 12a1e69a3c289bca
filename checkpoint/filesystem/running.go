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
	var live []int
	for id := range count {
		if err := ctx.Err(); err != nil {
			return nil, err
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
