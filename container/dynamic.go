package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
)

// monitorPartitions reads the partition metadata of the inputs every
// job.partition.monitor.ms (Samza's partition-count monitor) and, when a partition
// count differs from the one the container knows, hands the new metadata to the
// control loop, which adds and removes tasks to match. A failed lookup is logged and
// tried again at the next tick.
// known holds the partition counts the container knows at the start; the monitor reads
// nothing of the control loop's state.
func (r *run) monitorPartitions(ctx context.Context, known map[system.SystemStream]int) {
	tk := time.NewTicker(r.c.jc.PartitionMonitorInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		lctx, cancel := context.WithTimeout(ctx, r.c.jc.PartitionMonitorInterval)
		meta, err := r.inputMetadata(lctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("partition monitor: could not read the partition counts of the inputs; trying again later", "error", err)
			continue
		}
		now := partitionCounts(meta)
		if changed := changedCounts(known, now); len(changed) > 0 {
			r.c.opts.Events.partitionsChanged(changed)
			r.log.Warn("partition monitor: input partitions changed while the job ran", "changes", (&PartitionsChangedError{Changes: changed}).describe())
			known = now
			r.post(event{kind: evPartitions, meta: meta})
		}
	}
}

// partitionsChanged adopts new input metadata: tasks for new partition numbers are
// added, tasks whose partitions changed are restarted with their new partitions, and
// tasks whose partitions are all gone are removed. When a consumer cannot change its
// partitions while running, the container stops instead, with a
// *PartitionsChangedError, so that a restart picks the new partitions up.
func (r *run) partitionsChanged(ctx context.Context, meta map[system.SystemStreamPartition]system.PartitionMetadata, votes, caught map[string]bool) error {
	changes := changedCounts(partitionCounts(r.meta), partitionCounts(meta))
	byPartition := jobmodel.TaskPartitions(r.c.jc, meta)
	want := map[string][]system.SystemStreamPartition{}
	if r.coord != nil {
		// The group decides who runs the new tasks: tell it there are more; this
		// container only restarts the tasks it runs whose partitions changed.
		if err := r.coord.Grow(ctx, taskCount(byPartition)); err != nil {
			r.log.Warn("task group: could not tell the group about the new tasks; it will be told at the next change", "error", err)
		}
		for name := range r.tasks {
			var p int32
			fmt.Sscanf(name, "Partition %d", &p)
			want[name] = byPartition[p]
		}
	} else {
		for _, p := range r.assign.tasks(slices.Collect(maps.Keys(byPartition))) {
			want[job.TaskName(p)] = byPartition[p]
		}
	}
	var add, restart, remove []string
	for name, ssps := range want {
		tr, ok := r.tasks[name]
		switch {
		case !ok && !r.restart[name]:
			add = append(add, name)
		case ok && !slices.Equal(tr.core.ssps, ssps):
			restart = append(restart, name)
		}
	}
	for name := range r.tasks {
		if _, ok := want[name]; !ok {
			remove = append(remove, name)
		}
	}
	slices.Sort(add)
	slices.Sort(restart)
	slices.Sort(remove)
	if len(add)+len(restart)+len(remove) > 0 {
		for _, sys := range slices.Sorted(maps.Keys(r.consumers)) {
			if _, ok := r.consumers[sys].(system.PartitionChanger); !ok {
				return &PartitionsChangedError{Changes: changes, Reason: fmt.Sprintf("the consumer of system %s cannot add or remove partitions while it runs", sys)}
			}
		}
	}
	r.meta = meta
	for _, ch := range changes {
		r.readBefore[ch.Stream] = true // its new partitions are new: read from their oldest offset
	}
	r.log.Info("input partitions changed: adapting this container's tasks", "changes", (&PartitionsChangedError{Changes: changes}).describe(),
		"add", strings.Join(add, ", "), "restart", strings.Join(restart, ", "), "remove", strings.Join(remove, ", "))
	for _, name := range append(slices.Clone(restart), remove...) {
		delete(votes, name)
		delete(caught, name)
		if err := r.retire(ctx, name, "its input partitions changed"); err != nil {
			return err
		}
	}
	for _, name := range restart {
		if r.restart == nil {
			r.restart = map[string]bool{}
		}
		r.restart[name] = true // added again once retired (evRetired)
	}
	for _, name := range add {
		if err := r.addTask(ctx, name, caught); err != nil {
			return err
		}
	}
	return nil
}

