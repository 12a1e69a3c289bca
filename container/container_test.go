package container_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-streams/sluice/checkpoint"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

func TestCopiesEverythingAndResumesFromCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 3, 50)
	e.stream("out", 3, 0)
	s := &seen{}
	e.tasks["test"] = copyTo("out", s, nil)
	if err := e.run(baseConfig(), exitWhenCaughtUp); err != nil {
		t.Fatalf("run: %v", err)
	}
	for p := range int32(3) {
		msgs, _ := e.store.Messages("out", p)
		if len(msgs) != 50 {
			t.Errorf("out partition %d has %d messages, want 50", p, len(msgs))
		}
		if got := e.mgr.get("Partition " + itoa(int(p)))[ssp("in", p)]; got != "50" {
			t.Errorf("checkpoint of partition %d = %q, want 50 (the next offset)", p, got)
		}
	}
	// More input, second run: only the new messages are processed.
	for p := range int32(3) {
		e.store.Append("in", p, nil, []byte("late-"+itoa(int(p))))
	}
	if err := e.run(baseConfig(), exitWhenCaughtUp); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := s.total(); got != 153 {
		t.Errorf("processed %d messages over two runs, want 153 (no reprocessing)", got)
	}
	if !strings.Contains(e.logs.String(), "reason=checkpoint") {
		t.Errorf("second run did not log starting from the checkpoint:\n%s", e.logs)
	}
}

func TestCommitOrderSnapshotFlushWriteListener(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 3)
	e.stream("out", 1, 0)
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.Offset == "1" {
			coord.Commit(task.CurrentTask)
		}
		return nil
	})
	if err := e.run(baseConfig("task.commit.on.shutdown", "false"), exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"send mem.out in-0-0",
		"send mem.out in-0-1",
		"flush mem err=<nil>",
		"write Partition 0 mem.in#0=2",
		"listener mem mem.in#0=2",
		"send mem.out in-0-2",
	}
	if got := e.j.all(); !slices.Equal(got, want) {
		t.Errorf("journal:\n got %q\nwant %q", got, want)
	}
}

func TestFailedMessageIsNeverCheckpointed(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 10)
	e.stream("out", 1, 0)
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		if env.Offset == "6" {
			return errBoom
		}
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "offset 6") {
		t.Fatalf("run error = %v, want boom naming offset 6", err)
	}
	if got := e.mgr.get("Partition 0")[ssp("in", 0)]; got != "6" {
		t.Errorf("checkpoint = %q, want 6: progress up to the failure is kept, the failed message is not", got)
	}
}

func TestPanicIsContainedAsTaskFailure(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 5)
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		if env.SSP.Partition == 1 && env.Offset == "3" {
			var m map[string]int
			m["x"] = 1 // nil map write panics
		}
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	var pe *container.TaskPanicError
	if !errors.As(err, &pe) {
		t.Fatalf("run error = %v, want a *TaskPanicError", err)
	}
	if pe.Task != "Partition 1" || !strings.Contains(pe.Where, "offset 3") || pe.Stack == "" {
		t.Errorf("panic error = %+v, want task Partition 1 at offset 3 with a stack", pe)
	}
	if got := e.mgr.get("Partition 1")[ssp("in", 1)]; got != "3" {
		t.Errorf("checkpoint of failed task = %q, want 3", got)
	}
}

func TestPanicInConstructorOrCheckIsContained(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 1)
	e.tasks["test"] = task.Definition{New: func(name string, _ config.Config) (task.StreamTask, error) {
		panic("constructor of " + name + " fell over")
	}}
	err := e.run(baseConfig(), exitWhenCaughtUp)
	var pe *container.TaskPanicError
	if !errors.As(err, &pe) || pe.Task != "Partition 0" || !strings.Contains(err.Error(), "fell over") {
		t.Fatalf("run error = %v, want a *TaskPanicError of Partition 0", err)
	}

	e.tasks["test"] = task.Definition{
		New:   func(string, config.Config) (task.StreamTask, error) { return nil, nil },
		Check: func(config.Config) error { panic("check fell over") },
	}
	_, err = e.container(baseConfig())
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "checking its configuration") {
		t.Fatalf("New error = %v, want a *TaskPanicError from the check", err)
	}

	e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) { return nil, nil }}
	if err := e.run(baseConfig(), exitWhenCaughtUp); err == nil || !strings.Contains(err.Error(), "no task and no error") {
		t.Fatalf("run error = %v, want an error for a constructor returning nil", err)
	}
}

