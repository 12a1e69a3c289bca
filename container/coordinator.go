package container

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// Coordinator shares a job's tasks among the containers that run it, as they come and
// go (job.coordinator.factory=kafka): the dynamic counterpart of the static
// assignment. It must never give a task to this container while another runs it: a
// task comes (Assigned) only after its previous owner finished and committed it
// (Revoked) or lost it.
type Coordinator interface {
	// Start joins the job's containers, telling them the job has tasks tasks (task N
	// reads partition N of every input, for N below tasks); h hears from then on which
	// tasks this container runs.
	Start(ctx context.Context, tasks int32, h CoordinatorHandler) error
	// Grow tells the containers that the job has more tasks now (its inputs grew).
	Grow(ctx context.Context, tasks int32) error
	// Status describes the job's containers for the status line.
	Status(ctx context.Context) (CoordinatorStatus, error)
	// Close leaves; the container has committed its tasks by then.
	Close() error
}

// CoordinatorHandler is what a Coordinator tells the container. The functions are
// called one at a time, from the coordinator's goroutines.
type CoordinatorHandler struct {
	// Assigned gives the container tasks to run, by partition number.
	Assigned func(tasks []int32)
	// Revoked takes tasks away: it returns once they are finished and committed, or
	// when ctx ends.
	Revoked func(ctx context.Context, tasks []int32)
	// Lost takes away tasks that may already run elsewhere: they stop at once, without
	// a commit.
	Lost func(tasks []int32)
	// Failed ends the container's membership (it was refused, or fenced).
	Failed func(err error)
}

// CoordinatorStatus describes the job's containers as one of them sees it.
type CoordinatorStatus struct {
	Generation int32
	Containers int
	Tasks      int32
}

// CoordinatorFactory builds the coordinator of a job from its systems. container is
// the --container-id given, "" for none. It connects to nothing.
type CoordinatorFactory func(jc *job.Config, systems map[string]system.System, container string, logger *slog.Logger) (Coordinator, error)

// GroupSettings are the settings every container of a job must share for a group to
// balance its tasks among them: a coordinator refuses a container whose settings
// differ, naming the difference.
func GroupSettings(jc *job.Config) map[string]string {
	inputs := make([]string, len(jc.Inputs))
	for i, in := range jc.Inputs {
		inputs[i] = in.String()
	}
	slices.Sort(inputs)
	set := map[string]string{
		job.KeyInputs:    strings.Join(inputs, ","),
		job.KeyTaskClass: jc.TaskClass,
		job.KeyJobID:     jc.ID,
	}
	if len(jc.Broadcast) > 0 {
		b := make([]string, len(jc.Broadcast))
		for i, ssp := range jc.Broadcast {
			b[i] = ssp.String()
		}
		set[job.KeyBroadcastInputs] = strings.Join(b, ",")
	}
	return set
}

// taskCount is how many tasks the inputs make: one per partition number.
func taskCount(byPartition map[int32][]system.SystemStreamPartition) int32 {
	var n int32
	for p := range byPartition {
		n = max(n, p+1)
	}
	return n
}

// groupChange is what the coordinator asked of the control loop.
type groupChange struct {
	assigned, revoked, lost []int32
	done                    func() // for revoked: call once they are committed
}

// coordinatorHandler passes the coordinator's calls to the control loop. A revoke
// waits until the tasks are committed, ctx ends or the container stops (its shutdown
// commits every task before it leaves the group).
func (r *run) coordinatorHandler() CoordinatorHandler {
	return CoordinatorHandler{
		Assigned: func(tasks []int32) { r.post(event{kind: evGroup, group: &groupChange{assigned: tasks}}) },
		Revoked: func(ctx context.Context, tasks []int32) {
			done := make(chan struct{})
			var once sync.Once
			r.post(event{kind: evGroup, group: &groupChange{revoked: tasks, done: func() { once.Do(func() { close(done) }) }}})
			select {
			case <-done:
			case <-ctx.Done():
				r.log.Warn("task group: the rebalance timeout ended before the revoked tasks were committed", "tasks", fmt.Sprint(tasks))
			case <-r.stop:
			}
		},
		Lost:   func(tasks []int32) { r.post(event{kind: evGroup, group: &groupChange{lost: tasks}}) },
		Failed: func(err error) { r.fail(fmt.Errorf("the job's task group: %w", err)) },
	}
}

// groupChanged applies what the coordinator decided: assigned tasks are added,
// revoked ones removed after a final commit (done is called once all are), lost ones
// stopped without a commit.
func (r *run) groupChanged(ctx context.Context, g *groupChange, caught map[string]bool) error {
	if len(g.assigned) > 0 {
		r.log.Info("task group: this container gained tasks", "tasks", taskList(g.assigned))
	}
	if len(g.revoked) > 0 {
		r.log.Info("task group: this container gives up tasks (a rebalance moves them); finishing and committing them first", "tasks", taskList(g.revoked))
	}
	if len(g.lost) > 0 {
		r.log.Warn("task group: this container lost tasks (its session expired: they may run elsewhere already); stopping them without a commit", "tasks", taskList(g.lost))
	}
	r.assignedOnce = true
	r.live.assigned.Store(true)
	var pending sync.WaitGroup
	for _, p := range append(slices.Clone(g.revoked), g.lost...) {
		name := job.TaskName(p)
		delete(r.restart, name)
		if _, ok := r.tasks[name]; !ok {
			continue
		}
		delete(caught, name)
		pending.Add(1)
		commit := slices.Contains(g.revoked, p)
		if err := r.retireWith(ctx, name, "the task group moved it", commit, pending.Done); err != nil {
			return err
		}
	}
	if g.done != nil {
		go func() { pending.Wait(); g.done() }()
	}
	for _, p := range g.assigned {
		name := job.TaskName(p)
		if _, ok := r.tasks[name]; ok {
			continue
		}
		if r.retiringNow[name] {
			if r.restart == nil {
				r.restart = map[string]bool{}
			}
			r.restart[name] = true // its removal is still finishing
			continue
		}
		if err := r.addTask(ctx, name, caught); err != nil {
			return err
		}
	}
	return nil
}

func taskList(tasks []int32) string {
	parts := make([]string, len(tasks))
	for i, t := range tasks {
		parts[i] = fmt.Sprint(t)
	}
	return strings.Join(parts, ",")
}

// jobStreams returns the input streams of which the job has checkpointed some
// partition, in any task, for a container whose tasks come from a group: a partition
// of one of them without a checkpoint appeared after the job started reading it.
func (r *run) jobStreams(ctx context.Context) (map[system.SystemStream]bool, error) {
	known := map[system.SystemStream]bool{}
	l, ok := r.c.cpm.(interface {
		Tasks(ctx context.Context) ([]string, error)
	})
	if !ok {
		return known, nil
	}
	tasks, err := l.Tasks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the job's checkpoints: %w", err)
	}
	inputs := map[system.SystemStream]bool{}
	for _, in := range r.c.jc.Inputs {
		inputs[in] = true
	}
	for _, name := range tasks {
		if len(known) == len(inputs) {
			break
		}
		cp, err := r.readCheckpoint(ctx, name)
		if err != nil {
			return nil, err
		}
		for ssp := range cp.Offsets {
			if inputs[ssp.SystemStream] {
				known[ssp.SystemStream] = true
			}
		}
	}
	return known, nil
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
