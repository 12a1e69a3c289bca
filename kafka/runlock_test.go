package kafka

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
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
	_, err = container.AcquireRunLock(ctx, checkpoint.Container{ID: 0, Count: 2})
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
		l, err = container.AcquireRunLock(ctx, checkpoint.Container{ID: 0, Count: 2})
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
	l2, err := second.AcquireRunLock(ctx, checkpoint.Container{ID: 1, Count: 2})
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
	l, err := container.AcquireRunLock(ctx, checkpoint.Container{ID: 0, Count: 2})
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
	// a write, a delete (two tombstones: the task's two keys) and a write
	contains(t, logs.String(), "read the checkpoint records written since start", "records=4")
}

// fenceContainer makes a member that claims to have taken container c's lock long
// ago join m's run-lock group with c's instance id, as a process that started first
// and takes its id back does; it leaves at the end of the test.
func fenceContainer(t *testing.T, m *CheckpointManager, c checkpoint.Container) {
	t.Helper()
	old := member{nonce: "fencer", container: c.ID, pid: 1, since: time.UnixMilli(946684800000), host: "fencer-host", known: true}
	instance := m.RunLockInstanceID(c.ID)
	l, err := m.joinRunLockGroup(old.clientID(), &instance, c, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

// crash stops l's member as a killed process would: no leave, no more heartbeats.
func crash(l *runLock) {
	l.cancel()
	<-l.done
	l.cl.Close()
}

// TestRunLockRestartAfterCrash: a container killed without a clean stop stays listed
// until its session times out, but the same container started again runs after
// RunLockProbe, not after the session timeout: nobody takes the instance id back.
func TestRunLockRestartAfterCrash(t *testing.T) {
	_, seeds := cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := checkpoint.Container{ID: 1, Count: 2}
	first, _ := startManager(t, seeds, "crashed", nil)
	l, err := first.AcquireRunLock(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	crash(l.(*runLock))

	again, logs := startManager(t, seeds, "crashed", nil)
	start := time.Now()
	l2, err := again.AcquireRunLock(ctx, c)
	if err != nil {
		t.Fatalf("restart after a crash: %v", err)
	}
	defer l2.Close()
	took := time.Since(start)
	if took < RunLockProbe || took >= RunLockSessionTimeout/2 {
		t.Errorf("the restart took %v, want from RunLockProbe (%v) to well under the session timeout (%v)", took, RunLockProbe, RunLockSessionTimeout)
	}
	contains(t, logs.String(), "listed as running", "waiting for it to take its instance id back", "process "+strconv.Itoa(os.Getpid()))
	peers, err := l2.Peers(ctx)
	if err != nil || !slices.Equal(peers, []int{1}) {
		t.Errorf("Peers = %v, %v; want [1]", peers, err)
	}
	// It stays held: the dead member does not come back.
	time.Sleep(3 * RunLockHeartbeat)
	select {
	case <-l2.Lost():
		t.Fatalf("the restarted container lost its lock: %v", l2.Err())
	default:
	}
}

// TestRunLockSimultaneousStarts: three processes start the same container at once.
// Exactly one keeps the lock; each other one is refused, or loses the lock it got,
// naming the process that took it over.
func TestRunLockSimultaneousStarts(t *testing.T) {
	_, seeds := cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := checkpoint.Container{ID: 0, Count: 1}
	type result struct {
		l   checkpoint.RunLock
		err error
	}
	results := make(chan result, 3)
	for range 3 {
		m, _ := startManager(t, seeds, "thrice", nil)
		go func() {
			l, err := m.AcquireRunLock(ctx, c)
			results <- result{l, err}
		}()
	}
	var held []*runLock
	for range 3 {
		r := <-results
		switch {
		case r.err == nil:
			defer r.l.Close()
			held = append(held, r.l.(*runLock))
		case !errors.Is(r.err, checkpoint.ErrContainerRunning):
			t.Fatalf("AcquireRunLock = %v, want success or ErrContainerRunning", r.err)
		}
	}
	if len(held) == 0 {
		t.Fatal("every start was refused")
	}
	// Those that got a lock settle within a few heartbeats.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []*runLock
		for _, l := range held {
			if l.Err() == nil {
				alive = append(alive, l)
			} else if !errors.Is(l.Err(), checkpoint.ErrFenced) || !strings.Contains(l.Err().Error(), "was taken over by process") {
				t.Errorf("a lost lock's Err = %v, want ErrFenced naming the process", l.Err())
			}
		}
		if len(alive) == 1 {
			// It is the group's member for the container, and stays so.
			time.Sleep(5 * RunLockHeartbeat)
			if err := alive[0].Err(); err != nil {
				t.Fatalf("the last lock was lost too: %v", err)
			}
			holder, held, err := instanceHolder(ctx, alive[0].adm, alive[0].group, *alive[0].instance, "")
			if err != nil || !held || holder.nonce != alive[0].self.nonce {
				t.Fatalf("the group's holder of the instance id is %+v (%v, %v), want the last lock's member %+v", holder, held, err, alive[0].self)
			}
			return
		}
		if len(alive) == 0 {
			t.Fatal("every lock was lost")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d locks still held after 5 s", len(alive))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunLockRestartAfterKillOnSameHost: a container listed as running by a process
// of this host that no longer exists (killed, then restarted here) is not waited for.
func TestRunLockRestartAfterKillOnSameHost(t *testing.T) {
	_, seeds := cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	exited := exec.Command(os.Args[0], "-test.run=^$")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	c := checkpoint.Container{ID: 0, Count: 1}
	first, _ := startManager(t, seeds, "killed", nil)
	dead := newMember(c.ID)
	dead.pid = exited.Process.Pid
	instance := first.RunLockInstanceID(c.ID)
	l, err := first.joinRunLockGroup(dead.clientID(), &instance, c, dead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.waitListed(ctx, first.adm, l); err != nil {
		t.Fatal(err)
	}
	crash(l)

	again, logs := startManager(t, seeds, "killed", nil)
	start := time.Now()
	l2, err := again.AcquireRunLock(ctx, c)
	if err != nil {
		t.Fatalf("restart after a kill: %v", err)
	}
	defer l2.Close()
	if took := time.Since(start); took >= RunLockProbe {
		t.Errorf("the restart took %v: it waited for a process that has exited", took)
	}
	contains(t, logs.String(), "a process of this host that has exited", "process "+strconv.Itoa(dead.pid))
}
