package container_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
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
