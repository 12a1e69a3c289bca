package container_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// startupTask runs init at Init and copies nothing.
type startupTask struct {
	funcTask
	init func(ctx context.Context) error
}

func (t startupTask) Init(ctx context.Context, _ task.Context) error { return t.init(ctx) }

func TestSignalDuringStartUpIsACleanStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		// cancelAt cancels the run's context at one point of start-up.
		before bool // before Run
		inInit int  // in the Init of this many tasks (0: none)
	}{
		{name: "before Run", before: true},
		{name: "in the first task's Init", inInit: 1},
		{name: "in the last task's Init", inInit: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.stream("in", 3, 5)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			inits := 0
			s := &seen{}
			e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
				return startupTask{
					funcTask: func(context.Context, system.IncomingEnvelope, task.Collector, task.Coordinator) error {
						s.add("x")
						return nil
					},
					init: func(ctx context.Context) error {
						mu.Lock()
						defer mu.Unlock()
						if inits++; inits == tc.inInit {
							cancel()
						}
						return ctx.Err() // what a task that honours its context does
					},
				}, nil
			}}
			c, err := e.container(baseConfig())
			if err != nil {
				t.Fatal(err)
			}
			if tc.before {
				cancel()
			}
			if err := c.Run(ctx); err != nil {
				t.Fatalf("Run after a signal during start-up = %v, want a clean stop (nil)", err)
			}
			if e.mgr.writes != 0 || s.total() != 0 {
				t.Errorf("a stop during start-up wrote %d checkpoints and processed %d messages, want none", e.mgr.writes, s.total())
			}
			if !strings.Contains(e.logs.String(), "stopped during start-up by a signal") {
				t.Errorf("the stop was not logged:\n%s", e.logs)
			}
		})
	}
}

// failingSystem gives its producers system.FailureNotifier, and lets the test fail a
// delivery of the producers created so far.
type failingSystem struct {
	system.System
	mu        sync.Mutex
	notifiers []func(error)
	created   chan struct{}
}

func (s *failingSystem) NewProducer() (system.Producer, error) {
	p, err := s.System.NewProducer()
	if err != nil {
		return nil, err
	}
	return &notifyingProducer{Producer: p, s: s}, nil
}

func (s *failingSystem) failAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.notifiers {
		go fn(err) // as a client's delivery goroutine would
	}
}

type notifyingProducer struct {
	system.Producer
	s *failingSystem
}

func (p *notifyingProducer) NotifyFailure(fn func(error)) {
	p.s.mu.Lock()
	p.s.notifiers = append(p.s.notifiers, fn)
	p.s.mu.Unlock()
	select {
	case p.s.created <- struct{}{}:
	default:
	}
}

