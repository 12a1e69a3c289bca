//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package flock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// TryExclusive takes an exclusive lock on f: no other open file may hold any lock
// on it. It returns ErrLocked if one does.
func TryExclusive(f *os.File) error { return flock(f, syscall.LOCK_EX|syscall.LOCK_NB) }

// TryShared takes a shared lock on f: other open files may hold shared locks too,
// but none an exclusive one. It returns ErrLocked if one does.
func TryShared(f *os.File) error { return flock(f, syscall.LOCK_SH|syscall.LOCK_NB) }

// Unlock releases f's lock, if it holds one. Closing f releases it too.
func Unlock(f *os.File) error { return flock(f, syscall.LOCK_UN) }

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("flock %s: %w", f.Name(), err)
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
		return fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	switch {
	case errors.Is(lockErr, syscall.EWOULDBLOCK):
		return ErrLocked
	case lockErr != nil:
		return fmt.Errorf("flock %s: %w", f.Name(), lockErr)
	}
	return nil
}
