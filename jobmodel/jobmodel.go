// Package jobmodel builds a job from its configuration without running it: the parsed
// job, its systems and its checkpoint manager (built, not connected), and, opened, the
// tasks its partitions make with each partition's current metadata. The container runs
// a job from these parts; the checkpoint tool and `sluice status` open a Model of them,
// whatever task the job runs, even one this program does not know.
//
// Tasks are grouped by partition number: task "Partition N" reads partition N of every
// input, and every broadcast partition (task.broadcast.inputs).
package jobmodel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
)

// CheckpointFactory builds a checkpoint manager for a job from its systems. It
// validates configuration and connects to nothing.
type CheckpointFactory func(jc *job.Config, systems map[string]system.System, logger *slog.Logger) (checkpoint.Manager, error)

// Factories are what a program can build systems and checkpoint managers with.
type Factories struct {
	// Systems maps factory short names (kafka, inmem) to system factories.
	Systems map[string]system.Factory
	// Checkpoints maps checkpoint factory short names (kafka, filesystem) to factories.
	Checkpoints map[string]CheckpointFactory
	// Aliases are the program's other names for them, such as Samza class names.
	Aliases job.Aliases
}

// Parts are a job's parsed configuration and what was built of it.
type Parts struct {
	Job *job.Config
	// Systems holds every system that could be built, by name.
	Systems map[string]system.System
	// Checkpoints is the checkpoint manager, nil when none is configured (or it could
	// not be built).
	Checkpoints checkpoint.Manager

	parsed    bool // the job configuration has no problem
	systemsOK bool // every system was built
}

// Build parses cfg and builds each configured system. Every problem is added to p;
// the parts of a configuration with problems are for reporting more problems only.
func Build(p *config.Problems, cfg config.Config, f Factories, logger *slog.Logger) *Parts {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	jc, err := job.ParseWithAliases(cfg, f.Aliases)
	p.AddErr(err)
	ps := &Parts{Job: jc, Systems: map[string]system.System{}, parsed: err == nil, systemsOK: true}
	for _, name := range slices.Sorted(maps.Keys(jc.SystemFactories)) {
		fname := jc.SystemFactories[name]
		sf, ok := f.Systems[fname]
		if !ok {
			p.Add("systems."+name+".samza.factory", cfg.GetOr("systems."+name+".samza.factory", ""), "unknown system factory; known: %s", strings.Join(slices.Sorted(maps.Keys(f.Systems)), ", "))
			ps.systemsOK = false
			continue
		}
		s, err := sf(name, cfg, logger)
		if err != nil {
			p.AddErr(err)
			ps.systemsOK = false
			continue
		}
		ps.Systems[name] = s
	}
	return ps
}