func TestCommitCurrentTaskOnly(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 5)
	done := make(chan struct{})
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.SSP.Partition == 0 && env.Offset == "4" {
			coord.Commit(task.CurrentTask)
			close(done)
		}
		return nil
	})
	c, err := e.container(baseConfig("task.commit.on.shutdown", "false"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	<-done
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := e.mgr.get("Partition 0")[ssp("in", 0)]; got != "5" {
		t.Errorf("requesting task checkpoint = %q, want 5", got)
	}
	if got := e.mgr.get("Partition 1"); len(got) != 0 {
		t.Errorf("other task was checkpointed: %v", got)
	}
}

func TestCommitAllTasksInContainer(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 3, 5)
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.SSP.Partition == 0 && env.Offset == "4" {
			coord.Commit(task.AllTasksInContainer)
			coord.Shutdown(task.AllTasksInContainer)
		}
		return nil
	})
	// Other tasks may not have finished when the shutdown comes; what matters is that
	// each one got a checkpoint without a periodic or shutdown commit.
	if err := e.run(baseConfig("task.commit.on.shutdown", "false")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Partition 0", "Partition 1", "Partition 2"} {
		if len(e.mgr.get(name)) == 0 {
			t.Errorf("%s has no checkpoint after Commit(AllTasksInContainer)", name)
		}
	}
}

func TestShutdownByConsensus(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 5)
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.Offset == "2" {
			coord.Shutdown(task.CurrentTask)
		}
		return nil
	})
	// Without --exit-when-caught-up the container only stops because both tasks voted.
	if err := e.run(baseConfig()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "every task asked to shut down") {
		t.Errorf("no consensus shutdown in logs:\n%s", e.logs)
	}

	// One vote alone does not stop the container.
	e2 := newEnv(t)
	e2.stream("in", 2, 5)
	e2.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.SSP.Partition == 0 && env.Offset == "2" {
			coord.Shutdown(task.CurrentTask)
		}
		return nil
	})
	c, _ := e2.container(baseConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e2.logs.String(), "reason=signal") {
		t.Errorf("container stopped before the context ended although only one task voted:\n%s", e2.logs)
	}
}

func TestFailedFlushFailsCommitAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 3)
	e.stream("out", 1, 0)
	e.store.FailProduce(errors.New("broker said no"))
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		coord.Commit(task.CurrentTask)
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	if err == nil || !strings.Contains(err.Error(), "broker said no") || !strings.Contains(err.Error(), "no checkpoint was written") {
		t.Fatalf("run error = %v, want the flush failure", err)
	}
	if e.mgr.writes != 0 {
		t.Errorf("%d checkpoints written despite failed flushes", e.mgr.writes)
	}
}

func TestNoFinalCommitAfterAFailedFlush(t *testing.T) {
	// A producer that reports a delivery failure once and then flushes cleanly (with
	// nothing left in flight) must not let the shutdown commit checkpoint past the
	// lost outputs: the task restarts from its last good checkpoint.
	e := newEnv(t)
	e.stream("in", 1, 4)
	e.stream("out", 1, 0)
	boom := error(errors.New("delivery failed"))
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		switch env.Offset {
		case "0":
			coord.Commit(task.CurrentTask) // succeeds: covers message 0
		case "2":
			e.failFlushOnce.Store(&boom)
			coord.Commit(task.CurrentTask) // fails: messages 1 and 2 may be lost
		}
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	if err == nil || !strings.Contains(err.Error(), "delivery failed") {
		t.Fatalf("run error = %v, want the flush failure", err)
	}
	if got := e.mgr.get("Partition 0")[ssp("in", 0)]; got != "1" {
		t.Errorf("checkpoint = %q after a failed flush, want %q (the last good commit)", got, "1")
	}
	if !strings.Contains(e.logs.String(), "no final commit for this task") {
		t.Errorf("the skipped final commit was not logged:\n%s", e.logs)
	}
}

func TestFailedCheckpointWriteStopsTheJob(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 3)
	e.mgr.failNext = errors.New("disk full")
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		coord.Commit(task.CurrentTask)
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "gave up after 4 attempts in 2.1s") {
		t.Fatalf("run error = %v, want the write failure after bounded retries", err)
	}
	// 4 tries with backoff 0.1 + 0.4 + 1.6 s (on the fake clock), and no final
	// commit after it failed.
	want := []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond}
	if e.mgr.tries != 4 || !slices.Equal(e.clock.Waits(), want) {
		t.Errorf("checkpoint write tried %d times, waiting %v; want 4 with waits %v", e.mgr.tries, e.clock.Waits(), want)
	}
}

