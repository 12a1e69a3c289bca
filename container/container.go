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
// The container owns every goroutine it starts; Run returns only after all have ended.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// CheckpointFactory builds a checkpoint manager for a job from its systems. It
// validates configuration and connects to nothing.
type CheckpointFactory func(jc *job.Config, systems map[string]system.System, logger *slog.Logger) (checkpoint.Manager, error)

// Options configures a container.
type Options struct {
	// ContainerID is this container's index in 0..job.container.count-1.
	ContainerID int
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
	// Keys lists configuration keys read by the program's own systems or checkpoint
	// managers, as patterns like task.Definition.Keys, so they draw no warning.
	Keys []string
}

// Container is one configured container of a job. Create it with New, then call Run once.
type Container struct {
	opts    Options
	jc      *job.Config
	def     task.Definition
	systems map[string]system.System
	cpm     checkpoint.Manager
	// declared are the output streams the task declares (task.Definition.Outputs).
	declared []system.SystemStream
	log      *slog.Logger
	stats    stats

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
	jc, err := job.Parse(cfg)
	var p config.Problems
	p.AddErr(err)
	if jc.ContainerCount >= 1 && (opts.ContainerID < 0 || opts.ContainerID >= jc.ContainerCount) {
		p.Add("--container-id", fmt.Sprint(opts.ContainerID), "must be in 0..%d (job.container.count=%d)", jc.ContainerCount-1, jc.ContainerCount)
	}
	def, known := opts.Tasks[jc.TaskClass]
	if !known {
		p.Add(job.KeyTaskClass, jc.TaskClass, "unknown task; known tasks: %s", strings.Join(slices.Sorted(maps.Keys(opts.Tasks)), ", "))
	} else if def.Check != nil {
		p.AddErr(guard(jc.TaskClass, "checking its configuration", func() error { return def.Check(cfg) }))
	}
	c := &Container{opts: opts, jc: jc, def: def, systems: map[string]system.System{}, log: opts.Logger}
	systemsOK := true
	for _, name := range slices.Sorted(maps.Keys(jc.SystemFactories)) {
		fname := jc.SystemFactories[name]
		f, ok := opts.Systems[fname]
		if !ok {
			p.Add("systems."+name+".samza.factory", cfg.GetOr("systems."+name+".samza.factory", ""), "unknown system factory; known: %s", strings.Join(slices.Sorted(maps.Keys(opts.Systems)), ", "))
			systemsOK = false
			continue
		}
		s, err := f(name, cfg, c.log)
		if err != nil {
			p.AddErr(err)
			systemsOK = false
			continue
		}
		c.systems[name] = s
	}
	if known {
		c.declared = checkStreams(&p, cfg, jc, def, c.systems)
	}
	keys := job.CheckKeys(cfg, def.Keys, opts.Keys)
	if opts.Strict || jc.Strict {
		for _, w := range keys.Warnings {
			e := *w
			e.Msg += " (an error, as configuration checking is strict)"
			p.AddErr(&e)
		}
	} else {
		c.warnings = keys.Warnings
	}
	if jc.CheckpointFactory != "" {
		f, ok := opts.Checkpoints[jc.CheckpointFactory]
		switch {
		case !ok:
			p.Add(job.KeyCheckpointFactory, cfg.GetOr(job.KeyCheckpointFactory, ""), "unknown checkpoint manager; known: %s (Samza's class names for them work too)", strings.Join(slices.Sorted(maps.Keys(opts.Checkpoints)), ", "))
		case err == nil && systemsOK:
			// The manager's own keys are checked along with everything else; it is
			// built only over a valid job and systems, which it depends on.
			m, err := f(jc, c.systems, c.log)
			p.AddErr(err)
			c.cpm = m
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

// runLocker is implemented by checkpoint managers that mark a job as running, so the
// checkpoint tool refuses to rewrite checkpoints under it.
type runLocker interface {
	AcquireRunLock() (io.Closer, error)
}

type runLockerCtx interface {
	AcquireRunLock(ctx context.Context) (io.Closer, error)
}

// assign returns the partitions of the tasks this container runs.
func assign(partitions []int32, count, id int) []int32 {
	sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
	var mine []int32
	for i, p := range partitions {
		if i%count == id {
			mine = append(mine, p)
		}
	}
	return mine
}

// Run runs the container until ctx is done (a clean stop: exit code 0), a task asks to
// shut down, --exit-when-caught-up is satisfied, or something fails. It returns nil
// after a clean stop.
func (c *Container) Run(ctx context.Context) (err error) {
	r := &run{c: c, log: c.log, events: make(chan event, 64), failures: make(chan error, 1), stop: make(chan struct{})}
	defer func() { err = errors.Join(err, r.close()) }()
	err = r.run(ctx)
	if err != nil && !r.looping && ctx.Err() != nil {
		// A signal during start-up is a clean stop: nothing was processed, and
		// nothing was checkpointed.
		r.log.Info("container stopped during start-up by a signal; nothing was processed or checkpointed")
		r.log.Debug("start-up step interrupted by the signal", "step", err)
		return nil
	}
	return err
}

type eventKind int

const (
	evCommitAll eventKind = iota
	evShutdownVote
	evShutdownAll
	evCaughtUp
)

type event struct {
	kind eventKind
	task *taskInstance
}

// run holds the state of one Run call.
type run struct {
	c         *Container
	log       *slog.Logger
	started   []system.System
	tasks     []*taskInstance
	consumers map[string]system.Consumer
	meta      map[system.SystemStreamPartition]system.PartitionMetadata
	runLock   io.Closer
	cpmOpen   bool
	looping   bool // the control loop was entered: start-up is over

	events   chan event
	failures chan error // capacity 1: the first asynchronous failure (see fail)
	stop     chan struct{}
	stopOnce sync.Once
	stopping atomic.Bool
}

func (r *run) admin(sys string) (system.Admin, bool) {
	s, ok := r.c.systems[sys]
	if !ok {
		return nil, false
	}
	return s.Admin(), true
}

func (r *run) run(ctx context.Context) error {
	c := r.c
	if c.jc.CheckpointFactory == "" {
		r.log.Warn("no checkpoint manager configured (task.checkpoint.factory): progress is not saved, every start begins at the configured default offsets")
	}
	for _, name := range slices.Sorted(maps.Keys(c.systems)) {
		if err := c.systems[name].Start(ctx); err != nil {
			return fmt.Errorf("start system %s: %w", name, err)
		}
		r.started = append(r.started, c.systems[name])
	}

	// Partition metadata of every input stream.
	r.meta = map[system.SystemStreamPartition]system.PartitionMetadata{}
	bySystem := map[string][]string{}
	for _, in := range c.jc.Inputs {
		bySystem[in.System] = append(bySystem[in.System], in.Stream)
	}
	for sys, streams := range bySystem {
		md, err := c.systems[sys].Admin().Partitions(ctx, streams...)
		if err != nil {
			return fmt.Errorf("read metadata of inputs %s of system %s: %w", strings.Join(streams, ", "), sys, err)
		}
		maps.Copy(r.meta, md)
	}
	byPartition := map[int32][]system.SystemStreamPartition{}
	for ssp := range r.meta {
		byPartition[ssp.Partition] = append(byPartition[ssp.Partition], ssp)
	}
	mine := assign(slices.Collect(maps.Keys(byPartition)), c.jc.ContainerCount, c.opts.ContainerID)
	r.log.Info("container starting", "job", c.jc.Name, "job_id", c.jc.ID, "container", c.opts.ContainerID,
		"containers", c.jc.ContainerCount, "tasks", len(mine), "of_tasks", len(byPartition))
	if err := r.checkOutputs(ctx); err != nil {
		return err
	}

	if c.cpm != nil {
		if err := c.cpm.Start(ctx); err != nil {
			return fmt.Errorf("start checkpoint manager: %w", err)
		}
		r.cpmOpen = true
		var err error
		switch l := c.cpm.(type) {
		case runLocker:
			r.runLock, err = l.AcquireRunLock()
		case runLockerCtx:
			r.runLock, err = l.AcquireRunLock(ctx)
		}
		if err != nil {
			return fmt.Errorf("mark the job as running: %w", err)
		}
	}

	cps := make(map[int32]checkpoint.Checkpoint, len(mine))
	for _, p := range mine {
		cp, err := r.readCheckpoint(ctx, job.TaskName(p))
		if err != nil {
			return err
		}
		cps[p] = cp
	}
	known, err := r.checkpointedStreams(ctx, mine, byPartition, cps)
	if err != nil {
		return err
	}
	for _, p := range mine {
		ssps := byPartition[p]
		slices.SortFunc(ssps, system.SystemStreamPartition.Compare)
		t, err := r.newTask(ctx, p, ssps, cps[p], known)
		if err != nil {
			return err
		}
		r.tasks = append(r.tasks, t)
	}
	if len(r.tasks) == 0 {
		r.log.Warn("this container has no tasks: there are fewer input partitions than containers")
		if c.opts.ExitWhenCaughtUp {
			return nil
		}
		// Idle, but an input that gains partitions may give this container tasks.
		var wg sync.WaitGroup
		defer wg.Wait()
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() { r.monitorPartitions(mctx) })
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.failures:
			return err
		}
	}

	if err := r.startConsumers(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		r.log.Info("container stopped during start-up by a signal; nothing was processed or checkpointed")
		return nil
	}
	r.looping = true
	return r.loop(ctx)
}

// outputs returns the streams the job is known to write to: the task's declared
// outputs and the dead-letter stream.
func (c *Container) outputs() []system.SystemStream {
	out := slices.Clone(c.declared)
	if c.jc.DeadLetter != nil {
		out = append(out, *c.jc.DeadLetter)
	}
	return out
}

// checkOutputs makes sure every known output stream exists before anything is
// processed, and logs its partition count: a missing output would otherwise fail only
// at the first delivery.
func (r *run) checkOutputs(ctx context.Context) error {
	bySystem := map[string][]string{}
	for _, ss := range r.c.outputs() {
		if !slices.Contains(bySystem[ss.System], ss.Stream) {
			bySystem[ss.System] = append(bySystem[ss.System], ss.Stream)
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(bySystem)) {
		for _, stream := range bySystem[sys] {
			md, err := r.c.systems[sys].Admin().Partitions(ctx, stream)
			if err != nil {
				return fmt.Errorf("output stream %s.%s: %w", sys, stream, err)
			}
			r.log.Info("output stream", "stream", sys+"."+stream, "partitions", len(md))
		}
	}
	return nil
}

// readCheckpoint returns the task's checkpoint: empty when it has none, or when the
// job has no checkpoint manager.
func (r *run) readCheckpoint(ctx context.Context, name string) (checkpoint.Checkpoint, error) {
	if r.c.cpm == nil {
		return checkpoint.Checkpoint{}, nil
	}
	cp, err := r.c.cpm.Read(ctx, name)
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
		return checkpoint.Checkpoint{}, nil
	case err != nil:
		return checkpoint.Checkpoint{}, fmt.Errorf("read checkpoint of task %s: %w", name, err)
	}
	return cp, nil
}

// checkpointedStreams returns the input streams of which the job has checkpointed some
// partition, as far as this container's tasks need to know it: a partition of such a
// stream without a checkpoint appeared after the job started reading the stream, and
// is read from its oldest offset (see package offset). Only when one of this
// container's tasks has no checkpoint of one of its partitions are the checkpoints of
// other containers' tasks read, until each such stream is settled.
func (r *run) checkpointedStreams(ctx context.Context, mine []int32, byPartition map[int32][]system.SystemStreamPartition, cps map[int32]checkpoint.Checkpoint) (map[system.SystemStream]bool, error) {
	if r.c.cpm == nil {
		return nil, nil
	}
	known := map[system.SystemStream]bool{}
	for _, cp := range cps {
		for ssp := range cp.Offsets {
			known[ssp.SystemStream] = true
		}
	}
	open := map[system.SystemStream]bool{}
	for _, p := range mine {
		for _, ssp := range byPartition[p] {
			if _, ok := cps[p].Offsets[ssp]; !ok && !known[ssp.SystemStream] {
				open[ssp.SystemStream] = true
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(byPartition)) {
		if len(open) == 0 {
			break
		}
		if _, ok := cps[p]; ok {
			continue // one of ours, already read
		}
		cp, err := r.readCheckpoint(ctx, job.TaskName(p))
		if err != nil {
			return nil, err
		}
		for ssp := range cp.Offsets {
			known[ssp.SystemStream] = true
			delete(open, ssp.SystemStream)
		}
	}
	return known, nil
}

// newTask resolves the task's starting offsets from its checkpoint, creates the user's
// task and initialises it.
func (r *run) newTask(ctx context.Context, p int32, ssps []system.SystemStreamPartition, cp checkpoint.Checkpoint, checkpointed map[system.SystemStream]bool) (*taskInstance, error) {
	c := r.c
	name := job.TaskName(p)
	log := r.log.With("task", name)
	starts, err := offset.Resolve(c.jc, name, ssps, cp, checkpointed, r.meta, r.admin, log)
	if err != nil {
		return nil, err
	}
	impl, err := newTaskImpl(c.def.New, name, c.jc.Raw)
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", name, err)
	}
	t := &taskInstance{
		r: r, name: name, ssps: ssps, impl: impl, log: log,
		starts:   map[system.SystemStreamPartition]offset.Start{},
		last:     map[system.SystemStreamPartition]string{},
		written:  cp.Offsets,
		box:      newMailbox(c.opts.BufferedBatches),
		commitCh: make(chan struct{}, 1),
		pub:      map[system.SystemStreamPartition]string{},
	}
	maps.Copy(t.starts, starts)
	if it, ok := impl.(task.InitableTask); ok {
		if err := t.guard("in Init", func() error { return it.Init(ctx, initContext{t}) }); err != nil {
			return nil, fmt.Errorf("init task %s: %w", name, err)
		}
	}
	for _, ssp := range ssps {
		s := t.starts[ssp]
		attrs := []any{"partition", ssp.String(), "offset", s.Offset, "reason", string(s.Reason), "detail", s.Detail}
		switch s.Reason {
		case offset.FromOutOfRange:
			c.stats.outOfRange.Add(1)
			if s.Gap > 0 {
				c.stats.skipped.Add(s.Gap)
			}
			log.Warn("starting offset moved: checkpoint out of range", append(attrs, "gap", s.Gap)...)
		case offset.FromNewPartition:
			log.Warn("starting offset of a partition added after the job started: reading it from its oldest offset", attrs...)
		default:
			log.Info("starting offset", attrs...)
		}
	}
	t.initCaughtUp()
	return t, nil
}

func (r *run) startConsumers(ctx context.Context) error {
	r.consumers = map[string]system.Consumer{}
	for _, t := range r.tasks {
		for _, ssp := range t.ssps {
			cons, ok := r.consumers[ssp.System]
			if !ok {
				var err error
				cons, err = r.c.systems[ssp.System].NewConsumer()
				if err != nil {
					return fmt.Errorf("create consumer of system %s: %w", ssp.System, err)
				}
				r.consumers[ssp.System] = cons
			}
			if err := cons.Register(ssp, t.starts[ssp].Offset); err != nil {
				return fmt.Errorf("register %s at offset %s: %w", ssp, t.starts[ssp].Offset, err)
			}
		}
	}
	for _, t := range r.tasks {
		bySys := map[string][]system.SystemStreamPartition{}
		for _, ssp := range t.ssps {
			bySys[ssp.System] = append(bySys[ssp.System], ssp)
		}
		for _, sys := range slices.Sorted(maps.Keys(bySys)) {
			if p, ok := r.consumers[sys].(system.Pauser); ok {
				t.box.pausers = append(t.box.pausers, pauseGroup{p: p, ssps: bySys[sys]})
			}
		}
	}
	for sys, cons := range r.consumers {
		if err := cons.Start(ctx); err != nil {
			return fmt.Errorf("start consumer of system %s: %w", sys, err)
		}
	}
	return nil
}

func (r *run) requestStop() {
	r.stopOnce.Do(func() {
		r.stopping.Store(true)
		close(r.stop)
	})
}

// fail reports a failure noticed outside the task and dispatcher goroutines (a
// producer's delivery callback) to the control loop without blocking; the first one
// stops the container.
func (r *run) fail(err error) {
	select {
	case r.failures <- err:
	default:
	}
}

// post delivers an event to the control loop unless the container is stopping.
func (r *run) post(e event) {
	select {
	case r.events <- e:
	case <-r.stop:
	}
}

// loop runs the dispatchers and the tasks and handles their events until the container stops.
func (r *run) loop(ctx context.Context) error {
	pollCtx, cancelPoll := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPoll()
	route := map[system.SystemStreamPartition]*taskInstance{}
	for _, t := range r.tasks {
		for _, ssp := range t.ssps {
			route[ssp] = t
		}
	}

	// Tasks already at their end count now, before their goroutines own caughtUp; the
	// others report through evCaughtUp.
	caughtUp := 0
	for _, t := range r.tasks {
		if t.caughtUp {
			caughtUp++
		}
	}
	var wg sync.WaitGroup
	errCh := make(chan error, len(r.tasks)+len(r.consumers))
	taskCtx := context.WithoutCancel(ctx) // in-flight messages finish even after a signal
	for sys, cons := range r.consumers {
		wg.Go(func() {
			if err := r.dispatch(pollCtx, sys, cons, route); err != nil {
				errCh <- err
			}
		})
	}
	for _, t := range r.tasks {
		wg.Go(func() {
			if err := t.run(taskCtx); err != nil {
				errCh <- err
			}
		})
	}
	wg.Go(func() { r.monitorPartitions(pollCtx) })

	var status <-chan time.Time
	if r.c.opts.StatusInterval > 0 {
		tk := time.NewTicker(r.c.opts.StatusInterval)
		defer tk.Stop()
		status = tk.C
	}
	st := newStatus(r)
	votes := map[*taskInstance]bool{}
	var failure error
	reason := ""
	if r.c.opts.ExitWhenCaughtUp && caughtUp == len(r.tasks) {
		reason = "every input partition was already at its end"
	}
	for reason == "" && failure == nil {
		select {
		case <-ctx.Done():
			reason = "signal"
		case err := <-errCh:
			failure = err
		case err := <-r.failures:
			failure = err
		case e := <-r.events:
			switch e.kind {
			case evCommitAll:
				for _, t := range r.tasks {
					t.requestCommit()
				}
			case evShutdownVote:
				votes[e.task] = true
				if len(votes) == len(r.tasks) {
					reason = "every task asked to shut down"
				}
			case evShutdownAll:
				reason = "task " + e.task.name + " asked to shut down the container"
			case evCaughtUp:
				caughtUp++
				if r.c.opts.ExitWhenCaughtUp && caughtUp == len(r.tasks) {
					reason = "every input partition reached the end offset it had at start (--exit-when-caught-up)"
				}
			}
		case <-status:
			st.report(ctx)
		}
	}
	if failure != nil {
		r.log.Error("container failing", "error", failure)
	} else {
		r.log.Info("container stopping", "reason", reason)
	}
	r.requestStop()
	cancelPoll()
	wg.Wait()
	close(errCh)
	for err := range errCh {
		if failure == nil {
			failure = err
		} else if !errors.Is(failure, err) {
			r.log.Error("another failure while stopping", "error", err)
		}
	}

	// Final commit: every task's progress up to its last successfully processed message.
	if r.c.jc.CommitOnShutdown {
		var cwg sync.WaitGroup
		errs := make([]error, len(r.tasks))
		for i, t := range r.tasks {
			if t.commitFailed || t.outputLost.Load() {
				// Its outputs may not all have been delivered: checkpointing it now
				// could cover lost messages. It restarts from its last checkpoint.
				t.log.Warn("no final commit for this task: an earlier commit of it failed, so it restarts from its last checkpoint")
				continue
			}
			cwg.Go(func() { errs[i] = t.commit(context.WithoutCancel(ctx), "shutdown") })
		}
		cwg.Wait()
		if err := errors.Join(errs...); err != nil {
			failure = errors.Join(failure, fmt.Errorf("final commit: %w", err))
		}
	}
	st.report(context.WithoutCancel(ctx))
	s := r.c.Stats()
	r.log.Info("container stopped", "processed", s.Processed, "commits", s.Commits, "checkpoint_writes", s.CheckpointWrites,
		"listener_errors", s.ListenerErrors, "out_of_range_resets", s.OutOfRangeResets, "messages_skipped", s.MessagesSkipped,
		"ignored_errors", s.IgnoredErrors)
	return failure
}

// dispatch polls one consumer and hands each run of messages of one partition to its
// task. A task that falls behind gets its partitions paused (see mailbox); with a
// consumer that cannot pause, dispatch waits for the task instead.
func (r *run) dispatch(ctx context.Context, sys string, cons system.Consumer, route map[system.SystemStreamPartition]*taskInstance) error {
	_, canPause := cons.(system.Pauser)
	for {
		envs, err := cons.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consumer of system %s: %w", sys, err)
		}
		for i := 0; i < len(envs); {
			ssp := envs[i].SSP
			j := i + 1
			for j < len(envs) && envs[j].SSP == ssp {
				j++
			}
			t, ok := route[ssp]
			if !ok {
				return fmt.Errorf("consumer of system %s returned %s, which no task of this container reads", sys, ssp)
			}
			if t.box.put(envs[i:j:j]) {
				if !r.waitForRoom(t, canPause) {
					return nil
				}
			}
			i = j
		}
	}
}

// waitForRoom waits until t's mailbox has room. With a consumer that can pause, it
// waits at most pauseAfter, then pauses t's partitions and returns (see mailbox). It
// returns false when the container stops.
func (r *run) waitForRoom(t *taskInstance, canPause bool) bool {
	var timeout <-chan time.Time
	if canPause {
		if t.box.isPaused() {
			return true // a batch that was on its way when the task was paused
		}
		tm := time.NewTimer(pauseAfter)
		defer tm.Stop()
		timeout = tm.C
	}
	for t.box.waiting() > t.box.limit {
		select {
		case <-t.box.room:
		case <-timeout:
			if t.box.pause() {
				return true
			}
			timeout = nil // some of its partitions cannot pause: wait after all
		case <-r.stop:
			return false
		}
	}
	return true
}

// monitorPartitions compares, every job.partition.monitor.ms, the partition count of
// each input with the one the container started with (Samza's partition-count
// monitor). When one changed, the container fails with a *PartitionsChangedError:
// it stops cleanly, with its final commit, so that a restart runs tasks for the new
// partitions and reads them from their oldest offset. A failed lookup is logged and
// tried again at the next tick.
func (r *run) monitorPartitions(ctx context.Context) {
	started := partitionCounts(r.meta)
	bySystem := map[string][]string{}
	for _, in := range r.c.jc.Inputs {
		bySystem[in.System] = append(bySystem[in.System], in.Stream)
	}
	tk := time.NewTicker(r.c.jc.PartitionMonitorInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		now := map[system.SystemStreamPartition]system.PartitionMetadata{}
		failed := false
		for _, sys := range slices.Sorted(maps.Keys(bySystem)) {
			lctx, cancel := context.WithTimeout(ctx, r.c.jc.PartitionMonitorInterval)
			md, err := r.c.systems[sys].Admin().Partitions(lctx, bySystem[sys]...)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Warn("partition monitor: could not read the partition counts of the inputs; trying again later", "system", sys, "error", err)
				failed = true
				break
			}
			maps.Copy(now, md)
		}
		if failed {
			continue
		}
		if changed := changedCounts(started, partitionCounts(now)); len(changed) > 0 {
			err := &PartitionsChangedError{Changes: changed}
			r.log.Warn("partition monitor: input partitions changed while the job ran", "changes", err.describe())
			r.fail(err)
			return
		}
	}
}

