//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package flock_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-streams/sluice/internal/flock"
)

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Two opens of one file conflict as two processes would: the lock belongs to the
// open file, not to the process.
func TestLocksConflictBetweenOpenFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b, c := open(t, path), open(t, path), open(t, path)

	if err := flock.TryExclusive(a); err != nil {
		t.Fatal(err)
	}
	if err := flock.TryExclusive(b); !errors.Is(err, flock.ErrLocked) {
		t.Fatalf("second exclusive lock = %v, want ErrLocked", err)
	}
	if err := flock.TryShared(b); !errors.Is(err, flock.ErrLocked) {
		t.Fatalf("shared lock under an exclusive one = %v, want ErrLocked", err)
	}
	if err := flock.Unlock(a); err != nil {
		t.Fatal(err)
	}

	if err := flock.TryShared(a); err != nil {
		t.Fatal(err)
	}
	if err := flock.TryShared(b); err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	if err := flock.TryExclusive(c); !errors.Is(err, flock.ErrLocked) {
		t.Fatalf("exclusive lock under shared ones = %v, want ErrLocked", err)
	}
	// Closing releases the lock: once both shared holders are gone, c gets it.
	a.Close()
	b.Close()
	if err := flock.TryExclusive(c); err != nil {
		t.Fatalf("exclusive lock after the holders closed: %v", err)
	}
}

func TestClosedFileIsAnError(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "lock"))
	f.Close()
	err := flock.TryExclusive(f)
	if err == nil || errors.Is(err, flock.ErrLocked) {
		t.Fatalf("lock on a closed file = %v, want an error other than ErrLocked", err)
	}
}
