package container_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// taskLog records the container's task events.
type taskLog struct {
	mu      sync.Mutex
	added   []string
	removed []string
	changed chan struct{} // signalled on every event
}

func newTaskLog() *taskLog { return &taskLog{changed: make(chan struct{}, 64)} }

func (l *taskLog) events() *container.Events {
	return &container.Events{
		TaskAdded: func(ev container.TaskEvent) {
			l.mu.Lock()
			l.added = append(l.added, ev.Task)
			l.mu.Unlock()
			l.changed <- struct{}{}
		},
		TaskRemoved: func(ev container.TaskEvent) {
			l.mu.Lock()
			l.removed = append(l.removed, ev.Task)
			l.mu.Unlock()
			l.changed <- struct{}{}
		},
	}
}

func (l *taskLog) snapshot() (added, removed []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.added), slices.Clone(l.removed)
}

// waitFor waits for task events until cond holds.
func (l *taskLog) waitFor(t *testing.T, what string, cond func(added, removed []string) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if cond(l.snapshot()) {
			return
		}
		select {
		case <-l.changed:
		case <-deadline:
			a, r := l.snapshot()
			t.Fatalf("waiting for %s: added %v, removed %v", what, a, r)
		}
	}
}

// counter counts how often each message was processed, and lets a test wait until a
// total is reached.
type counter struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
	want  int
	done  chan struct{}
}

func newCounter(want int) *counter {
	c := &counter{seen: map[string]int{}}
	c.expect(want)
	return c
}

// expect makes wait return once n messages were processed.
func (c *counter) expect(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.done = n, make(chan struct{})
	if c.total >= n {
		close(c.done)
	}
}

func (c *counter) add(m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[m]++
	c.total++
	if c.total == c.want {
		close(c.done)
	}
}

func (c *counter) wait(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("processed %d messages, want %d", c.total, c.want)
	}
}

func (c *counter) check(t *testing.T, msgs []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		if c.seen[m] != 1 {
			t.Errorf("%s processed %d times, want once", m, c.seen[m])
		}
	}
	if c.total != len(msgs) {
		t.Errorf("processed %d messages, want %d", c.total, len(msgs))
	}
}

func countingTask(c *counter) task.Definition {
	return task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
		return funcTask(func(_ context.Context, env system.IncomingEnvelope, _ task.Collector, _ task.Coordinator) error {
			c.add(string(env.Message))
			return nil
		}), nil
	}}
}

func appendAll(t *testing.T, e *env, stream string, partitions []int32, n int, prefix string) []string {
	t.Helper()
	var msgs []string
	for _, p := range partitions {
		for i := range n {
			m := fmt.Sprintf("%s-%s-%d-%d", prefix, stream, p, i)
			if _, err := e.store.Append(stream, p, nil, []byte(m)); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
	}
	return msgs
}

// TestNewPartitionsBecomeTasksWhileRunning: an input grown from 2 to 4 partitions
// while the container runs gets two new tasks, with no restart, reading the new
// partitions from their oldest offset (the default here is upcoming), while the first
// two tasks go on; every message is processed exactly once.
func TestNewPartitionsBecomeTasksWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 0)
	log := newTaskLog()
	cfg := baseConfig("systems.mem.samza.offset.default", "<unset>", "job.partition.monitor.ms", "20")
	before := 2 * 5
	c := newCounter(before)
	e.tasks["test"] = countingTask(c)
	ctr, err := e.container(cfg, func(o *container.Options) { o.Events = log.events() })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctr.Run(ctx) }()
	log.waitFor(t, "the first two tasks", func(a, _ []string) bool { return len(a) == 2 })
	msgs := appendAll(t, e, "in", []int32{0, 1}, 5, "early")
	c.wait(t)

	if err := e.store.AddPartitions("in", 4); err != nil {
		t.Fatal(err)
	}
	// Written before the container noticed: read all the same (oldest offset).
	late := appendAll(t, e, "in", []int32{0, 1, 2, 3}, 5, "late")
	msgs = append(msgs, late...)
	c.expect(len(msgs))
	log.waitFor(t, "tasks for the new partitions", func(a, _ []string) bool { return len(a) == 4 })
	c.wait(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	c.check(t, msgs)
	added, removed := log.snapshot()
	if want := []string{"Partition 0", "Partition 1", "Partition 2", "Partition 3"}; !slices.Equal(sorted(added), want) || len(removed) != 0 {
		t.Errorf("tasks added %v, removed %v; want %v added, none removed", added, removed, want)
	}
	for p := range int32(4) {
		if got := e.mgr.get(fmt.Sprintf("Partition %d", p))[ssp("in", p)]; got != map[int32]string{0: "10", 1: "10", 2: "5", 3: "5"}[p] {
			t.Errorf("partition %d checkpointed at %q", p, got)
		}
	}
	if n := len(grep(e.logs.String(), "partition added after the job started", "offset=0")); n != 2 {
		t.Errorf("logged %d new partitions read from offset 0, want 2:\n%s", n, e.logs)
	}
}