func TestDeliveryFailureStopsTheJobAtOnceAndIsNeverCheckpointed(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 0)
	e.stream("out", 2, 0)
	fs := &failingSystem{created: make(chan struct{}, 1)}
	e.tasks["test"] = copyTo("out", nil, nil)
	opt := func(o *container.Options) {
		inner := o.Systems["inmem"]
		o.Systems["inmem"] = func(name string, cfg config.Config, l *slog.Logger) (system.System, error) {
			s, err := inner(name, cfg, l)
			fs.System = s
			return fs, err
		}
	}
	c, err := e.container(baseConfig("task.commit.ms", "600000"), opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Partition 0 sends, so its task gets a producer; partition 1 stays idle.
	if _, err := e.store.Append("in", 0, nil, []byte("m")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fs.created:
	case err := <-done:
		t.Fatalf("Run ended before anything was sent: %v", err)
	}
	start := time.Now()
	fs.failAll(errBoomDelivery)
	err = <-done
	if ctx.Err() != nil {
		t.Fatalf("the job did not stop after a delivery failure (commit interval 10 min); logs:\n%s", e.logs)
	}
	if err == nil || !strings.Contains(err.Error(), "could not be delivered") || !strings.Contains(err.Error(), errBoomDelivery.Error()) {
		t.Fatalf("Run = %v, want the delivery failure", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the job took %v to stop after the failure", d)
	}
	if got := e.mgr.get("Partition 0"); got != nil {
		t.Errorf("the task whose output was lost was checkpointed: %v", got)
	}
	// The idle task lost nothing: its final commit stands.
	if got := e.mgr.get("Partition 1")[ssp("in", 1)]; got != "0" {
		t.Errorf("checkpoint of the idle task = %q, want 0", got)
	}
}

var errBoomDelivery = errors.New("the broker refused the record")

// TestInputPartitionsAddedWhileRunning: a container whose consumers cannot add
// partitions while running notices within its monitor interval that an input gained
// partitions, stops with its final commit and an error saying why; restarted with the
// default samza.offset.default=upcoming, it reads the new partitions from their oldest
// offset, so no message written to them is lost.
func TestInputPartitionsAddedWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.noChange = true // consumers that cannot add partitions while running
	e.stream("in", 2, 10)
	e.stream("out", 4, 0)
	s := &seen{}
	running := make(chan struct{})
	var once sync.Once
	e.tasks["test"] = copyTo("out", s, func(system.IncomingEnvelope, task.Coordinator) error {
		once.Do(func() { close(running) })
		return nil
	})
	// The built-in default (upcoming) is what lost messages before.
	cfg := baseConfig("systems.mem.samza.offset.default", "<unset>", "job.partition.monitor.ms", "50")
	c, err := e.container(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Wait until the job processes: probes sent before it started are not read (upcoming).
	for probe := 0; ; probe++ {
		if _, err := e.store.Append("in", 0, nil, []byte(fmt.Sprintf("probe-%d", probe))); err != nil {
			t.Fatal(err)
		}
		select {
		case <-running:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	// Grow the input while the job runs, and write to every partition.
	if err := e.store.AddPartitions("in", 4); err != nil {
		t.Fatal(err)
	}
	for p := range int32(4) {
		for i := range 5 {
			if _, err := e.store.Append("in", p, nil, []byte(fmt.Sprintf("late-%d-%d", p, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = <-done
	if ctx.Err() != nil {
		t.Fatalf("the container did not notice the new partitions; logs:\n%s", e.logs)
	}
	var pc *container.PartitionsChangedError
	if !errors.As(err, &pc) || !strings.Contains(err.Error(), "mem.in from 2 to 4 partitions") {
		t.Fatalf("Run = %v, want a PartitionsChangedError naming mem.in from 2 to 4", err)
	}
	for p := range 2 {
		if e.mgr.get(fmt.Sprintf("Partition %d", p)) == nil {
			t.Errorf("task %d was not checkpointed on the way out", p)
		}
	}
	// The restart runs four tasks; the new ones start at offset 0 of their partitions.
	if err := e.run(cfg, exitWhenCaughtUp); err != nil {
		t.Fatalf("restart: %v", err)
	}
	for p := range 4 {
		for i := range 5 {
			if m := fmt.Sprintf("late-%d-%d", p, i); s.count(m) == 0 {
				t.Errorf("%s was never processed", m)
			}
		}
	}
	if got := len(grep(e.logs.String(), "partition added after the job started", "mem.in#2", "offset=0")); got != 1 {
		t.Errorf("the restart logged %d new-partition starts for mem.in#2, want 1:\n%s", got, e.logs)
	}
}

// grep returns the lines of s containing every one of words.
func grep(s string, words ...string) []string {
	var out []string
next:
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// poisonTask copies messages to mem.out and fails on those whose value starts with
// "bad", with err(value).
func poisonTask(s *seen, fail func(string) error) task.Definition {
	return copyTo("out", s, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		if strings.HasPrefix(string(env.Message), "bad") {
			return fail(string(env.Message))
		}
		return nil
	})
}

func TestPoisonPillsSkippedToTheDeadLetterStream(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 0)
	e.stream("out", 2, 0)
	e.stream("dlq", 1, 0)
	for p := range int32(2) {
		for i := range 6 {
			v := fmt.Sprintf("good-%d-%d", p, i)
			if i == 2 || i == 4 {
				v = fmt.Sprintf("bad-%d-%d", p, i)
			}
			if _, err := e.store.AppendMessage("in", p, inmemMessage(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := &seen{}
	e.tasks["test"] = poisonTask(s, func(v string) error { return task.Skippable(fmt.Errorf("cannot decode %s", v)) })
	c, err := e.container(baseConfig("task.ignored.exceptions", "skippable", "task.dead.letter.stream", "mem.dlq"), exitWhenCaughtUp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(t.Context()); err != nil {
		t.Fatalf("Run = %v, want the bad messages skipped", err)
	}
	if got := c.Stats().IgnoredErrors; got != 4 {
		t.Errorf("IgnoredErrors = %d, want 4", got)
	}
	for p := range int32(2) {
		out, _ := e.store.Messages("out", p)
		if len(out) != 4 {
			t.Errorf("partition %d: %d outputs, want the 4 good messages", p, len(out))
		}
		if got := e.mgr.get(fmt.Sprintf("Partition %d", p))[ssp("in", p)]; got != "6" {
			t.Errorf("partition %d checkpointed at %q, want 6 (past the skipped messages)", p, got)
		}
	}
	dlq, _ := e.store.Messages("dlq", 0)
	if len(dlq) != 4 {
		t.Fatalf("dead-letter stream holds %d messages, want 4", len(dlq))
	}
	var found bool
	for _, m := range dlq {
		if string(m.Value) != "bad-1-4" {
			continue
		}
		found = true
		want := map[string]string{
			"orig":                 "header",
			container.HeaderJob:    "test-job-1",
			container.HeaderTask:   "Partition 1",
			container.HeaderSource: "mem.in#1",
			container.HeaderOffset: "4",
			container.HeaderError:  "cannot decode bad-1-4",
		}
		got := map[string]string{}
		for _, h := range m.Headers {
			got[h.Key] = string(h.Value)
		}
		if !maps.Equal(got, want) {
			t.Errorf("dead letter headers = %v, want %v", got, want)
		}
		if !m.Time.Equal(inmemMessage("").Time) {
			t.Errorf("dead letter timestamp %v, want the original %v", m.Time, inmemMessage("").Time)
		}
	}
	if !found {
		t.Error("bad-1-4 is not in the dead-letter stream")
	}
	if n := len(grep(e.logs.String(), "skipping a message whose processing failed", "offset=2")); n != 2 {
		t.Errorf("logged %d skips at offset 2, want 2:\n%s", n, e.logs)
	}
}

func TestErrorsNotListedStillStopTheJob(t *testing.T) {
	for _, ignored := range []string{"<unset>", "skippable", "*json.SyntaxError"} {
		e := newEnv(t)
		e.stream("in", 1, 0)
		e.stream("out", 1, 0)
		for _, v := range []string{"good-0", "bad-1", "good-2"} {
			e.store.Append("in", 0, nil, []byte(v))
		}
		e.tasks["test"] = poisonTask(nil, func(v string) error {
			_, err := strconv.Atoi(v)
			return err
		})
		err := e.run(baseConfig("task.ignored.exceptions", ignored), exitWhenCaughtUp)
		if err == nil || !strings.Contains(err.Error(), "offset 1") {
			t.Errorf("task.ignored.exceptions=%s: Run = %v, want the failure at offset 1", ignored, err)
		}
		if got := e.mgr.get("Partition 0")[ssp("in", 0)]; got != "1" {
			t.Errorf("task.ignored.exceptions=%s: checkpoint %q, want 1 (before the failed message)", ignored, got)
		}
	}
	// The error's type, as %T names it, can be listed.
	e := newEnv(t)
	e.stream("in", 1, 0)
	e.stream("out", 1, 0)
	for _, v := range []string{"good-0", "bad-1", "good-2"} {
		e.store.Append("in", 0, nil, []byte(v))
	}
	e.tasks["test"] = poisonTask(nil, func(v string) error {
		_, err := strconv.Atoi(v)
		return fmt.Errorf("parse: %w", err)
	})
	if err := e.run(baseConfig("task.ignored.exceptions", "*strconv.NumError"), exitWhenCaughtUp); err != nil {
		t.Errorf("task.ignored.exceptions=*strconv.NumError: Run = %v, want the message skipped", err)
	}
}

func inmemMessage(v string) inmem.Message {
	return inmem.Message{Value: []byte(v), Headers: []system.Header{{Key: "orig", Value: []byte("header")}}, Time: time.Unix(1_600_000_000, 0)}
}

// TestMissingOutputStreamRefusedAtStart: a declared output that does not exist stops
// the job before anything is processed, naming the stream.
func TestMissingOutputStreamRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"declared output", nil, "output stream mem.out"},
		{"dead-letter stream", []string{"task.ignored.exceptions", "*", "task.dead.letter.stream", "mem.dlq"}, "output stream mem.dlq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.stream("in", 1, 3)
			if tc.name != "declared output" {
				e.stream("out", 1, 0)
			}
			s := &seen{}
			def := copyTo("out", s, nil)
			def.Outputs = func(config.Config) ([]system.SystemStream, error) {
				return []system.SystemStream{{System: "mem", Stream: "out"}}, nil
			}
			e.tasks["test"] = def
			err := e.run(baseConfig(tc.kv...), exitWhenCaughtUp)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "no stream") {
				t.Fatalf("Run = %v, want a missing-output error naming %s", err, tc.want)
			}
			if s.total() != 0 || e.mgr.writes != 0 {
				t.Errorf("processed %d and wrote %d checkpoints before refusing", s.total(), e.mgr.writes)
			}
		})
	}
}

// TestShutdownNeverHangs: a task stuck in Process does not hold a stop beyond
// task.shutdown.ms. The stop fails naming the task, which is not checkpointed past its
// last commit, while the other tasks get their final commit.
func TestShutdownNeverHangs(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 3)
	e.stream("out", 2, 0)
	release := make(chan struct{})
	defer close(release)
	stuck, other := make(chan struct{}), make(chan struct{})
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		switch {
		case env.SSP.Partition == 0 && env.Offset == "1":
			close(stuck)
			<-release // stuck until the test ends
		case env.SSP.Partition == 1 && env.Offset == "2":
			close(other) // partition 1's last message
		}
		return nil
	})
	c, err := e.container(baseConfig("task.shutdown.ms", "300"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-stuck
	<-other
	stopAt := time.Now()
	cancel()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run hung on a stuck task for 5 s with task.shutdown.ms=300")
	}
	if took := time.Since(stopAt); took > 2*time.Second {
		t.Errorf("the stop took %v with task.shutdown.ms=300", took)
	}
	if err == nil || !strings.Contains(err.Error(), "Partition 0") || !strings.Contains(err.Error(), "task.shutdown.ms") {
		t.Fatalf("Run = %v, want a failure naming the stuck task and task.shutdown.ms", err)
	}
	if got := e.mgr.get("Partition 0"); got != nil {
		t.Errorf("the stuck task was checkpointed: %v", got)
	}
	if got := e.mgr.get("Partition 1")[ssp("in", 1)]; got != "3" {
		t.Errorf("the other task's final commit = %q, want 3", got)
	}
}

// TestCommitAndShutdownFromAnyGoroutine: a task may call Commit and Shutdown from
// goroutines of its own, outside Process (run under -race).
func TestCommitAndShutdownFromAnyGoroutine(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 5)
	e.stream("out", 2, 0)
	var wg sync.WaitGroup
	defer wg.Wait()
	e.tasks["test"] = copyTo("out", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.Offset == "4" {
			wg.Go(func() {
				coord.Commit(task.CurrentTask)
				coord.Shutdown(task.CurrentTask)
			})
		}
		return nil
	})
	if err := e.run(baseConfig("task.commit.on.shutdown", "false")); err != nil {
		t.Fatalf("Run = %v; want a stop by every task's vote", err)
	}
	for p := range int32(2) {
		if got := e.mgr.get(fmt.Sprintf("Partition %d", p))[ssp("in", p)]; got != "5" {
			t.Errorf("partition %d: checkpoint %q, want 5 from the requested commit", p, got)
		}
	}
	if !strings.Contains(e.logs.String(), "every task asked to shut down") {
		t.Errorf("the stop was not by consensus:\n%s", e.logs)
	}
}

type failingWindow struct {
	funcTask
	fail func() error
}

func (w failingWindow) Window(context.Context, task.Collector, task.Coordinator) error {
	return w.fail()
}

// TestIgnoredExceptionsCoverWindow: as in Samza, task.ignored.exceptions applies to
// Window as well as Process.
func TestIgnoredExceptionsCoverWindow(t *testing.T) {
	for _, tc := range []struct {
		ignored string
		wantErr bool
	}{{"<unset>", true}, {"skippable", false}} {
		e := newEnv(t)
		e.stream("in", 1, 0)
		windows := make(chan struct{}, 10)
		e.tasks["test"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
			return failingWindow{fail: func() error {
				windows <- struct{}{}
				return task.Skippable(errors.New("bad window"))
			}}, nil
		}}
		c, err := e.container(baseConfig("task.window.ms", "5", "task.ignored.exceptions", tc.ignored))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		// Unignored, the first failing Window stops the job; ignored, it keeps going.
	wait:
		for n := 0; n < 3; n++ {
			select {
			case <-windows:
			case err = <-done:
				break wait
			}
		}
		cancel()
		if err == nil {
			err = <-done
		}
		if tc.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "bad window")) {
			t.Errorf("task.ignored.exceptions=%s: Run = %v, want error %v", tc.ignored, err, tc.wantErr)
		}
	}
}
