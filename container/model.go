package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
)

// Model is a job as the checkpoint tool sees it: every task of every container, the
// partitions each reads, the partitions' current metadata, and the started checkpoint
// manager. Close it when done.
type Model struct {
	Job *job.Config
	// Tasks maps each task name to its partitions, in order.
	Tasks map[string][]system.SystemStreamPartition
	// Meta holds the current metadata of every input partition.
	Meta map[system.SystemStreamPartition]system.PartitionMetadata
	// Checkpoints is the started checkpoint manager, nil when none is configured.
	Checkpoints checkpoint.Manager

	c       *Container
	started []system.System
}

// OpenModel starts the container's systems and checkpoint manager and reads the
// partitions of every input, without running any task.
//
// When it fails, it returns the error that `sluice run` would give for the same
// cause, and leaves nothing started.
func (c *Container) OpenModel(ctx context.Context) (*Model, error) {
	m := &Model{Job: c.jc, c: c, Tasks: map[string][]system.SystemStreamPartition{}, Meta: map[system.SystemStreamPartition]system.PartitionMetadata{}}
	if err := m.open(ctx); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

// open starts what OpenModel starts, noting in m what to close.
func (m *Model) open(ctx context.Context) error {
	c := m.c
	for _, name := range slices.Sorted(maps.Keys(c.systems)) {
		if err := c.systems[name].Start(ctx); err != nil {
			return fmt.Errorf("start system %s: %w", name, err)
		}
		m.started = append(m.started, c.systems[name])
	}
	meta, err := jobMetadata(ctx, c.jc, c.systems)
	if err != nil {
		return err
	}
	m.Meta = meta
	for p, ssps := range taskPartitions(c.jc, meta) {
		m.Tasks[job.TaskName(p)] = ssps
	}
	if c.cpm != nil {
		if err := c.cpm.Start(ctx); err != nil {
			return fmt.Errorf("start checkpoint manager: %w", err)
		}
		m.Checkpoints = c.cpm
	}
	return nil
}

// Admin returns the admin of system sys.
func (m *Model) Admin(sys string) (system.Admin, bool) {
	s, ok := m.c.systems[sys]
	if !ok {
		return nil, false
	}
	return s.Admin(), true
}

// DefaultStarts returns where each partition of task would start without a checkpoint.
// checkpointed holds the input streams of which the job has checkpointed a partition
// in any task: a partition of one of them without a checkpoint is new and starts at
// its oldest offset, as `sluice run` starts it (see offset.Resolve).
func (m *Model) DefaultStarts(task string, checkpointed map[system.SystemStream]bool) (map[system.SystemStreamPartition]offset.Start, error) {
	return offset.Resolve(m.Job, task, m.Tasks[task], checkpoint.Checkpoint{}, checkpointed, m.Meta, m.Admin, m.c.log)
}

// Close stops the checkpoint manager and the systems.
func (m *Model) Close() error {
	var errs []error
	if m.Checkpoints != nil {
		errs = append(errs, m.Checkpoints.Close())
		m.Checkpoints = nil
	}
	for i := len(m.started) - 1; i >= 0; i-- {
		errs = append(errs, m.started[i].Close())
	}
	m.started = nil
	return errors.Join(errs...)
}
