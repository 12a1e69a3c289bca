// Package container runs a job's tasks: one container is one `sluice run` process. It
// groups input partitions into tasks ("Partition N" reads partition N of every input),
// takes its share of tasks (job.container.count, round-robin by partition number),
// decides where each partition starts, feeds each task its messages in order on a
// goroutine of its own, and commits: periodically (task.commit.ms), when a task asks,
// and once more on a clean shutdown.
//
// A commit of one task always runs in this order: (1) snapshot the task's processed
// offsets, (2) flush every producer the task wrote to and wait for acknowledgement,
// (3) write the checkpoint, (4) tell each consumer that implements
// system.CheckpointListener. A message whose processing failed is never checkpointed.
//
// The container is a synchronous task core (one per task: process, window, snapshot,
// commit through a committer) inside a shell that owns every goroutine: a dispatcher
// per consumer, a runner per task, the partition monitor, and the control loop, which
// adds and removes tasks while the others run. Run returns once all of them have
// ended, except a task still busy in its own code when task.shutdown.ms ran out: the
// stop then fails, naming it, and it is not checkpointed.
package container

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// CheckpointFactory builds a checkpoint manager for a job from its systems. It
// validates configuration and connects to nothing.
type CheckpointFactory = jobmodel.CheckpointFactory

// Options configures a container.
type Options struct {
	// ContainerID is this container's index in 0..job.container.count-1. With
	// job.coordinator.factory=kafka it is optional (ContainerIDSet): given, it makes
	// the container a static member of the job's task group, which keeps its tasks
	// across a quick restart.
	ContainerID int
	// ContainerIDSet says ContainerID was given (--container-id).
	ContainerIDSet bool
	// Coordinators maps job.coordinator.factory values other than static (kafka) to
	// their factories.
	Coordinators map[string]CoordinatorFactory
	// ExitWhenCaughtUp stops the container, with its final commit, once every input
	// partition has reached the end offset it had when the container started.
	ExitWhenCaughtUp bool
	// Tasks maps task.class values to task implementations.
	Tasks map[string]task.Definition
	// Systems maps factory short names (kafka, inmem) to system factories. Samza's Java
	// class names are translated to short names before the lookup.
	Systems map[string]system.Factory
	// Checkpoints maps checkpoint factory short names (kafka, filesystem) to factories.
	Checkpoints map[string]CheckpointFactory
	// Aliases are the program's other names for its Systems and Checkpoints, such as
	// Samza class names; see job.Aliases.
	Aliases job.Aliases
	// Logger receives the container's log; nil discards it.
	Logger *slog.Logger
	// StatusInterval is how often a status line is logged; 0 means 5 s, negative never.
	StatusInterval time.Duration
	// BufferedBatches bounds the batches waiting for each task (default 1). When more
	// wait, the consumer waits for the task; when the task takes none for 50 ms, its
	// partitions are paused at their consumers (system.Pauser) until it has taken them
	// all, so a slow task holds only a few polled batches besides the one it is
	// processing, while the other tasks keep receiving theirs; a consumer that cannot
	// pause waits for the task however long it takes. Each batch can pin a whole poll of
	// the consumer (with Kafka, up to max.partition.fetch.bytes per partition), so
	// memory grows with this number, not with the backlog.
	BufferedBatches int
	// Strict makes every configuration warning (see Container.Warnings) an error of New,
	// as job.config.strict=true does.
	Strict bool
	// Events, when set, hears of tasks added and removed, commits and partition
	// changes while the container runs.
	Events *Events
	// Keys lists configuration keys read by the program's own systems or checkpoint
	// managers, as patterns like task.Definition.Keys, so they draw no warning.
	Keys []string
	// Clock tells time for the container's retries (of checkpoint writes); nil is the
	// real clock. Tests set a fake one so that no backoff waits real time.
	Clock Clock
}

// Clock tells the time and waits: the clock of Options.Clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Container is one configured container of a job. Create it with New, then call Run once.
type Container struct {
	opts    Options
	jc      *job.Config
	def     task.Definition
	systems map[string]system.System
	cpm     checkpoint.Manager
	coord   Coordinator // nil with the static assignment
	// declared are the output streams the task declares (task.Definition.Outputs).
	declared []system.SystemStream
	log      *slog.Logger
	stats    stats
	// live is the Run in progress, for Progress; ran is set once Run returned.
	live atomic.Pointer[run]
	ran  atomic.Bool

	warnings []*config.Error
}