func TestWriteRetriedByTheManagerIsNotRetriedAgain(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 3)
	e.mgr.failNext = fmt.Errorf("broker gone for 60 s: %w", checkpoint.ErrRetriesExhausted)
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		coord.Commit(task.CurrentTask)
		return nil
	})
	err := e.run(baseConfig(), exitWhenCaughtUp)
	if !errors.Is(err, checkpoint.ErrRetriesExhausted) {
		t.Fatalf("run error = %v, want the manager's exhausted retries", err)
	}
	if e.mgr.tries != 1 || len(e.clock.Waits()) != 0 {
		t.Errorf("checkpoint write tried %d times, waiting %v; want once: the manager already retried it", e.mgr.tries, e.clock.Waits())
	}
}

func TestListenerSeesOnlyItsOwnSystem(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 2)
	e.stream("other", 1, 2)
	e.tasks["test"] = copyTo("", nil, nil)
	cfg := baseConfig(
		"systems.mem2.samza.factory", "inmem",
		"systems.mem2.samza.offset.default", "oldest",
		"task.inputs", "mem.in,mem2.other")
	if err := e.run(cfg, exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range e.j.all() {
		if strings.HasPrefix(l, "listener") {
			got = append(got, l)
		}
	}
	want := []string{"listener mem mem.in#0=2", "listener mem2 mem2.other#0=2"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("listener calls = %q, want %q", got, want)
	}
}

func TestListenerErrorIsLoggedAndCountedAndTheCheckpointStands(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 3)
	e.listenerErr = errors.New("ack endpoint down")
	e.tasks["test"] = copyTo("", nil, nil)
	c, err := e.container(baseConfig(), exitWhenCaughtUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("a listener error stopped the job: %v", err)
	}
	if got := c.Stats().ListenerErrors; got != 2 {
		t.Errorf("ListenerErrors = %d, want 2 (one per task's shutdown checkpoint)", got)
	}
	for p := range int32(2) {
		if got := e.mgr.get(job.TaskName(p))[ssp("in", p)]; got != "3" {
			t.Errorf("checkpoint of partition %d = %q, want 3 despite the listener error", p, got)
		}
	}
	if !strings.Contains(e.logs.String(), "ack endpoint down") {
		t.Errorf("listener error not logged:\n%s", e.logs)
	}
}

func TestTwoContainersSplitTasksRoundRobin(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 5, 1)
	s := &seen{}
	e.tasks["test"] = copyTo("", s, nil)
	cfg := baseConfig("job.container.count", "2")
	if err := e.run(cfg, exitWhenCaughtUp, func(o *container.Options) { o.ContainerID = 1 }); err != nil {
		t.Fatal(err)
	}
	for p, want := range []int{0, 1, 0, 1, 0} {
		if got := s.count("in-" + itoa(p) + "-0"); got != want {
			t.Errorf("container 1 processed partition %d %d times, want %d", p, got, want)
		}
	}
}

func TestSetStartingOffsetOverridesCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 10)
	e.mgr.cps["Partition 0"] = checkpointOf(ssp("in", 0), "2")
	s := &seen{}
	e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
		return &initTask{seen: s, start: "7"}, nil
	}}
	if err := e.run(baseConfig(), exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	if s.total() != 3 || s.count("in-0-7") != 1 {
		t.Errorf("processed %v, want offsets 7..9 only", s.msgs)
	}
	if !strings.Contains(e.logs.String(), "reason=override") {
		t.Errorf("override not logged:\n%s", e.logs)
	}
}

func TestSlowTaskHoldsBufferedMessagesBounded(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 20000)
	release := make(chan struct{})
	e.tasks["test"] = copyTo("", nil, func(system.IncomingEnvelope, task.Coordinator) error {
		<-release
		return nil
	})
	c, err := e.container(baseConfig(), func(o *container.Options) { o.BufferedBatches = 2 })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	polled := e.systems["mem"].cons.Load().polledCount()
	cancel()
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// One batch in the task, two buffered, one held by the dispatcher: 4 polls of at
	// most 512 messages, far below the 20,000 available.
	if polled > 4*512 {
		t.Errorf("a stuck task let the consumer poll %d messages; want at most %d", polled, 4*512)
	}
	if polled == 0 {
		t.Errorf("nothing was polled")
	}
}

