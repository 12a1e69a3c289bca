package container_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// byTask records, per task, the messages it processed in order.
type byTask struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func (b *byTask) def() task.Definition {
	return task.Definition{New: func(name string, _ config.Config) (task.StreamTask, error) {
		return funcTask(func(_ context.Context, env system.IncomingEnvelope, _ task.Collector, _ task.Coordinator) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.msgs[name] = append(b.msgs[name], string(env.Message))
			return nil
		}), nil
	}}
}

func (b *byTask) of(name, prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs[name] {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// TestBroadcastPartitionsAreReadByEveryTask: each of 3 tasks reads its partition of
// the input and all of control#1, in order; control#0 is read by none; each task
// checkpoints its own offset of control#1, and a restart resumes each from its own.
func TestBroadcastPartitionsAreReadByEveryTask(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 3, 10)
	e.stream("control", 2, 5)
	rec := &byTask{msgs: map[string][]string{}}
	e.tasks["test"] = rec.def()
	cfg := baseConfig("task.broadcast.inputs", "mem.control#1")
	if err := e.run(cfg, exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	want := []string{"control-1-0", "control-1-1", "control-1-2", "control-1-3", "control-1-4"}
	for p := range 3 {
		name := fmt.Sprintf("Partition %d", p)
		if got := rec.of(name, "control-"); !slices.Equal(got, want) {
			t.Errorf("%s read control messages %v, want %v", name, got, want)
		}
		if got := rec.of(name, "in-"); len(got) != 10 || got[0] != fmt.Sprintf("in-%d-0", p) {
			t.Errorf("%s read inputs %v, want the 10 of in#%d", name, got, p)
		}
		if got := e.mgr.get(name)[ssp("control", 1)]; got != "5" {
			t.Errorf("%s checkpointed control#1 at %q, want 5", name, got)
		}
	}

	// Two more control messages. Task 0's checkpoint is moved back to 3: on restart it
	// reads control 3 to 6 again, the others only the two new ones.
	appendAll(t, e, "control", []int32{1}, 2, "new")
	cp := e.mgr.get("Partition 0")
	cp[ssp("control", 1)] = "3"
	if err := e.mgr.Write(context.Background(), "Partition 0", checkpoint.New(cp)); err != nil {
		t.Fatal(err)
	}
	rec.msgs = map[string][]string{}
	if err := e.run(cfg, exitWhenCaughtUp); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.of("Partition 0", ""), []string{"control-1-3", "control-1-4", "new-control-1-0", "new-control-1-1"}; !slices.Equal(got, want) {
		t.Errorf("Partition 0 read %v after the restart, want %v", got, want)
	}
	for _, name := range []string{"Partition 1", "Partition 2"} {
		if got, want := rec.of(name, ""), []string{"new-control-1-0", "new-control-1-1"}; !slices.Equal(got, want) {
			t.Errorf("%s read %v after the restart, want %v", name, got, want)
		}
	}
}

func TestBroadcastPartitionThatDoesNotExist(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 1, 1)
	e.stream("control", 1, 1)
	e.tasks["test"] = copyTo("", nil, nil)
	err := e.run(baseConfig("task.broadcast.inputs", "mem.control#[0-2]"), exitWhenCaughtUp)
	if err == nil || !strings.Contains(err.Error(), "task.broadcast.inputs: no such partition: mem.control#1, mem.control#2") {
		t.Errorf("error = %v", err)
	}
}

// TestBroadcastTaskAddedWhileRunning: the input grows from 2 partitions to 3 while the
// container runs with control#1 (of 2 partitions) as a broadcast input: the new task
// reads control#1 from its default start, and control#0, which the job does not read,
// never becomes part of any task (no task is removed or restarted).
func TestBroadcastTaskAddedWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 1)
	e.stream("control", 2, 3)
	rec := &byTask{msgs: map[string][]string{}}
	e.tasks["test"] = rec.def()
	log := newTaskLog()
	cfg := baseConfig("task.broadcast.inputs", "mem.control#1", "job.partition.monitor.ms", "20")
	ctr, err := e.container(cfg, func(o *container.Options) { o.Events = log.events() })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctr.Run(ctx) }()
	log.waitFor(t, "the first two tasks", func(a, _ []string) bool { return len(a) == 2 })
	if err := e.store.AddPartitions("in", 3); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "the task of the new partition", func(a, _ []string) bool { return len(a) == 3 })
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.of("Partition 2", "control-")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("Partition 2 read %v of control#1", rec.of("Partition 2", "control-"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The high watermark of a broadcast partition comes from the task's own consumer:
	// two more control messages show in Progress, and every task reads them.
	appendAll(t, e, "control", []int32{1}, 2, "more")
	for deadline := time.Now().Add(10 * time.Second); ; {
		var hwms []string
		for _, tp := range ctr.Progress().Tasks {
			for _, pp := range tp.Partitions {
				if pp.SSP == ssp("control", 1) {
					hwms = append(hwms, pp.HighWatermark+"/"+fmt.Sprint(pp.Lag))
				}
			}
		}
		if slices.Equal(hwms, []string{"5/0", "5/0", "5/0"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control#1 high watermark/lag per task %v, want 5/0 for all three", hwms)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	added, removed := log.snapshot()
	if len(added) != 3 || len(removed) != 0 {
		t.Errorf("tasks added %v, removed %v; want 3 added, none removed", added, removed)
	}
	if n := strings.Count(e.logs.String(), "input partitions changed: adapting"); n != 1 {
		t.Errorf("the container saw its inputs change %d times, want once (in, 2 to 3 partitions):\n%s", n, e.logs)
	}
	for p := range 3 {
		name := fmt.Sprintf("Partition %d", p)
		if got, want := rec.of(name, "control-"), []string{"control-1-0", "control-1-1", "control-1-2"}; !slices.Equal(got[:min(3, len(got))], want) {
			t.Errorf("%s read control messages %v, want %v", name, got, want)
		}
	}
}