// PartitionCountChange is one input stream whose partition count changed.
type PartitionCountChange struct {
	Stream   system.SystemStream
	From, To int
}

// PartitionsChangedError stops a container whose inputs gained (or lost) partitions
// while it ran. The container stops cleanly with its final commit; restarting it runs
// tasks for the new partitions, which are read from their oldest offset.
type PartitionsChangedError struct {
	Changes []PartitionCountChange
}

func (e *PartitionsChangedError) describe() string {
	parts := make([]string, len(e.Changes))
	for i, c := range e.Changes {
		parts[i] = fmt.Sprintf("%s from %d to %d partitions", c.Stream, c.From, c.To)
	}
	return strings.Join(parts, ", ")
}

func (e *PartitionsChangedError) Error() string {
	return "the partition count of the inputs changed while the job ran (" + e.describe() + "): the container stopped, with a final commit, " +
		"so that a restart runs tasks for the new partitions; restart it (a new partition is read from its oldest offset)"
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

// close releases everything Run acquired, in reverse order.
func (r *run) close() error {
	var errs []error
	for _, t := range r.tasks {
		errs = append(errs, t.close())
	}
	for sys, cons := range r.consumers {
		if err := cons.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close consumer of system %s: %w", sys, err))
		}
	}
	if r.runLock != nil {
		errs = append(errs, r.runLock.Close())
	}
	if r.cpmOpen {
		if err := r.c.cpm.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close checkpoint manager: %w", err))
		}
	}
	for i := len(r.started) - 1; i >= 0; i-- {
		errs = append(errs, r.started[i].Close())
	}
	return errors.Join(errs...)
}