// addTask creates the task name for the current metadata while the container runs:
// it reads the task's checkpoint as it is now, resolves where each partition starts
// (a partition found after the job started reading its stream starts at its oldest
// offset), initialises the task, routes its partitions to it and has their consumers
// read them. A task that is caught up from the start is marked so in caught.
func (r *run) addTask(ctx context.Context, name string, caught map[string]bool) error {
	var p int32
	if _, err := fmt.Sscanf(name, "Partition %d", &p); err != nil {
		return fmt.Errorf("add task %q: not a task name", name)
	}
	ssps := jobmodel.TaskPartitions(r.c.jc, r.meta)[p]
	if len(ssps) == 0 {
		return nil // its partitions went away meanwhile
	}
	tx, err := r.openTransaction(ctx, name) // fences first, then reads
	if err != nil {
		return err
	}
	if err := r.refreshCheckpoints(ctx); err != nil {
		if tx != nil {
			tx.Close()
		}
		return fmt.Errorf("add task %s: %w", name, err)
	}
	cp, err := r.readCheckpoint(ctx, name)
	if err != nil {
		return err
	}
	// The metadata must be newer than the checkpoint: a checkpoint its previous owner
	// wrote after the monitor looked would otherwise seem to lie beyond the end of
	// its partition, and be moved as out of range.
	if err := r.refreshMetadata(ctx, ssps); err != nil {
		return err
	}
	tr, err := r.newTask(ctx, p, ssps, cp, r.readBefore, tx)
	if err != nil {
		return err
	}
	bySys := map[string]map[system.SystemStreamPartition]string{}
	for _, ssp := range ssps {
		if r.c.jc.IsBroadcast(ssp) {
			continue // read by the task's own consumer
		}
		if bySys[ssp.System] == nil {
			bySys[ssp.System] = map[system.SystemStreamPartition]string{}
		}
		bySys[ssp.System][ssp] = tr.core.starts[ssp].Offset
	}
	fresh := map[string]system.Consumer{}
	for _, sys := range slices.Sorted(maps.Keys(bySys)) {
		cons, created, err := r.consumer(sys)
		if err != nil {
			return errors.Join(err, tr.core.close())
		}
		if created {
			fresh[sys] = cons
		}
	}
	if err := r.openOwn(ctx, tr); err != nil {
		return errors.Join(err, r.closeOwn(tr), tr.core.close())
	}
	r.setPausers(tr)
	r.tasks[name] = tr
	// The route comes first: a message the consumer returns for a partition that no
	// task reads is dropped.
	r.setRoutes(tr, nil)
	for _, sys := range slices.Sorted(maps.Keys(bySys)) {
		cons := r.consumers[sys]
		if _, ok := fresh[sys]; ok {
			for ssp, off := range bySys[sys] {
				if err := cons.Register(ssp, off); err != nil {
					return fmt.Errorf("register %s at offset %s: %w", ssp, off, err)
				}
			}
			if err := cons.Start(ctx); err != nil {
				return fmt.Errorf("start consumer of system %s: %w", sys, err)
			}
			r.startDispatcher(sys, cons)
			continue
		}
		if err := cons.(system.PartitionChanger).AddPartitions(bySys[sys]); err != nil {
			return fmt.Errorf("task %s: read %s: %w", name, sys, err)
		}
	}
	if tr.core.caughtUp { // read before its goroutine owns it
		caught[name] = true
	}
	r.startOwn(tr)
	r.startRunner(tr)
	r.log.Info("task added", "task", name, "partitions", len(ssps))
	r.c.opts.Events.taskAdded(taskEvent(tr, "its input partitions appeared"))
	return nil
}

