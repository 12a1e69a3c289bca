package filesystem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/flock"
)

// Run locks.
//
// The job's lock, LockPath, is held shared by every running container and exclusively
// by the checkpoint tool while it rewrites (LockForRewrite), so that neither runs
// under the other. Each running container also holds its own lock file,
// ContainerLockPath, exclusively, with its PID, host and start time written in it, so
// that a second process with the same --container-id is refused and told who runs
// the container. Locks are flock(2) locks (internal/flock): the kernel releases them
// when their process exits, however it exits, so a container killed with SIGKILL can
// be started again at once. Without flock (on Windows, for one) every lock fails with
// an error saying so: this manager cannot keep two containers from running at once
// there.

// AcquireRunLock marks container c of the job as running until the returned lock is
// closed: it takes a shared lock on LockPath, then an exclusive one on
// ContainerLockPath(c.ID) (creating the directory and the files if needed), and
// writes this process's PID, host and start time into the latter. The locks are
// released when the process exits, however it exits. It fails with an error wrapping
// checkpoint.ErrContainerRunning, naming the process, while another process holds
// the same container's lock, and with one wrapping checkpoint.ErrRewriting while the
// checkpoint tool holds the job's lock exclusively (LockForRewrite). It does not need
// Start. The lock is never lost while held: its Lost channel is nil.
//
// Before it takes the lock, it finishes a rewrite that was interrupted since Start
// (see WriteAll) when no other process holds the lock. A lock held exclusively for
// such a recovery by another starting container is waited for, briefly.
func (m *Manager) AcquireRunLock(ctx context.Context, c checkpoint.Container) (checkpoint.RunLock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if b, _ := readIfExists(m.IntentPath()); b != nil {
		if _, err := m.withExclusive(m.recoverLocked); err != nil {
			return nil, err
		}
	}
	job, err := m.openLock(m.LockPath())
	if err != nil {
		return nil, err
	}
	// A lock held exclusively for a moment is another container's recovery.
	err = retryLocked(recoveryWait, func() error { return flock.TryShared(job) })
	if err != nil {
		_ = job.Close()
		if errors.Is(err, flock.ErrLocked) {
			return nil, fmt.Errorf("filesystem checkpoints: run lock %s is held exclusively: start the container again once the tool is done: %w", job.Name(), checkpoint.ErrRewriting)
		}
		return nil, m.lockErr(job.Name(), err)
	}
	if c.Dynamic {
		return &runLock{m: m, c: c, files: []*os.File{job}}, nil
	}
	own, err := m.openLock(m.ContainerLockPath(c.ID))
	if err != nil {
		_ = job.Close()
		return nil, err
	}
	// A lock held for a moment is a peer looking whether this container runs (Peers).
	if err := retryLocked(peekWait, func() error { return flock.TryExclusive(own) }); err != nil {
		_ = job.Close()
		_ = own.Close()
		if errors.Is(err, flock.ErrLocked) {
			return nil, fmt.Errorf("filesystem checkpoints: container %d of job %q (id %s) is already running: %s (it holds %s); stop it first, or give this one another --container-id: %w",
				c.ID, m.job, m.id, holderOf(own.Name()), own.Name(), checkpoint.ErrContainerRunning)
		}
		return nil, m.lockErr(own.Name(), err)
	}
	// Who holds the lock, for whoever is refused it. The file is only read while it
	// is locked, so it needs no atomic replace.
	b, _ := json.Marshal(checkpoint.ThisProcess())
	if err := own.Truncate(0); err == nil {
		_, _ = own.WriteAt(append(b, '\n'), 0)
	}
	return &runLock{m: m, c: c, files: []*os.File{own, job}}, nil
}

// holderOf describes the process that wrote the container lock file at path.
func holderOf(path string) string {
	b, err := os.ReadFile(path)
	var p checkpoint.Process
	if err != nil || json.Unmarshal(b, &p) != nil || p.PID == 0 {
		return "another process"
	}
	return p.String()
}

// LockForRewrite takes an exclusive lock on LockPath (creating the directory and the
// file if needed) and holds it until the returned Closer is closed; once it has it,
// it finishes an interrupted rewrite and removes leftover temporary files (see
// WriteAll). While it is held, AcquireRunLock fails, so no container of the job can
// start. It fails without waiting, with an error wrapping checkpoint.ErrJobRunning,
// while a container holds its run lock, and with one wrapping checkpoint.ErrRewriting
// while another LockForRewrite holds the lock. The lock is released when the process
// exits, however it exits.
func (m *Manager) LockForRewrite(ctx context.Context) (io.Closer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := m.openLock(m.LockPath())
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
	return &runLock{m: m, files: []*os.File{f}}, nil
}

