//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
)

// AcquireRunLock marks the job as running until the returned Closer is closed: it
// takes a shared lock on LockPath (creating the directory and the file if needed).
// Every container of the job holds one, so containers do not exclude each other, but
// CheckNotRunning and LockForRewrite see them. The lock is released when the process
// exits, however it exits. It fails, with an error wrapping checkpoint.ErrRewriting,
// while the checkpoint tool holds the lock exclusively (LockForRewrite).
//
// Before it takes the lock, it finishes a rewrite that was interrupted since Start
// (see WriteAll) when no other process holds the lock. A lock held exclusively for
// such a recovery by another starting container is waited for, briefly.
func (m *Manager) AcquireRunLock() (io.Closer, error) {
	if b, _ := readIfExists(m.IntentPath()); b != nil {
		if _, err := m.withExclusive(m.recoverLocked); err != nil {
			return nil, err
		}
	}
	f, err := m.openLock()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(recoveryWait)
	for {
		err = flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("filesystem checkpoints: run lock %s is held exclusively: start the container again once the tool is done: %w", f.Name(), checkpoint.ErrRewriting)
		}
		return nil, fmt.Errorf("filesystem checkpoints: run lock %s: %w", f.Name(), err)
	}
	return &runLock{f: f}, nil
}

// LockForRewrite takes an exclusive lock on LockPath (creating the directory and the
// file if needed) and holds it until the returned Closer is closed; once it has it,
// it finishes an interrupted rewrite and removes leftover temporary files (see
// WriteAll). While it is held,
// AcquireRunLock fails, so no container of the job can start. It fails without
// waiting, with an error wrapping checkpoint.ErrJobRunning, while a container holds its
// run lock, and with one wrapping checkpoint.ErrRewriting while another LockForRewrite
// holds the lock. The lock is released when the process exits, however it exits.
func (m *Manager) LockForRewrite(ctx context.Context) (io.Closer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := m.openLock()
	if err != nil {
		return nil, err
	}
	if err := m.exclusive(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := m.recoverLocked(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &runLock{f: f}, nil
}

// recoveryWait bounds how long AcquireRunLock waits for a lock held exclusively,
// which another starting container may hold for a moment to finish an interrupted
// rewrite (the checkpoint tool holds it much longer).
const recoveryWait = 2 * time.Second

// withExclusive runs fn while holding the job's lock exclusively, if no other process
// holds it; held says whether it did.
func (m *Manager) withExclusive(fn func() error) (held bool, err error) {
	f, err := m.openLock()
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("filesystem checkpoints: run lock %s: %w", f.Name(), err)
	}
	return true, fn()
}

// CheckNotRunning returns an error wrapping checkpoint.ErrJobRunning if a container of
// the job holds the run lock (see AcquireRunLock), one wrapping checkpoint.ErrRewriting
// if the checkpoint tool holds it (see LockForRewrite), and nil if nobody does. It
// holds the lock only for the check.
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
	if err := m.exclusive(f); err != nil {
		return err
	}
	if err := flock(f, syscall.LOCK_UN); err != nil {
		return fmt.Errorf("filesystem checkpoints: run lock %s: %w", path, err)
	}
	return nil
}

// openLock opens LockPath, creating the directory and the file if needed.
func (m *Manager) openLock() (*os.File, error) {
	if err := os.MkdirAll(m.dir, dirPerm); err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: create directory %s: %w", m.dir, err)
	}
	f, err := os.OpenFile(m.LockPath(), os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: run lock: %w", err)
	}
	return f, nil
}

// exclusive takes an exclusive lock on f without waiting. When another process holds
// the lock, it says who: containers hold it shared, the checkpoint tool exclusively.
func (m *Manager) exclusive(f *os.File) error {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("filesystem checkpoints: run lock %s: %w", f.Name(), err)
	}
	// A shared lock is refused only while the lock is held exclusively.
	if serr := flock(f, syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(serr, syscall.EWOULDBLOCK) {
		return fmt.Errorf("another checkpoint tool holds run lock %s of job %q id %q exclusively: %w", f.Name(), m.job, m.id, checkpoint.ErrRewriting)
	} else if serr == nil {
		_ = flock(f, syscall.LOCK_UN)
	}
	return fmt.Errorf("job %q id %q holds run lock %s: %w", m.job, m.id, f.Name(), checkpoint.ErrJobRunning)
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