// stuckPartition0 runs a container over 2 partitions of 20,000 messages each whose
// task for partition 0 is stuck until the run ends; while it runs, observe is called
// (after the container started) and its result returned once the container stopped.
func stuckPartition0[T any](t *testing.T, e *env, s *seen, observe func() T) T {
	t.Helper()
	e.stream("in", 2, 20000)
	release := make(chan struct{})
	e.tasks["test"] = copyTo("", s, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		if env.SSP.Partition == 0 {
			<-release
		}
		return nil
	})
	c, err := e.container(baseConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	got := observe()
	cancel()
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSlowTaskDoesNotStallItsNeighbours(t *testing.T) {
	// Partition 0's task is stuck; partition 1's task must still get every one of
	// its 20,000 messages (about 40 polls), while partition 0's buffer stays bounded:
	// the consumer pauses partition 0 instead of waiting for its task.
	e := newEnv(t)
	s := &seen{}
	got := stuckPartition0(t, e, s, func() [3]int {
		deadline := time.Now().Add(10 * time.Second)
		for s.total() < 20000 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		rc := e.systems["mem"].cons.Load()
		return [3]int{s.total(), rc.polledCount(), rc.pauseCount()}
	})
	done, polled, pauses := got[0], got[1], got[2]
	if done < 20000 {
		t.Fatalf("partition 1's task processed %d of its 20,000 messages while partition 0's task was stuck", done)
	}
	// Partition 1's 20,000, plus for partition 0 the batch in its task, one waiting,
	// and what arrived while it was being paused: a few polls of at most 512.
	if polled > 20000+4*512 {
		t.Errorf("the stuck task let the consumer poll %d messages of its partition; want at most %d", polled-20000, 4*512)
	}
	if pauses == 0 {
		t.Errorf("the stuck task's partition was never paused")
	}
}

func TestSlowTaskWithoutPauseHoldsTheConsumer(t *testing.T) {
	// A consumer that cannot pause waits for the slow task: memory stays bounded,
	// at the price of its neighbours.
	e := newEnv(t)
	e.noPause = true
	polled := stuckPartition0(t, e, nil, func() int {
		time.Sleep(300 * time.Millisecond)
		return e.systems["mem"].cons.Load().polledCount()
	})
	// Each poll of up to 512 messages carries partition 0 about every other time; the
	// dispatcher waits once two of its batches are queued behind the stuck one. 24
	// polls leave a one-in-50,000 chance of a false failure.
	if polled == 0 || polled > 24*512 {
		t.Errorf("polled %d messages with a stuck task and a consumer that cannot pause; want some, at most %d", polled, 24*512)
	}
}

func TestSamzaScenarioUncommittedMessageIsProcessedTwice(t *testing.T) {
	// KafkaCheckpointManagerIntegrationTest: commit after msg0, not after msg1, stop
	// without a shutdown commit (as a crash would), restart: msg1 twice, msg0 once.
	e := newEnv(t)
	e.stream("in", 1, 2)
	s := &seen{}
	e.tasks["test"] = copyTo("", s, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.Offset == "0" {
			coord.Commit(task.CurrentTask)
		}
		return nil
	})
	cfg := baseConfig("task.commit.on.shutdown", "false")
	for range 2 {
		if err := e.run(cfg, exitWhenCaughtUp); err != nil {
			t.Fatal(err)
		}
	}
	if s.count("in-0-0") != 1 || s.count("in-0-1") != 2 {
		t.Errorf("msg0 processed %d times, msg1 %d times; want 1 and 2", s.count("in-0-0"), s.count("in-0-1"))
	}
}

func TestShutdownCommitAvoidsReprocessing(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 5)
	s := &seen{}
	e.tasks["test"] = copyTo("", s, nil)
	for range 2 {
		if err := e.run(baseConfig(), exitWhenCaughtUp); err != nil {
			t.Fatal(err)
		}
	}
	if s.total() != 5 {
		t.Errorf("processed %d, want 5: the clean-shutdown commit should prevent reprocessing", s.total())
	}
}

func TestCheckpointOfRemovedInputIsDropped(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 1)
	e.mgr.cps["Partition 0"] = checkpointOf(ssp("gone", 0), "7")
	e.tasks["test"] = copyTo("", nil, nil)
	if err := e.run(baseConfig(), exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	got := e.mgr.get("Partition 0")
	if _, ok := got[ssp("gone", 0)]; ok || got[ssp("in", 0)] != "1" {
		t.Errorf("checkpoint = %v, want only mem.in#0=1", got)
	}
}

