//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filesystem_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
)

// TestLockForRewrite checks the checkpoint tool's side of the run lock: it holds the
// lock exclusively, so no container starts (and no other tool writes) until it is
// released, and it is refused while a container runs.
func TestLockForRewrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new") // the lock creates the directory
	tool := newManager(t, dir)
	w, err := tool.LockForRewrite(t.Context())
	if err != nil {
		t.Fatalf("LockForRewrite with no container: %v", err)
	}

	_, err = newManager(t, dir).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
	if !errors.Is(err, checkpoint.ErrRewriting) || !strings.Contains(err.Error(), tool.LockPath()) {
		t.Fatalf("AcquireRunLock while the tool writes = %v, want ErrRewriting naming %s", err, tool.LockPath())
	}
	if _, err := newManager(t, dir).LockForRewrite(t.Context()); !errors.Is(err, checkpoint.ErrRewriting) || errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("a second LockForRewrite = %v, want ErrRewriting only", err)
	}
	if err := newManager(t, dir).CheckNotRunning(); !errors.Is(err, checkpoint.ErrRewriting) {
		t.Fatalf("CheckNotRunning while the tool writes = %v, want ErrRewriting", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := newManager(t, dir).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 2})
	if err != nil {
		t.Fatalf("AcquireRunLock after the tool is done: %v", err)
	}
	_, err = tool.LockForRewrite(t.Context())
	if !errors.Is(err, checkpoint.ErrJobRunning) || errors.Is(err, checkpoint.ErrRewriting) {
		t.Fatalf("LockForRewrite while a container runs = %v, want ErrJobRunning only", err)
	}
	// The refused attempt holds nothing: another container still starts.
	l2, err := newManager(t, dir).AcquireRunLock(t.Context(), checkpoint.Container{ID: 1, Count: 2})
	if err != nil {
		t.Fatalf("second container after a refused rewrite: %v", err)
	}
	l2.Close()
	l.Close()
	w, err = tool.LockForRewrite(t.Context())
	if err != nil {
		t.Fatalf("LockForRewrite after the containers stopped: %v", err)
	}
	w.Close()
}
