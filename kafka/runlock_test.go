package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
)

// TestRewriteLockExcludesContainers checks both sides of the run-lock group: while the
// checkpoint tool holds LockForRewrite no container can take its run lock, and while a
// container runs the tool cannot take the rewrite lock; a refused tool leaves the group
// at once, so it does not hold up containers that start after it.
func TestRewriteLockExcludesContainers(t *testing.T) {
	_, seeds := cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tool, _ := newManager(t, seeds, "rewritten", nil) // the tool's manager, not started
	container, _ := startManager(t, seeds, "rewritten", nil)

	w, err := tool.LockForRewrite(ctx)
	if err != nil {
		t.Fatalf("LockForRewrite with no container: %v", err)
	}
	_, err = container.AcquireRunLock(ctx)
	if !errors.Is(err, checkpoint.ErrRewriting) {
		t.Fatalf("AcquireRunLock while the tool writes = %v, want ErrRewriting", err)
	}
	contains(t, err.Error(), "checkpoint tool is rewriting", "sluice-job-rewritten-1", "Start the container again")
	if _, err := tool.LockForRewrite(ctx); !errors.Is(err, checkpoint.ErrRewriting) {
		t.Fatalf("a second LockForRewrite = %v, want ErrRewriting", err)
	}
	if err := tool.CheckNotRunning(ctx); !errors.Is(err, checkpoint.ErrRewriting) || errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("CheckNotRunning while the tool writes = %v, want ErrRewriting only", err)
	}
	w.Close()

	// The tool has left: the container starts.
	var l interface{ Close() error }
	for {
		l, err = container.AcquireRunLock(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, checkpoint.ErrRewriting) || ctx.Err() != nil {
			t.Fatalf("AcquireRunLock after the tool is done: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer l.Close()

	// Now the tool is refused, and leaves the group again.
	start := time.Now()
	_, err = tool.LockForRewrite(ctx)
	if !errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("LockForRewrite while a container runs = %v, want ErrJobRunning", err)
	}
	contains(t, err.Error(), "is running", "1 member(s)")
	second, _ := startManager(t, seeds, "rewritten", nil)
	l2, err := second.AcquireRunLock(ctx)
	if err != nil {
		t.Fatalf("a container starting after the refused tool: %v", err)
	}
	defer l2.Close()
	if d := time.Since(start); d >= RunLockSessionTimeout {
		t.Errorf("took %v: the refused tool stayed in the group until its session timed out", d)
	}
}

// TestRunLockReadsCheckpointsWrittenSinceStart checks that a container reads the
// checkpoints as they are when it holds its run lock, not as they were at Start: a
// rewrite between the two (writes and deletes) is seen.
func TestRunLockReadsCheckpointsWrittenSinceStart(t *testing.T) {
	_, seeds := cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tool, _ := startManager(t, seeds, "refreshed", nil)
	if err := tool.Write(ctx, "Partition 0", cp(sspA, "1")); err != nil {
		t.Fatal(err)
	}
	if err := tool.Write(ctx, "Partition 1", cp(sspA, "2")); err != nil {
		t.Fatal(err)
	}
	container, logs := startManager(t, seeds, "refreshed", nil)

	// The tool rewrites after the container's Start read the topic.
	if err := tool.Write(ctx, "Partition 0", cp(sspA, "7", sspB, "3")); err != nil {
		t.Fatal(err)
	}
	if err := tool.Delete(ctx, "Partition 1"); err != nil {
		t.Fatal(err)
	}
	if err := tool.Write(ctx, "Partition 2", cp(sspB, "9")); err != nil {
		t.Fatal(err)
	}
	if got, _ := container.Read(ctx, "Partition 0"); !got.Equal(cp(sspA, "1")) {
		t.Fatalf("before the run lock, Read = %v, want Start's snapshot", got.Offsets)
	}
	l, err := container.AcquireRunLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := container.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "7", sspB, "3")) {
		t.Errorf("Partition 0 = %v, %v; want the rewritten checkpoint", got.Offsets, err)
	}
	if _, err := container.Read(ctx, "Partition 1"); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Errorf("Partition 1 = %v, want ErrNoCheckpoint (deleted)", err)
	}
	if got, err := container.Read(ctx, "Partition 2"); err != nil || !got.Equal(cp(sspB, "9")) {
		t.Errorf("Partition 2 = %v, %v", got.Offsets, err)
	}
	tasks, err := container.Tasks(ctx)
	if err != nil || len(tasks) != 2 {
		t.Errorf("Tasks = %q, %v; want Partition 0 and 2", tasks, err)
	}
	contains(t, logs.String(), "read the checkpoint records written since start", "records=3")
}
