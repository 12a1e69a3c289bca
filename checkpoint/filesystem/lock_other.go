//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// AcquireRunLock is not supported on this platform.
func (m *Manager) AcquireRunLock() (io.Closer, error) {
	return nil, fmt.Errorf("filesystem checkpoints: run lock: %w", errors.ErrUnsupported)
}

// CheckNotRunning is not supported on this platform.
func (m *Manager) CheckNotRunning() error {
	return fmt.Errorf("filesystem checkpoints: run lock: %w", errors.ErrUnsupported)
}

// LockForRewrite is not supported on this platform.
func (m *Manager) LockForRewrite(context.Context) (io.Closer, error) {
	return nil, fmt.Errorf("filesystem checkpoints: run lock: %w", errors.ErrUnsupported)
}

// withExclusive does nothing on this platform: without locks, nobody can tell who is
// writing.
func (m *Manager) withExclusive(func() error) (bool, error) { return false, nil }
