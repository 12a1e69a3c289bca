package container_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// fakeCoordinator lets a test assign, revoke and lose tasks.
type fakeCoordinator struct {
	mu      sync.Mutex
	h       container.CoordinatorHandler
	started chan int32
	grown   []int32
}

func (f *fakeCoordinator) Start(_ context.Context, tasks int32, h container.CoordinatorHandler) error {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
	f.started <- tasks
	return nil
}

func (f *fakeCoordinator) Grow(_ context.Context, tasks int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.grown = append(f.grown, tasks)
	return nil
}

func (f *fakeCoordinator) Status(context.Context) (container.CoordinatorStatus, error) {
	return container.CoordinatorStatus{Generation: 7, Containers: 3, Tasks: 2}, nil
}

func (f *fakeCoordinator) Close() error { return nil }

func (f *fakeCoordinator) handler() container.CoordinatorHandler {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

// TestGroupAssignRevokeLose drives the control loop as a group would: assigned tasks
// run, a revoke returns only once the task is committed, a lost task is stopped
// without a commit, and a failure stops the container.
func TestGroupAssignRevokeLose(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 3)
	e.stream("out", 2, 0)
	log := newTaskLog()
	fc := &fakeCoordinator{started: make(chan int32, 1)}
	e.tasks["test"] = copyTo("out", nil, nil)
	c, err := e.container(baseConfig("job.coordinator.factory", "kafka", "job.coordinator.system", "mem"), func(o *container.Options) {
		o.Events = log.events()
		o.StatusInterval = 20 * time.Millisecond
		o.Coordinators = map[string]container.CoordinatorFactory{"kafka": func(*job.Config, map[string]system.System, string, *slog.Logger) (container.Coordinator, error) {
			return fc, nil
		}}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	if n := <-fc.started; n != 2 {
		t.Errorf("the group was told of %d tasks, want 2", n)
	}
	h := fc.handler()
	h.Assigned([]int32{0, 1})
	log.waitFor(t, "two tasks", func(a, _ []string) bool { return len(a) == 2 })
	for deadline := time.Now().Add(5 * time.Second); len(must(e.store.Messages("out", 1))) < 3; {
		if time.Now().After(deadline) {
			t.Fatal("task 1 did not copy its messages")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Revoked(t.Context(), []int32{1})
	if got := e.mgr.get("Partition 1")[ssp("in", 1)]; got != "3" {
		t.Errorf("when the revoke returned, task 1's checkpoint was %q, want 3", got)
	}
	h.Lost([]int32{0})
	log.waitFor(t, "task 0 removed", func(_, r []string) bool { return len(r) == 2 })
	if got := e.mgr.get("Partition 0"); got != nil {
		t.Errorf("a lost task was committed: %v", got)
	}
	h.Failed(errors.New("fenced by another container"))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "fenced by another container") {
			t.Errorf("Run = %v, want the group's failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the container did not stop after the group failed it")
	}
	if !strings.Contains(e.logs.String(), "group_generation=7 group_containers=3 group_tasks=2") {
		t.Errorf("the status line does not show the group:\n%s", e.logs)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
