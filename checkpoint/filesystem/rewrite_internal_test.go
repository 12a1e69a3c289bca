//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filesystem

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/atomicfile"
	"github.com/sluice-streams/sluice/internal/flock"
	"github.com/sluice-streams/sluice/system"
)

var rwTasks = []string{"Partition 0", "Partition 1", "Partition 2", "Partition 3"}

func rwSSP(p int) system.SystemStreamPartition { return system.NewSSP("kafka", "in", int32(p)) }

// rwManager returns a started manager over dir that logs to log.
func rwManager(t *testing.T, dir string, log *bytes.Buffer) *Manager {
	t.Helper()
	var opts []Option
	if log != nil {
		opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: log}, nil))))
	}
	m, err := New(dir, "page-views", "1", opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// oldAndNew writes the old checkpoints (tasks 0..2 hold offset 1, task 3 has none)
// and returns the rewrite to offset 100+p for every task.
func oldAndNew(t *testing.T, m *Manager) []checkpoint.TaskCheckpoint {
	t.Helper()
	var cps []checkpoint.TaskCheckpoint
	for p, task := range rwTasks {
		if p < 3 {
			if err := m.Write(t.Context(), task, checkpoint.New(map[system.SystemStreamPartition]string{rwSSP(p): "1"})); err != nil {
				t.Fatal(err)
			}
		}
		cps = append(cps, checkpoint.TaskCheckpoint{Task: task, Checkpoint: checkpoint.New(map[system.SystemStreamPartition]string{rwSSP(p): fmt.Sprint(100 + p)})})
	}
	return cps
}

// state describes what a manager over dir reads for every task: "old", "new" or
// "mixed" (with the details).
func state(t *testing.T, m *Manager) string {
	t.Helper()
	var old, nw int
	var b strings.Builder
	for p, task := range rwTasks {
		cp, err := m.Read(t.Context(), task)
		switch {
		case errors.Is(err, checkpoint.ErrNoCheckpoint) && p == 3:
			old++
		case err != nil:
			fmt.Fprintf(&b, " %s: %v", task, err)
		case cp.Offsets[rwSSP(p)] == "1" && p < 3:
			old++
		case cp.Offsets[rwSSP(p)] == fmt.Sprint(100+p):
			nw++
		default:
			fmt.Fprintf(&b, " %s: %v", task, cp.Offsets)
		}
		fmt.Fprintf(&b, " %s=%v", task, cp.Offsets[rwSSP(p)])
	}
	switch {
	case old == len(rwTasks):
		return "old"
	case nw == len(rwTasks):
		return "new"
	}
	return "mixed:" + b.String()
}

// copyDir copies the regular files of dir into a new directory.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// crashPoints runs a WriteAll of the rewrite from oldAndNew and copies the directory
// before every file write it makes: each copy is what a process killed then leaves.
func crashPoints(t *testing.T) (snapshots []string, intent string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cp")
	m := rwManager(t, dir, nil)
	cps := oldAndNew(t, m)
	m.writeFile = func(path string, data []byte, perm os.FileMode) error {
		snapshots = append(snapshots, copyDir(t, dir))
		return atomicfile.WriteFile(path, data, perm)
	}
	if err := m.WriteAll(t.Context(), cps, nil); err != nil {
		t.Fatal(err)
	}
	snapshots = append(snapshots, copyDir(t, dir))
	if state(t, m) != "new" {
		t.Fatalf("after WriteAll: %s", state(t, m))
	}
	if len(snapshots) != len(rwTasks)+2 {
		t.Fatalf("%d snapshots, want one before the intent, one before each task file and one after", len(snapshots))
	}
	return snapshots, m.intentName()
}

// TestWriteAllKilledAnywhere checks the state a manager started after a crash at every
// step of WriteAll sees: all old before the intent is written, all new from then on,
// with the intent removed and the recovery logged.
func TestWriteAllKilledAnywhere(t *testing.T) {
	snapshots, intentName := crashPoints(t)
	for i, dir := range snapshots {
		_, err := os.Stat(filepath.Join(dir, intentName))
		hasIntent := err == nil
		var raw string
		if hasIntent {
			// What the files say before any recovery: part written.
			m := &Manager{dir: dir, job: "page-views", id: "1", prefix: "page%2Dviews-1-", logger: slog.New(slog.DiscardHandler), writeFile: atomicfile.WriteFile}
			m.state.Store(stateStarted)
			raw = state(t, m)
		}
		var log bytes.Buffer
		m := rwManager(t, dir, &log)
		got := state(t, m)
		want := "new"
		if i == 0 {
			want = "old"
		}
		if got != want {
			t.Errorf("killed before write %d (intent written: %v, files then: %s): a new manager reads %s, want %s", i, hasIntent, raw, got, want)
		}
		if _, err := os.Stat(filepath.Join(dir, intentName)); err == nil {
			t.Errorf("killed before write %d: the intent is still there after Start", i)
		}
		if logged := strings.Contains(log.String(), "finished an interrupted checkpoint rewrite"); logged != hasIntent {
			t.Errorf("killed before write %d: recovery logged %v, want %v:\n%s", i, logged, hasIntent, log.String())
		}
		if hasIntent && i >= 2 && !strings.HasPrefix(raw, "mixed") {
			t.Errorf("killed before write %d: the files were not part written (%s): the test kills too late", i, raw)
		}
	}
}

// TestRollForwardKeepsNewerCheckpoints: a task whose checkpoint was written after the
// interrupted rewrite began (by a container) keeps it.
func TestRollForwardKeepsNewerCheckpoints(t *testing.T) {
	snapshots, _ := crashPoints(t)
	dir := snapshots[2] // intent and task 0 written
	m0 := &Manager{dir: dir, job: "page-views", id: "1", prefix: "page%2Dviews-1-", logger: slog.New(slog.DiscardHandler), writeFile: atomicfile.WriteFile}
	m0.state.Store(stateStarted)
	newer := checkpoint.New(map[system.SystemStreamPartition]string{rwSSP(2): "7"})
	if err := m0.Write(t.Context(), "Partition 2", newer); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	m := rwManager(t, dir, &log)
	for p, task := range rwTasks {
		cp, err := m.Read(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint(100 + p)
		if p == 2 {
			want = "7"
		}
		if cp.Offsets[rwSSP(p)] != want {
			t.Errorf("%s = %v, want %s", task, cp.Offsets, want)
		}
	}
	if !strings.Contains(log.String(), `kept_newer="[Partition 2]"`) {
		t.Errorf("the kept task is not logged:\n%s", log.String())
	}
}

// holdShared holds the job's lock shared, as a running container does, until the
// test ends or release is called.
func holdShared(t *testing.T, m *Manager) (release func()) {
	t.Helper()
	f, err := m.openLock(m.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := flock.TryShared(f); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// TestNoRecoveryWhileLocked: while another process holds the job's lock (a container
// runs, or a tool writes), Start leaves an intent and temporary files alone, and says
// so; LockForRewrite and AcquireRunLock finish the rewrite once the lock is free.
func TestNoRecoveryWhileLocked(t *testing.T) {
	snapshots, intentName := crashPoints(t)
	for _, how := range []string{"LockForRewrite", "AcquireRunLock", "Start"} {
		t.Run(how, func(t *testing.T) {
			dir := copyDir(t, snapshots[2])
			tmp := filepath.Join(dir, ".tmp-page%2Dviews-1-Partition%200.checkpoint-123")
			if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
				t.Fatal(err)
			}
			probe := &Manager{dir: dir, job: "page-views", id: "1", prefix: "page%2Dviews-1-"}
			release := holdShared(t, probe)
			var log bytes.Buffer
			m := rwManager(t, dir, &log)
			if _, err := os.Stat(filepath.Join(dir, intentName)); err != nil {
				t.Fatalf("Start while the lock is held removed the intent: %v", err)
			}
			if _, err := os.Stat(tmp); err != nil {
				t.Fatalf("Start while the lock is held removed a temporary file: %v", err)
			}
			if !strings.Contains(log.String(), "another process holds the job's lock") {
				t.Errorf("Start does not say that a rewrite is pending:\n%s", log.String())
			}
			release()
			switch how {
			case "LockForRewrite":
				l, err := m.LockForRewrite(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			case "AcquireRunLock":
				l, err := m.AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			case "Start":
				m = rwManager(t, dir, &log)
			}
			if got := state(t, m); got != "new" {
				t.Errorf("after %s: %s, want new", how, got)
			}
			if _, err := os.Stat(tmp); how != "AcquireRunLock" && err == nil {
				t.Errorf("after %s: the leftover temporary file is still there", how)
			}
		})
	}
}

// TestStartRemovesOnlyOwnTemporaryFiles: Start removes the job's leftover temporary
// files, and no other job's.
func TestStartRemovesOnlyOwnTemporaryFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	m := rwManager(t, dir, nil)
	if err := m.Write(t.Context(), "Partition 0", checkpoint.New(nil)); err != nil {
		t.Fatal(err)
	}
	long := &Manager{prefix: strings.Repeat("j", 70) + "-1-"} // a job whose names atomicfile cuts
	ours := []string{
		".tmp-page%2Dviews-1-Partition%200.checkpoint-123",
		".tmp-page%2Dviews-1-Partition%2010.checkpoint-4567",
		".tmp-page%2Dviews-1.rewrite-99",
		".tmp-" + ("page%2Dviews-1-" + strings.Repeat("x", 64))[:64] + "-1",
	}
	theirs := []string{
		".tmp-page%2Dviews-2-Partition%200.checkpoint-123", // job id 2
		".tmp-page%2Dviews2-1-Partition%200.checkpoint-12",
		".tmp-page%2Dviews-1-Partition%200.checkpoint-12x",
		".tmp-page%2Dviews-1-Partition%200.checkpoint-",
		".tmp-page%2Dviews-1.lock-1",
		".tmp-" + long.prefix[:64] + "-1",
		"page%2Dviews-1-Partition%200.checkpoint.tmp-1",
	}
	for _, name := range append(slices.Clone(ours), theirs...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	m = rwManager(t, dir, &log)
	for _, name := range ours {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s was not removed", name)
		}
	}
	for _, name := range theirs {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed", name)
		}
	}
	if !strings.Contains(log.String(), "removed leftover temporary files") {
		t.Errorf("the removal is not logged:\n%s", log.String())
	}
	if _, err := m.Read(t.Context(), "Partition 0"); err != nil {
		t.Errorf("the checkpoint itself: %v", err)
	}
}

// TestWriteAllFailureIsUndone: when a task file cannot be written, the files already
// written get their old content back and the error says nothing was written; when
// that fails too, the rewrite stays committed and the next Start finishes it.
func TestWriteAllFailureIsUndone(t *testing.T) {
	boom := errors.New("disk full")
	t.Run("undone", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cp")
		m := rwManager(t, dir, nil)
		cps := oldAndNew(t, m)
		before := copyDir(t, dir)
		calls := 0
		m.writeFile = func(path string, data []byte, perm os.FileMode) error {
			calls++
			if calls == 4 { // the intent, then tasks 0 and 1, then task 2 fails
				return boom
			}
			return atomicfile.WriteFile(path, data, perm)
		}
		err := m.WriteAll(t.Context(), cps, nil)
		if !errors.Is(err, checkpoint.ErrNothingWritten) || !errors.Is(err, boom) || !strings.Contains(err.Error(), `"Partition 2"`) {
			t.Fatalf("WriteAll = %v, want ErrNothingWritten naming task Partition 2 and the cause", err)
		}
		if got := state(t, m); got != "old" {
			t.Errorf("after the failed WriteAll: %s", got)
		}
		for _, name := range []string{"page%2Dviews-1-Partition%200.checkpoint", "page%2Dviews-1-Partition%201.checkpoint"} {
			a, _ := os.ReadFile(filepath.Join(before, name))
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if !bytes.Equal(a, b) {
				t.Errorf("%s was not put back byte for byte", name)
			}
		}
		if _, err := os.Stat(m.IntentPath()); err == nil {
			t.Error("the intent is left behind")
		}
	})
	t.Run("pending", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cp")
		m := rwManager(t, dir, nil)
		cps := oldAndNew(t, m)
		calls := 0
		m.writeFile = func(path string, data []byte, perm os.FileMode) error {
			calls++
			if calls >= 4 { // task 2 fails, and so does putting back tasks 1 and 0
				return boom
			}
			return atomicfile.WriteFile(path, data, perm)
		}
		err := m.WriteAll(t.Context(), cps, nil)
		if !errors.Is(err, checkpoint.ErrRewritePending) || errors.Is(err, checkpoint.ErrNothingWritten) || !strings.Contains(err.Error(), m.IntentPath()) {
			t.Fatalf("WriteAll = %v, want ErrRewritePending naming the intent", err)
		}
		var log bytes.Buffer
		if got := state(t, rwManager(t, dir, &log)); got != "new" {
			t.Errorf("after the next Start: %s, want new", got)
		}
	})
}

// TestCorruptIntentStopsStart: an intent file that cannot be read is an error naming
// it, and nothing is changed.
func TestCorruptIntentStopsStart(t *testing.T) {
	snapshots, intentName := crashPoints(t)
	dir := snapshots[2]
	path := filepath.Join(dir, intentName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(dir, "page-views", "1")
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(t.Context())
	if !errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start = %v, want ErrCorrupt naming %s", err, path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the intent was removed: %v", err)
	}
}
