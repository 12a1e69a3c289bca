package kafka

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// owners is what a test knows of who runs which task: a task assigned while another
// member still runs it is a violation.
type owners struct {
	mu         sync.Mutex
	by         map[int32]string
	violations []string
	changed    chan struct{}
}

func newOwners() *owners { return &owners{by: map[int32]string{}, changed: make(chan struct{}, 100)} }

func (o *owners) handler(name string, failed chan<- error) TaskGroupHandler {
	return TaskGroupHandler{
		Assigned: func(tasks []int32) {
			o.mu.Lock()
			for _, t := range tasks {
				if prev, ok := o.by[t]; ok {
					o.violations = append(o.violations, fmt.Sprintf("task %d given to %s while %s runs it", t, name, prev))
				}
				o.by[t] = name
			}
			o.mu.Unlock()
			o.changed <- struct{}{}
		},
		Revoked: func(ctx context.Context, tasks []int32) {
			time.Sleep(50 * time.Millisecond) // finishing and committing takes a while
			o.release(tasks)
		},
		Lost: func(tasks []int32) { o.release(tasks) },
		Failed: func(err error) {
			if failed != nil {
				failed <- err
			}
		},
	}
}

func (o *owners) release(tasks []int32) {
	o.mu.Lock()
	for _, t := range tasks {
		delete(o.by, t)
	}
	o.mu.Unlock()
	o.changed <- struct{}{}
}

// count returns how many tasks each member runs.
func (o *owners) count() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, m := range o.by {
		n[m]++
	}
	return n
}

func (o *owners) waitFor(t *testing.T, want map[string]int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !maps.Equal(o.count(), want) {
		select {
		case <-o.changed:
		case <-deadline:
			t.Fatalf("tasks per member %v, want %v", o.count(), want)
		}
	}
}

func taskGroupConfig(instance string) TaskGroupConfig {
	return TaskGroupConfig{Job: "tg", JobID: "1", InstanceID: instance, Settings: map[string]string{"task.inputs": "kafka.in"},
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second, ReplicationFactor: 1}
}

func TestTaskGroupSharesTasksCooperatively(t *testing.T) {
	_, seeds := cluster(t, kfake.GroupMinSessionTimeout(time.Second))
	ctx := t.Context()
	o := newOwners()
	start := func(name string, cfg TaskGroupConfig, failed chan<- error) *TaskGroup {
		s, _ := startSystem(t, seeds, nil)
		g := NewTaskGroup(s, cfg, nil)
		if err := g.Start(ctx, 6, o.handler(name, failed)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	a := start("a", taskGroupConfig(""), nil)
	o.waitFor(t, map[string]int{"a": 6})
	b := start("b", taskGroupConfig(""), nil)
	o.waitFor(t, map[string]int{"a": 3, "b": 3})
	st, err := b.Status(ctx)
	if err != nil || st.Members != 2 || st.Tasks != 6 || len(st.Owned) != 3 {
		t.Errorf("status = %+v, %v; want 2 members, 6 tasks, 3 owned", st, err)
	}
	// New partitions of the inputs: the task topic grows and the new tasks are shared.
	if err := a.Grow(ctx, 8); err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, map[string]int{"a": 4, "b": 4})
	// A container with other settings is refused, naming the difference, and gets
	// no task.
	refused := make(chan error, 1)
	other := taskGroupConfig("")
	other.Settings = map[string]string{"task.inputs": "kafka.in,kafka.more"}
	start("odd", other, refused)
	select {
	case err := <-refused:
		if !strings.Contains(err.Error(), `task.inputs is "kafka.in,kafka.more" in this container but "kafka.in" in the group`) {
			t.Errorf("refusal = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a container with other inputs was not refused")
	}
	if n := o.count()["odd"]; n != 0 {
		t.Errorf("the refused container got %d tasks", n)
	}
	// b leaves: a takes everything back.
	b.Close()
	o.waitFor(t, map[string]int{"a": 8})
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Errorf("a task ran in two containers at once: %v", o.violations)
	}
}

func TestTaskGroupStaticDuplicateIsFenced(t *testing.T) {
	_, seeds := cluster(t, kfake.GroupMinSessionTimeout(time.Second))
	ctx := t.Context()
	o := newOwners()
	var failures []chan error
	for _, name := range []string{"first", "second"} {
		s, _ := startSystem(t, seeds, nil)
		g := NewTaskGroup(s, taskGroupConfig("container-1"), nil)
		failed := make(chan error, 1)
		failures = append(failures, failed)
		if err := g.Start(ctx, 2, o.handler(name, failed)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		if name == "first" {
			o.waitFor(t, map[string]int{"first": 2})
		}
	}
	select {
	case err := <-failures[0]:
		if !strings.Contains(err.Error(), "same container id") {
			t.Errorf("fenced with %v, want an error naming the duplicate container id", err)
		}
	case err := <-failures[1]:
		t.Logf("the newcomer failed instead: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("two containers with one id both kept their membership")
	}
}