func TestConfigProblemsReportedTogether(t *testing.T) {
	e := newEnv(t)
	cfg := baseConfig(
		"job.name", "<unset>",
		"systems.mem.samza.offset.default", "sometimes",
		"task.commit.ms", "soon",
		"task.inputs", "mem.in,nosys.x,justastream",
		"task.class", "nope",
		"task.checkpoint.factory", "carrier-pigeon",
	)
	_, err := e.container(cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"job.name", "systems.mem.samza.offset.default=sometimes", "task.commit.ms=soon", "nosys", "justastream",
		"task.class=nope", "task.checkpoint.factory=carrier-pigeon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if !config.IsConfigError(err) {
		t.Errorf("error is not a config error: %v", err)
	}
}

func TestUnknownTaskClassAndFactory(t *testing.T) {
	e := newEnv(t)
	_, err := e.container(baseConfig("task.class", "nope", "systems.mem.samza.factory", "carrier-pigeon"))
	if err == nil || !strings.Contains(err.Error(), "task.class=nope") || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Fatalf("error = %v", err)
	}
}

func TestWindowIsCalled(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 0)
	e.stream("out", 1, 0)
	e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) { return &windowTask{}, nil }}
	if err := e.run(baseConfig("task.window.ms", "20")); err != nil {
		t.Fatal(err)
	}
	msgs, _ := e.store.Messages("out", 0)
	if len(msgs) != 3 {
		t.Errorf("window sent %d messages, want 3", len(msgs))
	}
}

func TestWindowOffOverridesTheTaskDefault(t *testing.T) {
	// Samza's task.window.ms=-1 turns windowing off, even for a task with a default.
	e := newEnv(t)
	e.stream("in", 1, 0)
	e.stream("out", 1, 0)
	e.tasks["test"] = task.Definition{
		New:           func(string, config.Config) (task.StreamTask, error) { return &windowTask{}, nil },
		WindowDefault: 10 * time.Millisecond,
	}
	c, err := e.container(baseConfig("task.window.ms", "-1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.store.Messages("out", 0); len(msgs) != 0 {
		t.Errorf("Window was called %d times with task.window.ms=-1", len(msgs))
	}
}

func TestOutOfRangeCheckpointIsCountedAndLogged(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 10)
	e.store.Truncate("in", 0, 6) // retention deleted offsets 0..5
	e.mgr.cps["Partition 0"] = checkpointOf(ssp("in", 0), "2")
	s := &seen{}
	e.tasks["test"] = copyTo("", s, nil)
	c, err := e.container(baseConfig(), exitWhenCaughtUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.OutOfRangeResets != 1 || st.MessagesSkipped != 4 {
		t.Errorf("stats = %+v, want 1 reset skipping 4 messages", st)
	}
	if s.total() != 4 || s.count("in-0-6") != 1 {
		t.Errorf("processed %v, want offsets 6..9", s.msgs)
	}
	if !strings.Contains(e.logs.String(), "gap=4") || !strings.Contains(e.logs.String(), "level=WARN") {
		t.Errorf("the move was not logged with its gap:\n%s", e.logs)
	}
}

func TestSendToTwoSystemsAlternately(t *testing.T) {
	// Send remembers the producer of the last system it sent to; switching systems
	// on every message must still reach the right producer (an inmem producer refuses
	// another system's stream), and a commit flushes both.
	e := newEnv(t)
	e.stream("in", 1, 10)
	if err := e.store.CreateStream("out", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateStream("out2", 1); err != nil {
		t.Fatal(err)
	}
	e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
		n := 0
		return funcTask(func(ctx context.Context, env system.IncomingEnvelope, c task.Collector, _ task.Coordinator) error {
			n++
			to := system.SystemStream{System: "mem", Stream: "out"}
			if n%2 == 0 {
				to = system.SystemStream{System: "mem2", Stream: "out2"}
			}
			return c.Send(ctx, system.OutgoingEnvelope{Stream: to, Partition: 0, Message: env.Message})
		}), nil
	}}
	if err := e.run(baseConfig("systems.mem2.samza.factory", "inmem"), exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"out", "out2"} {
		if msgs, _ := e.store.Messages(s, 0); len(msgs) != 5 {
			t.Errorf("%s holds %d messages, want 5", s, len(msgs))
		}
	}
	flushed := strings.Join(e.j.all(), "\n")
	for _, sys := range []string{"flush mem err=<nil>", "flush mem2 err=<nil>"} {
		if !strings.Contains(flushed, sys) {
			t.Errorf("journal lacks %q:\n%s", sys, flushed)
		}
	}
}
