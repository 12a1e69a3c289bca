//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filesystem

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/sluice-streams/sluice/checkpoint"
)

// AcquireRunLock marks the job as running until the returned Closer is closed: it
// takes a shared lock on LockPath (creating the directory and the file if needed).
// Every container of the job holds one, so containers do not exclude each other, but
// CheckNotRunning sees them. The lock is released when the process exits, however it
// exits. It fails if CheckNotRunning holds the lock at that moment.
func (m *Manager) AcquireRunLock() (io.Closer, error) {
	path := m.LockPath()
	if err := os.MkdirAll(m.dir, dirPerm); err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: create directory %s: %w", m.dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: run lock: %w", err)
	}
	if err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("filesystem checkpoints: run lock %s is held exclusively (is the checkpoint tool running?); retry", path)
		}
		return nil, fmt.Errorf("filesystem checkpoints: run lock %s: %w", path, err)
	}
	return &runLock{f: f}, nil
}

// CheckNotRunning returns an error wrapping checkpoint.ErrJobRunning if a container of
// the job holds the run lock (see AcquireRunLock), and nil if none does. It holds the
// lock only for the check.
func (m *Manager) CheckNotRunning() error {
	path := m.LockPath()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no container of this job ever ran here
	}
	if err != nil {
		return fmt.Errorf("filesystem checkpoints: run lock: %w", err)
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("job %q id %q holds run lock %s: %w", m.job, m.id, path, checkpoint.ErrJobRunning)
		}
		return fmt.Errorf("filesystem checkpoints: run lock %s: %w", path, err)
	}
	if err := flock(f, syscall.LOCK_UN); err != nil {
		return fmt.Errorf("filesystem checkpoints: run lock %s: %w", path, err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lockErr = syscall.Flock(int(fd), how)
			if !errors.Is(lockErr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lockErr
}

type runLock struct {
	once sync.Once
	f    *os.File
	err  error
}

// Close releases the lock. Closing twice is harmless.
func (l *runLock) Close() error {
	l.once.Do(func() {
		if err := l.f.Close(); err != nil {
			l.err = fmt.Errorf("filesystem checkpoints: release run lock %s: %w", l.f.Name(), err)
		}
	})
	return l.err
}