// BuildCheckpoints builds the job's checkpoint manager, if it has one. The manager's
// own keys are checked along with everything else; it is built only over a valid job
// and systems, which it depends on.
func (ps *Parts) BuildCheckpoints(p *config.Problems, cfg config.Config, f Factories, logger *slog.Logger) {
	jc := ps.Job
	if jc.CheckpointFactory == "" {
		return
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cf, ok := f.Checkpoints[jc.CheckpointFactory]
	switch {
	case !ok:
		p.Add(job.KeyCheckpointFactory, cfg.GetOr(job.KeyCheckpointFactory, ""), "unknown checkpoint manager; known: %s (Samza's class names for them work too)", strings.Join(slices.Sorted(maps.Keys(f.Checkpoints)), ", "))
	case ps.parsed && ps.systemsOK:
		m, err := cf(jc, ps.Systems, logger)
		p.AddErr(err)
		ps.Checkpoints = m
	}
}

// Metadata reads the partition metadata of every partition the job reads: every
// partition of its inputs, and its broadcast partitions (task.broadcast.inputs), of
// which a stream that is no input gives only those. The systems must be started.
func Metadata(ctx context.Context, jc *job.Config, systems map[string]system.System) (map[system.SystemStreamPartition]system.PartitionMetadata, error) {
	bySystem := map[string][]string{}
	for _, ss := range jc.ReadStreams() {
		bySystem[ss.System] = append(bySystem[ss.System], ss.Stream)
	}
	meta := map[system.SystemStreamPartition]system.PartitionMetadata{}
	for _, sys := range slices.Sorted(maps.Keys(bySystem)) {
		streams := bySystem[sys]
		md, err := systems[sys].Admin().Partitions(ctx, streams...)
		if err != nil {
			return nil, fmt.Errorf("read metadata of inputs %s of system %s: %w", strings.Join(streams, ", "), sys, err)
		}
		for ssp, m := range md {
			if Reads(jc, ssp) {
				meta[ssp] = m
			}
		}
	}
	var missing []string
	for _, ssp := range jc.Broadcast {
		if _, ok := meta[ssp]; !ok {
			missing = append(missing, ssp.String())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: no such partition: %s", job.KeyBroadcastInputs, strings.Join(missing, ", "))
	}
	return meta, nil
}

// Reads reports whether the job reads ssp: a partition of an input, or a broadcast
// partition (other partitions of a stream that is only a broadcast input are not).
func Reads(jc *job.Config, ssp system.SystemStreamPartition) bool {
	return slices.Contains(jc.Inputs, ssp.SystemStream) || jc.IsBroadcast(ssp)
}

// TaskPartitions groups partitions into tasks: task "Partition N" reads partition N of
// every input, in order, and every broadcast partition.
func TaskPartitions(jc *job.Config, meta map[system.SystemStreamPartition]system.PartitionMetadata) map[int32][]system.SystemStreamPartition {
	byPartition := map[int32][]system.SystemStreamPartition{}
	for ssp := range meta {
		if !jc.IsBroadcast(ssp) {
			byPartition[ssp.Partition] = append(byPartition[ssp.Partition], ssp)
		}
	}
	for p, ssps := range byPartition {
		ssps = append(ssps, jc.Broadcast...)
		slices.SortFunc(ssps, system.SystemStreamPartition.Compare)
		byPartition[p] = ssps
	}
	return byPartition
}

// Model is a job as tools see it: every task of every container, the partitions each
// reads, the partitions' current metadata, and the started checkpoint manager. Close
// it when done.
type Model struct {
	Job *job.Config
	// Tasks maps each task name to its partitions, in order.
	Tasks map[string][]system.SystemStreamPartition
	// Meta holds the current metadata of every input partition.
	Meta map[system.SystemStreamPartition]system.PartitionMetadata
	// Checkpoints is the started checkpoint manager, nil when none is configured.
	Checkpoints checkpoint.Manager

	systems map[string]system.System
	log     *slog.Logger
	started []system.System
	cpm     checkpoint.Manager
}

// Open starts the parts' systems and checkpoint manager and reads the partitions of
// every input, without running any task. When it fails, it returns the error that
// `sluice run` would give for the same cause, and leaves nothing started.
func Open(ctx context.Context, ps *Parts, logger *slog.Logger) (*Model, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Model{Job: ps.Job, Tasks: map[string][]system.SystemStreamPartition{}, systems: ps.Systems, cpm: ps.Checkpoints, log: logger}
	if err := m.open(ctx); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

func (m *Model) open(ctx context.Context) error {
	for _, name := range slices.Sorted(maps.Keys(m.systems)) {
		if err := m.systems[name].Start(ctx); err != nil {
			return fmt.Errorf("start system %s: %w", name, err)
		}
		m.started = append(m.started, m.systems[name])
	}
	meta, err := Metadata(ctx, m.Job, m.systems)
	if err != nil {
		return err
	}
	m.Meta = meta
	for p, ssps := range TaskPartitions(m.Job, meta) {
		m.Tasks[job.TaskName(p)] = ssps
	}
	if m.cpm != nil {
		if err := m.cpm.Start(ctx); err != nil {
			return fmt.Errorf("start checkpoint manager: %w", err)
		}
		m.Checkpoints = m.cpm
	}
	return nil
}

// Admin returns the admin of system sys.
func (m *Model) Admin(sys string) (system.Admin, bool) {
	s, ok := m.systems[sys]
	if !ok {
		return nil, false
	}
	return s.Admin(), true
}

// System returns the started system named name.
func (m *Model) System(name string) (system.System, bool) {
	s, ok := m.systems[name]
	return s, ok
}

// DefaultStarts returns where each partition of task would start without a checkpoint.
// checkpointed holds the input streams of which the job has checkpointed a partition
// in any task: a partition of one of them without a checkpoint is new and starts at
// its oldest offset, as `sluice run` starts it (see offset.Resolve).
func (m *Model) DefaultStarts(task string, checkpointed map[system.SystemStream]bool) (map[system.SystemStreamPartition]offset.Start, error) {
	return offset.Resolve(m.Job, task, m.Tasks[task], checkpoint.Checkpoint{}, checkpointed, m.Meta, m.Admin, m.log)
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