const (
	// recoveryWait bounds how long AcquireRunLock waits for the job's lock held
	// exclusively, which another starting container may hold for a moment to finish
	// an interrupted rewrite (the checkpoint tool holds it much longer).
	recoveryWait = 2 * time.Second
	// peekWait bounds how long AcquireRunLock waits for a container's lock, which a
	// peer's Peers holds for an instant (a running container holds it for good).
	peekWait = 200 * time.Millisecond
)

// retryLocked calls try until it returns anything but flock.ErrLocked, or until wait
// has passed.
func retryLocked(wait time.Duration, try func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := try()
		if !errors.Is(err, flock.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// withExclusive runs fn while holding the job's lock exclusively, if no other process
// holds it; held says whether it did. Without flock, nobody can tell who is writing:
// it does not run fn.
func (m *Manager) withExclusive(fn func() error) (held bool, err error) {
	f, err := m.openLock(m.LockPath())
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flock.TryExclusive(f); {
	case errors.Is(err, flock.ErrLocked), errors.Is(err, errors.ErrUnsupported):
		return false, nil
	case err != nil:
		return false, m.lockErr(f.Name(), err)
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
	if err := flock.Unlock(f); err != nil {
		return m.lockErr(path, err)
	}
	return nil
}

// ContainerLockPath returns the file whose lock marks container id of the job as
// running (see AcquireRunLock): <dir>/<esc(job)>-<esc(id)>-container-<id>.lock. No
// checkpoint file has that name: their names end in .checkpoint.
func (m *Manager) ContainerLockPath(id int) string {
	return filepath.Join(m.dir, m.prefix+"container-"+strconv.Itoa(id)+lockExt)
}

// openLock opens a lock file, creating the directory and the file if needed.
func (m *Manager) openLock(path string) (*os.File, error) {
	if err := os.MkdirAll(m.dir, dirPerm); err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: create directory %s: %w", m.dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: run lock: %w", err)
	}
	return f, nil
}

// lockErr reports a lock that could not be taken for another reason than another
// holder; without flock, it says what that means.
func (m *Manager) lockErr(path string, err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("filesystem checkpoints: run lock %s: %w; without file locks this manager cannot keep two containers of job %q from running at once, nor the checkpoint tool from rewriting under a running job: use the kafka checkpoint manager on this system",
			path, err, m.job)
	}
	return fmt.Errorf("filesystem checkpoints: run lock %s: %w", path, err)
}

// exclusive takes an exclusive lock on f without waiting. When another process holds
// the lock, it says who: containers hold it shared, the checkpoint tool exclusively.
func (m *Manager) exclusive(f *os.File) error {
	err := flock.TryExclusive(f)
	if err == nil {
		return nil
	}
	if !errors.Is(err, flock.ErrLocked) {
		return m.lockErr(f.Name(), err)
	}
	// A shared lock is refused only while the lock is held exclusively.
	if serr := flock.TryShared(f); errors.Is(serr, flock.ErrLocked) {
		return fmt.Errorf("another checkpoint tool holds run lock %s of job %q id %q exclusively: %w", f.Name(), m.job, m.id, checkpoint.ErrRewriting)
	} else if serr == nil {
		_ = flock.Unlock(f)
	}
	return fmt.Errorf("job %q id %q holds run lock %s: %w", m.job, m.id, f.Name(), checkpoint.ErrJobRunning)
}

// runLock holds lock files until closed: a container's own and the job's, or the
// job's alone for a rewrite.
type runLock struct {
	m     *Manager
	c     checkpoint.Container
	files []*os.File
	once  sync.Once
	err   error
}

// Lost returns nil: a flock is held until it is released.
func (l *runLock) Lost() <-chan struct{} { return nil }

// Err returns nil: the lock is never lost.
func (l *runLock) Err() error { return nil }

// Peers returns the containers of the job, among 0..Count-1, whose lock file is
// locked: this one, and each other one whose lock it cannot take shared for an
// instant (a starting peer that meets that instant tries again, see peekWait).
func (l *runLock) Peers(ctx context.Context) ([]int, error) {
	return l.m.lockedContainers(ctx, l.c.Count, l.c.ID)
}

// Close releases the locks. Closing twice is harmless.
func (l *runLock) Close() error {
	l.once.Do(func() {
		for _, f := range l.files {
			if err := f.Close(); err != nil && l.err == nil {
				l.err = fmt.Errorf("filesystem checkpoints: release run lock %s: %w", f.Name(), err)
			}
		}
	})
	return l.err
}