// refreshMetadata reads the current metadata of the streams of ssps into r.meta.
func (r *run) refreshMetadata(ctx context.Context, ssps []system.SystemStreamPartition) error {
	bySystem := map[string][]string{}
	for _, ssp := range ssps {
		if !slices.Contains(bySystem[ssp.System], ssp.Stream) {
			bySystem[ssp.System] = append(bySystem[ssp.System], ssp.Stream)
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(bySystem)) {
		md, err := r.c.systems[sys].Admin().Partitions(ctx, bySystem[sys]...)
		if err != nil {
			return fmt.Errorf("read metadata of %s of system %s: %w", strings.Join(bySystem[sys], ", "), sys, err)
		}
		for ssp, m := range md {
			if jobmodel.Reads(r.c.jc, ssp) {
				r.meta[ssp] = m
			}
		}
	}
	return nil
}

// refresher is implemented by checkpoint managers that answer Read from what they read
// earlier (Kafka's reads its topic at Start): Refresh catches up with what was written
// since, so that a task added while the container runs starts from its latest
// checkpoint.
type refresher interface {
	Refresh(ctx context.Context) error
}

// retire removes task name while the container runs on: its partitions are no longer
// routed to it or read, it finishes its current message, and then, in the
// background, it is committed once more (its outputs flushed first) and closed. The
// control loop hears of the end through evRetired; a failed removal fails the
// container.
func (r *run) retire(ctx context.Context, name, why string) error {
	return r.retireWith(ctx, name, why, true, nil)
}

// retireWith is retire, with a final commit only when commit is set (a task lost to
// another container is not committed), and done, if not nil, called once the task has
// been removed, however that went.
func (r *run) retireWith(ctx context.Context, name, why string, commit bool, done func()) error {
	tr := r.tasks[name]
	delete(r.tasks, name)
	if r.retiringNow == nil {
		r.retiringNow = map[string]bool{}
	}
	r.retiringNow[name] = true
	r.setRoutes(nil, tr)
	tr.halt()
	if tr.box.isPaused() {
		tr.box.resume() // the consumer must not keep them paused for a later owner
	}
	bySys := map[string][]system.SystemStreamPartition{}
	for _, ssp := range tr.core.ssps {
		if !r.c.jc.IsBroadcast(ssp) {
			bySys[ssp.System] = append(bySys[ssp.System], ssp)
		}
	}
	if tr.own != nil && tr.own.cancel != nil {
		tr.own.cancel() // its own consumers: closed below, once its dispatchers stopped
	}
	for _, sys := range slices.Sorted(maps.Keys(bySys)) {
		pc, ok := r.consumers[sys].(system.PartitionChanger)
		if !ok {
			return fmt.Errorf("task %s: the consumer of system %s cannot stop reading partitions while it runs", name, sys)
		}
		if err := pc.RemovePartitions(bySys[sys]...); err != nil {
			return fmt.Errorf("task %s: stop reading %s: %w", name, sys, err)
		}
	}
	commitCtx := context.WithoutCancel(ctx)
	r.retiring.Go(func() {
		if done != nil {
			defer done()
		}
		<-tr.done
		err := tr.err
		if errors.Is(err, errTransactionAborted) {
			err = nil // the reason for a rewind, not a failure of the removal
		}
		err = errors.Join(err, r.closeOwn(tr))
		t := tr.core
		if commit && !t.commitFailed && !t.outputLost.Load() {
			cctx, cancel := context.WithTimeout(commitCtx, r.c.jc.ShutdownTimeout)
			err = errors.Join(err, t.commit(cctx, "removed"))
			cancel()
		}
		err = errors.Join(err, t.close())
		ev := taskEvent(tr, why)
		ev.Err = err
		r.c.opts.Events.taskRemoved(ev)
		if err != nil {
			r.fail(fmt.Errorf("removing task %s: %w", name, err))
			return
		}
		r.log.Info("task removed", "task", name, "why", why)
		r.post(event{kind: evRetired, task: name})
	})
	return nil
}

// PartitionCountChange is one input stream whose partition count changed.
type PartitionCountChange struct {
	Stream   system.SystemStream
	From, To int
}

// PartitionsChangedError stops a container whose inputs gained (or lost) partitions
// while it ran, when it cannot adapt its tasks while running (Reason says why). The
// container stops cleanly with its final commit; restarting it runs tasks for the new
// partitions, which are read from their oldest offset.
type PartitionsChangedError struct {
	Changes []PartitionCountChange
	Reason  string
}

func (e *PartitionsChangedError) describe() string {
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		parts[i] = fmt.Sprintf("%s from %d to %d partitions", c.Stream, c.From, c.To)
	}
	return strings.Join(parts, ", ")
}

func (e *PartitionsChangedError) Error() string {
	return "the partition count of the inputs changed while the job ran (" + e.describe() + ") and " + e.Reason +
		": the container stopped, with a final commit, so that a restart runs tasks for the new partitions; restart it (a new partition is read from its oldest offset)"
}

func partitionCounts(meta map[system.SystemStreamPartition]system.PartitionMetadata) map[system.SystemStream]int {
	n := map[system.SystemStream]int{}
	for ssp := range meta {
		n[ssp.SystemStream]++
	}
	return n
}

func changedCounts(was, now map[system.SystemStream]int) []PartitionCountChange {
	var out []PartitionCountChange
	for ss, n := range was {
		if now[ss] != n {
			out = append(out, PartitionCountChange{Stream: ss, From: n, To: now[ss]})
		}
	}
	slices.SortFunc(out, func(a, b PartitionCountChange) int { return strings.Compare(a.Stream.String(), b.Stream.String()) })
	return out
}

// maxRewinds bounds how many times an exactly-once task is restarted after its
// transaction aborted, each within rewindWindow of the last, before the container
// gives up.
const (
	maxRewinds   = 5
	rewindWindow = time.Minute
)

type rewindCount struct {
	n    int
	last time.Time
}

// rewind restarts an exactly-once task whose transaction aborted: nothing of it is
// visible, so the task is removed without a commit and added again, which reads its
// last committed checkpoint and has its consumers seek there; it reprocesses from
// there. A task whose transactions keep aborting fails the container.
func (r *run) rewind(ctx context.Context, name string, cause error) error {
	if r.rewinds == nil {
		r.rewinds = map[string]rewindCount{}
	}
	rc := r.rewinds[name]
	if time.Since(rc.last) > rewindWindow {
		rc.n = 0 // an abort long after the last one starts the count again
	}
	rc.n++
	rc.last = time.Now()
	r.rewinds[name] = rc
	if rc.n > maxRewinds {
		return fmt.Errorf("task %s: %d transactions aborted within %v of each other: %w", name, maxRewinds, rewindWindow, cause)
	}
	if _, ok := r.tasks[name]; !ok {
		return nil
	}
	r.log.Warn("exactly-once: a transaction aborted; restarting the task from its last committed checkpoint", "task", name, "error", cause, "rewinds", rc.n)
	if err := r.retireWith(ctx, name, "its transaction aborted", false, nil); err != nil {
		return err
	}
	if r.restart == nil {
		r.restart = map[string]bool{}
	}
	r.restart[name] = true
	return nil
}