// New validates the configuration and builds the container's systems and checkpoint
// manager without connecting to anything. Every configuration problem is reported in
// the returned error at once. Keys that have no effect (unknown, unsupported, given
// twice) are Warnings, or problems too with Options.Strict or job.config.strict; Samza
// keys that mean nothing in Sluice are logged at info.
func New(cfg config.Config, opts Options) (*Container, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = 5 * time.Second
	}
	if opts.BufferedBatches <= 0 {
		opts.BufferedBatches = 1
	}
	var p config.Problems
	factories := jobmodel.Factories{Systems: opts.Systems, Checkpoints: opts.Checkpoints, Aliases: opts.Aliases}
	parts := jobmodel.Build(&p, cfg, factories, opts.Logger)
	jc := parts.Job
	if jc.Coordinator == job.KafkaCoordinator {
		if opts.ContainerIDSet && opts.ContainerID < 0 {
			p.Add("--container-id", fmt.Sprint(opts.ContainerID), "must not be negative")
		}
	} else if jc.ContainerCount >= 1 && (opts.ContainerID < 0 || opts.ContainerID >= jc.ContainerCount) {
		p.Add("--container-id", fmt.Sprint(opts.ContainerID), "must be in 0..%d (job.container.count=%d)", jc.ContainerCount-1, jc.ContainerCount)
	}
	def, known := opts.Tasks[jc.TaskClass]
	if !known {
		p.Add(job.KeyTaskClass, jc.TaskClass, "unknown task; known tasks: %s", strings.Join(slices.Sorted(maps.Keys(opts.Tasks)), ", "))
	} else if def.Check != nil {
		p.AddErr(guard(jc.TaskClass, "checking its configuration", func() error { return def.Check(cfg) }))
	}
	c := &Container{opts: opts, jc: jc, def: def, systems: parts.Systems, log: opts.Logger}
	if known {
		c.declared = checkStreams(&p, cfg, jc, def, c.systems)
	}
	if jc.ExactlyOnce {
		outs := slices.Clone(c.declared)
		if jc.DeadLetter != nil {
			outs = append(outs, *jc.DeadLetter)
		}
		for _, out := range outs {
			if out.System != jc.CheckpointSystem {
				p.Add(job.KeyGuarantee, cfg.GetOr(job.KeyGuarantee, ""), "output %s is not on the checkpoint topic's system %s: exactly-once commits a task's outputs and its checkpoint in one transaction of one Kafka cluster", out, jc.CheckpointSystem)
			}
		}
	}
	keys := jobmodel.CheckKeys(&p, cfg, jc, def.Keys, opts.Keys, c.declared, opts.Strict)
	c.warnings = keys.Warnings
	parts.BuildCheckpoints(&p, cfg, factories, c.log)
	c.cpm = parts.Checkpoints
	if jc.Coordinator == job.KafkaCoordinator && p.Err() == nil {
		f, ok := opts.Coordinators[jc.Coordinator]
		if !ok {
			p.Add(job.KeyCoordinatorFactory, jc.Coordinator, "this program has no %s coordinator", jc.Coordinator)
		} else {
			id := ""
			if opts.ContainerIDSet {
				id = fmt.Sprint(opts.ContainerID)
			}
			co, err := f(jc, c.systems, id, c.log)
			p.AddErr(err)
			c.coord = co
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	for _, e := range keys.Ignored {
		c.log.Info("configuration key ignored", "key", e.Key, "where", e.Where, "why", e.Msg)
	}
	return c, nil
}

// Warnings returns the configuration's keys that have no effect, each naming the key,
// where it is given and why: unknown keys (with the nearest known key when one is
// close), Samza keys for features Sluice lacks, and keys given more than once.
func (c *Container) Warnings() []*config.Error { return slices.Clone(c.warnings) }

// Job returns the container's parsed job configuration.
func (c *Container) Job() *job.Config { return c.jc }

// Stats is a snapshot of a container's counters.
type Stats struct {
	Processed        int64
	Commits          int64
	CheckpointWrites int64
	ListenerErrors   int64
	// OutOfRangeResets counts checkpointed offsets moved at start, plus moves the
	// systems' consumers made while running (see system.ResetCounter).
	OutOfRangeResets int64
	// MessagesSkipped is how many messages out-of-range moves skipped, where known.
	MessagesSkipped int64
	// IgnoredErrors counts the messages skipped because their processing failed with
	// an error listed in task.ignored.exceptions.
	IgnoredErrors  int64
	LastCheckpoint time.Time
}

type stats struct {
	processed, commits, writes, listenerErrors, outOfRange, skipped, ignored atomic.Int64
	lastCheckpoint                                                           atomic.Int64 // unix nanos
}

// Stats returns the container's counters.
func (c *Container) Stats() Stats {
	s := Stats{
		Processed:        c.stats.processed.Load(),
		Commits:          c.stats.commits.Load(),
		CheckpointWrites: c.stats.writes.Load(),
		ListenerErrors:   c.stats.listenerErrors.Load(),
		OutOfRangeResets: c.stats.outOfRange.Load(),
		MessagesSkipped:  c.stats.skipped.Load(),
		IgnoredErrors:    c.stats.ignored.Load(),
	}
	for _, sys := range c.systems {
		if rc, ok := sys.(system.ResetCounter); ok {
			n, skipped := rc.OutOfRangeResets()
			s.OutOfRangeResets += n
			s.MessagesSkipped += skipped
		}
	}
	if n := c.stats.lastCheckpoint.Load(); n != 0 {
		s.LastCheckpoint = time.Unix(0, n)
	}
	return s
}

// TaskPanicError reports a panic in task code, contained by the container.
type TaskPanicError struct {
	Task  string
	Where string
	Value any
	Stack string
}

func (e *TaskPanicError) Error() string {
	return fmt.Sprintf("task %s panicked %s: %v", e.Task, e.Where, e.Value)
}

// newTaskImpl creates a task instance, turning a panic into an error.
func newTaskImpl(newTask task.Factory, name string, cfg config.Config) (impl task.StreamTask, err error) {
	err = guard(name, "in its constructor", func() (err error) {
		impl, err = newTask(name, cfg)
		return err
	})
	if err == nil && impl == nil {
		err = errors.New("its constructor returned no task and no error")
	}
	return impl, err
}