// TestTaskWhosePartitionsChangeIsRestarted: with inputs a (4 partitions) and b (2),
// tasks 2 and 3 read a alone. When b grows to 4 they are removed — committed — and
// added again reading b too, while a keeps arriving: nothing is lost or processed
// twice, and tasks 0 and 1 are never touched.
func TestTaskWhosePartitionsChangeIsRestarted(t *testing.T) {
	e := newEnv(t)
	e.stream("a", 4, 0)
	e.stream("b", 2, 0)
	log := newTaskLog()
	cfg := baseConfig("task.inputs", "mem.a,mem.b", "job.partition.monitor.ms", "20")
	msgs := appendAll(t, e, "a", []int32{0, 1, 2, 3}, 20, "first")
	msgs = append(msgs, appendAll(t, e, "b", []int32{0, 1}, 5, "first")...)
	c := newCounter(len(msgs))
	e.tasks["test"] = countingTask(c)
	ctr, err := e.container(cfg, func(o *container.Options) { o.Events = log.events() })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctr.Run(ctx) }()
	c.wait(t)
	if err := e.store.AddPartitions("b", 4); err != nil {
		t.Fatal(err)
	}
	more := appendAll(t, e, "b", []int32{2, 3}, 5, "new")
	// a keeps arriving while tasks 2 and 3 restart.
	stop := make(chan struct{})
	var feed sync.WaitGroup
	var fed []string
	feed.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range []int32{0, 2, 3} {
				m := fmt.Sprintf("live-a-%d-%d", p, i)
				e.store.Append("a", p, nil, []byte(m))
				fed = append(fed, m)
			}
			time.Sleep(time.Millisecond) // pacing, not synchronisation
		}
	})
	log.waitFor(t, "tasks 2 and 3 restarted", func(a, r []string) bool { return len(r) == 2 && len(a) == 6 })
	close(stop)
	feed.Wait()
	msgs = append(append(msgs, more...), fed...)
	c.expect(len(msgs))
	c.wait(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	c.check(t, msgs)
	if t.Failed() {
		t.Logf("logs:\n%s", e.logs)
	}
	added, removed := log.snapshot()
	if want := []string{"Partition 2", "Partition 3"}; !slices.Equal(sorted(removed), want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := sorted(added); !slices.Equal(got, []string{"Partition 0", "Partition 1", "Partition 2", "Partition 2", "Partition 3", "Partition 3"}) {
		t.Errorf("added %v", got)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestBootstrapStreamIsReadFirst: with pages a bootstrap stream, each task reads its
// partition of pages up to the end it had at start before it is given any page view,
// including page views that were waiting and ones that arrive meanwhile.
func TestBootstrapStreamIsReadFirst(t *testing.T) {
	// The in-memory consumer polls its partitions in no fixed order: several rounds
	// make sure page views come before pages in some polls.
	for range 10 {
		bootstrapRound(t)
	}
}

func bootstrapRound(t *testing.T) {
	e := newEnv(t)
	e.stream("pages", 2, 0)
	e.stream("views", 2, 0)
	appendAll(t, e, "views", []int32{0, 1}, 30, "early")
	appendAll(t, e, "pages", []int32{0, 1}, 200, "page")
	var mu sync.Mutex
	order := map[int32][]string{}
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, _ task.Coordinator) error {
		mu.Lock()
		order[env.SSP.Partition] = append(order[env.SSP.Partition], env.SSP.Stream)
		mu.Unlock()
		return nil
	})
	cfg := baseConfig("task.inputs", "mem.views,mem.pages", "systems.mem.streams.pages.samza.bootstrap", "true")
	if err := e.run(cfg, exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		seq := order[p]
		if len(seq) != 230 {
			t.Fatalf("task %d processed %d messages, want 230", p, len(seq))
		}
		for i, s := range seq {
			if (i < 200) != (s == "pages") {
				t.Fatalf("task %d: message %d is of %s: a page view came before the pages were loaded", p, i, s)
			}
		}
	}
	if !strings.Contains(e.logs.String(), "bootstrapped: every bootstrap stream was read") {
		t.Errorf("the end of bootstrapping was not logged:\n%s", e.logs)
	}
}
