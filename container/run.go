package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
)

// Run runs the container until ctx is done (a clean stop: exit code 0), a task asks to
// shut down, --exit-when-caught-up is satisfied, or something fails. It returns nil
// after a clean stop.
func (c *Container) Run(ctx context.Context) (err error) {
	r := &run{c: c, log: c.log, events: make(chan event, 64), failures: make(chan error, 16), stop: make(chan struct{}),
		tasks: map[string]*taskRunner{}, consumers: map[string]system.Consumer{}, assign: staticAssignment{count: c.jc.ContainerCount, id: c.opts.ContainerID}, coord: c.coord}
	r.route.Store(&routeTable{})
	r.began = time.Now()
	c.live.Store(r)
	defer func() {
		r.live.stopping.Store(true)
		err = errors.Join(err, r.close())
		c.ran.Store(true)
		c.live.Store(nil)
	}()
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
	evPartitions // the partition monitor found new input metadata
	evRetired    // a removed task finished
	evGroup      // the coordinator assigned, revoked or lost tasks
	evRewind     // an exactly-once task's transaction aborted: restart it from its checkpoint
)

type event struct {
	kind  eventKind
	task  string
	meta  map[system.SystemStreamPartition]system.PartitionMetadata // evPartitions
	group *groupChange                                              // evGroup
	err   error                                                     // evRewind
}

// routeTable maps each partition to the task that reads it. Dispatchers read the
// current table without locking; the control loop replaces it whenever tasks come or
// go.
type routeTable map[system.SystemStreamPartition]*taskRunner

// sysListener is a consumer that hears about checkpoints.
type sysListener struct {
	sys string
	l   system.CheckpointListener
}

// run is the shell of one Run call: it owns every goroutine (a dispatcher per
// consumer, a runner per task, the partition monitor), the mailboxes and the routing,
// and adds and removes tasks. The control loop (loop) owns tasks, consumers and meta.
type run struct {
	c         *Container
	log       *slog.Logger
	started   []system.System
	meta      map[system.SystemStreamPartition]system.PartitionMetadata
	runLock   checkpoint.RunLock // nil without a checkpoint.RunLocker
	cpmOpen   bool
	looping   bool // the control loop was entered: start-up is over
	env       *coreEnv
	assign    assignment
	tasks     map[string]*taskRunner
	consumers map[string]system.Consumer
	// readBefore holds the input streams the job read before a task is added: a
	// partition of one without a checkpoint appeared since (see offset.Resolve).
	readBefore map[system.SystemStream]bool
	// restart holds removed tasks to add again (with new partitions) once retired.
	restart map[string]bool
	// retiringNow holds the tasks whose removal is finishing in the background.
	retiringNow map[string]bool
	// rewinds counts the restarts of exactly-once tasks after aborted transactions.
	rewinds map[string]rewindCount
	// coord shares the job's tasks with its other containers (job.coordinator.factory=
	// kafka); nil with the static assignment. assignedOnce is set once it assigned.
	coord        Coordinator
	assignedOnce bool

	route     atomic.Pointer[routeTable]
	listeners atomic.Pointer[[]sysListener]
	live      liveState // for Progress
	began     time.Time // when Run was called
	cpRead    time.Duration

	pollCtx    context.Context // for dispatchers and the monitor; cancelled at stop
	cancelPoll context.CancelFunc
	taskCtx    context.Context // for tasks: not cancelled by a signal
	dispatch   sync.WaitGroup  // dispatchers and the monitor
	retiring   sync.WaitGroup  // removals finishing in the background

	events   chan event
	failures chan error // failures, the first of which stops the container (see fail)
	stop     chan struct{}
	stopOnce sync.Once
}

func (r *run) admin(sys string) (system.Admin, bool) {
	s, ok := r.c.systems[sys]
	if !ok {
		return nil, false
	}
	return s.Admin(), true
}

// inputMetadata reads the partition metadata of every partition the job reads (see
// jobmodel.Metadata).
func (r *run) inputMetadata(ctx context.Context) (map[system.SystemStreamPartition]system.PartitionMetadata, error) {
	return jobmodel.Metadata(ctx, r.c.jc, r.c.systems)
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
	meta, err := r.inputMetadata(ctx)
	if err != nil {
		return err
	}
	r.meta = meta
	byPartition := jobmodel.TaskPartitions(c.jc, meta)
	var mine []int32
	if r.coord == nil {
		mine = r.assign.tasks(slices.Collect(maps.Keys(byPartition)))
		r.log.Info("container starting", "job", c.jc.Name, "job_id", c.jc.ID, "container", c.opts.ContainerID,
			"containers", c.jc.ContainerCount, "tasks", len(mine), "of_tasks", len(byPartition))
	} else {
		r.log.Info("container starting; its tasks come from the job's task group", "job", c.jc.Name, "job_id", c.jc.ID, "of_tasks", len(byPartition))
	}
	if err := r.checkOutputs(ctx); err != nil {
		return err
	}

	if c.cpm != nil {
		if err := c.cpm.Start(ctx); err != nil {
			return fmt.Errorf("start checkpoint manager: %w", err)
		}
		r.cpmOpen = true
		if l, ok := c.cpm.(checkpoint.RunLocker); ok {
			lock, err := l.AcquireRunLock(ctx, r.runLockIdentity())
			if err != nil {
				return fmt.Errorf("mark the job as running: %w", err)
			}
			r.runLock = lock
		}
	}
	r.listeners.Store(&[]sysListener{})
	var commit committer = atLeastOnce{cpm: c.cpm, log: r.log, clock: c.opts.Clock}
	if c.jc.ExactlyOnce {
		commit = exactlyOnce{sys: c.jc.CheckpointSystem}
	}
	r.env = &coreEnv{
		jc: c.jc, cfg: c.jc.Raw, admins: r.admin, committer: commit,
		newProducer: r.newProducer, notify: r.notify, stats: &c.stats, events: c.opts.Events,
		deliveryFailed: func(task string, err error) {
			r.fail(fmt.Errorf("task %s: an output could not be delivered, so the job stops and nothing after its last checkpoint is checkpointed: %w", task, err))
		},
	}

	// Under exactly-once, each task's transactional producer is opened first: that
	// fences its previous owner and aborts its open transaction, so that the
	// checkpoint read next is the last one committed.
	txs := map[int32]checkpoint.TaskTransaction{}
	for _, p := range mine {
		tx, err := r.openTransaction(ctx, job.TaskName(p))
		if err != nil {
			closeAll(txs)
			return err
		}
		if tx != nil {
			txs[p] = tx
		}
	}
	if len(txs) > 0 {
		if err := r.refreshCheckpoints(ctx); err != nil {
			closeAll(txs)
			return err
		}
	}
	cps := make(map[int32]checkpoint.Checkpoint, len(mine))
	readBegan := time.Now()
	for _, p := range mine {
		cp, err := r.readCheckpoint(ctx, job.TaskName(p))
		if err != nil {
			return err
		}
		cps[p] = cp
	}
	r.cpRead = time.Since(readBegan)
	known, err := r.checkpointedStreams(ctx, mine, byPartition, cps)
	if err != nil {
		return err
	}
	for _, p := range mine {
		tr, err := r.newTask(ctx, p, byPartition[p], cps[p], known, txs[p])
		delete(txs, p)
		if err != nil {
			closeAll(txs)
			return err
		}
		r.tasks[tr.core.name] = tr
	}
	// From now on every input stream counts as read: a partition found later is new.
	// In a group, tasks come later, from containers that may not have read them yet.
	r.readBefore = map[system.SystemStream]bool{}
	if r.coord != nil {
		if r.readBefore, err = r.jobStreams(ctx); err != nil {
			return err
		}
	} else {
		for _, in := range c.jc.Inputs {
			r.readBefore[in] = true
		}
	}
	if len(r.tasks) == 0 && r.coord == nil {
		r.log.Warn("this container has no tasks: there are fewer input partitions than containers")
		if c.opts.ExitWhenCaughtUp {
			return nil
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

// newTask resolves a task's starting offsets from its checkpoint, creates the user's
// task and initialises it. readBefore holds the streams the job read before (see
// offset.Resolve).
func (r *run) newTask(ctx context.Context, p int32, ssps []system.SystemStreamPartition, cp checkpoint.Checkpoint, readBefore map[system.SystemStream]bool, tx checkpoint.TaskTransaction) (*taskRunner, error) {
	c := r.c
	name := job.TaskName(p)
	log := r.log.With("task", name)
	fail := func(err error) (*taskRunner, error) {
		if tx != nil {
			tx.Close()
		}
		return nil, err
	}
	starts, err := offset.Resolve(c.jc, name, ssps, cp, readBefore, r.meta, r.admin, log)
	if err != nil {
		return fail(err)
	}
	impl, err := newTaskImpl(c.def.New, name, c.jc.Raw)
	if err != nil {
		return fail(fmt.Errorf("create task %s: %w", name, err))
	}
	core := newTaskCore(name, ssps, impl, starts, cp.Offsets, r.env, log)
	core.ops.writtenAt = cp.Written
	if tx != nil {
		// Every output of the task goes through its transaction (exactlyOnce).
		core.producers = map[string]system.Producer{c.jc.CheckpointSystem: tx}
	}
	if err := core.init(ctx); err != nil {
		return nil, err
	}
	ends := map[system.SystemStreamPartition]string{}
	for _, ssp := range ssps {
		s := core.starts[ssp]
		ends[ssp] = r.meta[ssp].Upcoming
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
	core.trackCaughtUp(ends)
	if len(core.bootstrap) > 0 {
		var parts []string
		for _, ssp := range ssps {
			if core.bootstrap[ssp] {
				parts = append(parts, fmt.Sprintf("%s up to %s", ssp, ends[ssp]))
			}
		}
		log.Info("bootstrapping: the task reads its bootstrap streams to their end before anything else", "partitions", strings.Join(parts, ", "))
	}
	tr := newTaskRunner(core, c.opts.BufferedBatches)
	prios := map[system.SystemStream]int{}
	for _, in := range c.jc.Inputs {
		if p := c.jc.Priority(in); p != 0 {
			prios[in] = p
		}
	}
	if len(prios) > 0 {
		tr.box.prio = func(ssp system.SystemStreamPartition) int { return prios[ssp.SystemStream] }
	}
	return tr, nil
}

// openTransaction opens task's transactional producer under exactly-once (nil
// otherwise); see checkpoint.Transactor.
func (r *run) openTransaction(ctx context.Context, task string) (checkpoint.TaskTransaction, error) {
	if !r.c.jc.ExactlyOnce {
		return nil, nil
	}
	t, ok := r.c.cpm.(checkpoint.Transactor)
	if !ok {
		return nil, fmt.Errorf("task %s: the checkpoint manager cannot commit transactions, which task.processing.guarantee=exactly-once needs", task)
	}
	tx, err := t.OpenTaskTransaction(ctx, task)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", task, err)
	}
	return tx, nil
}

// refreshCheckpoints has a manager that answers Read from an earlier read catch up
// with what was written since (see refresher).
func (r *run) refreshCheckpoints(ctx context.Context) error {
	if rf, ok := r.c.cpm.(refresher); ok {
		return rf.Refresh(ctx)
	}
	return nil
}

func closeAll(txs map[int32]checkpoint.TaskTransaction) {
	for _, tx := range txs {
		tx.Close()
	}
}

// newProducer returns a new producer of system sys, for one task.
func (r *run) newProducer(sys string) (system.Producer, error) {
	if r.c.jc.ExactlyOnce {
		return nil, fmt.Errorf("an exactly-once task sends only to the checkpoint topic's system %s, through its transaction, not to system %s", r.c.jc.CheckpointSystem, sys)
	}
	s, ok := r.c.systems[sys]
	if !ok {
		return nil, fmt.Errorf("no system %q is configured", sys)
	}
	p, err := s.NewProducer()
	if err != nil {
		return nil, fmt.Errorf("create producer of system %s: %w", sys, err)
	}
	return p, nil
}

// notify tells every consumer that listens about task's checkpoint, with its offsets
// of that consumer's system. A listener error is logged and counted.
func (r *run) notify(task string, offsets map[system.SystemStreamPartition]string) {
	for _, sl := range *r.listeners.Load() {
		mine := map[system.SystemStreamPartition]string{}
		for ssp, off := range offsets {
			// Broadcast partitions are read by every task at its own offset: one
			// task's checkpoint says nothing of the others'.
			if ssp.System == sl.sys && !r.c.jc.IsBroadcast(ssp) {
				mine[ssp] = off
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := sl.l.OnCheckpoint(mine); err != nil {
			r.c.stats.listenerErrors.Add(1)
			r.log.Error("checkpoint listener failed (the checkpoint stands)", "task", task, "system", sl.sys, "error", err)
		}
	}
}

// consumer returns the consumer of system sys, creating it when there is none yet
// (unstarted: the caller registers partitions and starts it).
func (r *run) consumer(sys string) (cons system.Consumer, created bool, err error) {
	if cons, ok := r.consumers[sys]; ok {
		return cons, false, nil
	}
	cons, err = r.c.systems[sys].NewConsumer()
	if err != nil {
		return nil, false, fmt.Errorf("create consumer of system %s: %w", sys, err)
	}
	if _, ok := cons.(system.PartitionChanger); !ok && r.coord != nil {
		cons.Close()
		return nil, false, fmt.Errorf("system %s cannot be an input with job.coordinator.factory=%s: its consumer cannot add and remove partitions while it runs", sys, r.c.jc.Coordinator)
	}
	r.consumers[sys] = cons
	r.live.watch(sys, cons)
	if l, ok := cons.(system.CheckpointListener); ok {
		ls := append(slices.Clone(*r.listeners.Load()), sysListener{sys: sys, l: l})
		slices.SortFunc(ls, func(a, b sysListener) int { return strings.Compare(a.sys, b.sys) })
		r.listeners.Store(&ls)
	}
	return cons, true, nil
}

// setPausers tells a task's mailbox which of its partitions each consumer can pause.
func (r *run) setPausers(tr *taskRunner) {
	bySys := map[string][]system.SystemStreamPartition{}
	for _, ssp := range tr.core.ssps {
		if !r.c.jc.IsBroadcast(ssp) {
			bySys[ssp.System] = append(bySys[ssp.System], ssp)
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(bySys)) {
		if p, ok := r.consumers[sys].(system.Pauser); ok {
			tr.box.pausers = append(tr.box.pausers, pauseGroup{p: p, ssps: bySys[sys]})
		}
	}
	for sys, ssps := range r.broadcastOf(tr.core.ssps) {
		if p, ok := tr.own.cons[sys].(system.Pauser); ok {
			tr.box.pausers = append(tr.box.pausers, pauseGroup{p: p, ssps: ssps})
		}
	}
}

// startConsumers creates the consumers of the tasks that exist at start, registers
// their partitions and starts them.
func (r *run) startConsumers(ctx context.Context) error {
	rt := routeTable{}
	for _, name := range slices.Sorted(maps.Keys(r.tasks)) {
		tr := r.tasks[name]
		if err := r.openOwn(ctx, tr); err != nil {
			return err
		}
		for _, ssp := range tr.core.ssps {
			if r.c.jc.IsBroadcast(ssp) {
				continue // read by the task's own consumer
			}
			cons, _, err := r.consumer(ssp.System)
			if err != nil {
				return err
			}
			if err := cons.Register(ssp, tr.core.starts[ssp].Offset); err != nil {
				return fmt.Errorf("register %s at offset %s: %w", ssp, tr.core.starts[ssp].Offset, err)
			}
			rt[ssp] = tr
		}
	}
	for _, tr := range r.tasks {
		r.setPausers(tr)
	}
	for _, sys := range slices.Sorted(maps.Keys(r.consumers)) {
		if err := r.consumers[sys].Start(ctx); err != nil {
			return fmt.Errorf("start consumer of system %s: %w", sys, err)
		}
	}
	r.route.Store(&rt)
	return nil
}

// setRoutes replaces the route table: the partitions of add go to their task, those
// of remove to none.
func (r *run) setRoutes(add, remove *taskRunner) {
	rt := maps.Clone(*r.route.Load())
	if remove != nil {
		for _, ssp := range remove.core.ssps {
			if rt[ssp] == remove {
				delete(rt, ssp)
			}
		}
	}
	if add != nil {
		for _, ssp := range add.core.ssps {
			rt[ssp] = add
		}
	}
	r.route.Store(&rt)
}

func (r *run) requestStop() {
	r.stopOnce.Do(func() { close(r.stop) })
}

// fail reports a failure (of a task, a dispatcher, a producer's delivery or a
// removal) to the control loop without blocking; the first one stops the container,
// later ones are logged.
func (r *run) fail(err error) {
	select {
	case r.failures <- err:
	default: // more than the stop will report
		r.log.Error("another failure", "error", err)
	}
}

// post delivers an event to the control loop unless the container is stopping.
func (r *run) post(e event) {
	select {
	case r.events <- e:
	case <-r.stop:
	}
}

// postUpcalls passes a task's requests to the control loop.
func (r *run) postUpcalls(task string, up upcalls) {
	if up.caughtUp {
		r.post(event{kind: evCaughtUp, task: task})
	}
	if up.commitAll {
		r.post(event{kind: evCommitAll, task: task})
	}
	switch {
	case up.shutdownAll:
		r.post(event{kind: evShutdownAll, task: task})
	case up.shutdownVote:
		r.post(event{kind: evShutdownVote, task: task})
	}
}

// startDispatcher starts the goroutine that polls cons.
func (r *run) startDispatcher(sys string, cons system.Consumer) {
	r.dispatch.Go(func() {
		if err := r.dispatchLoop(r.pollCtx, sys, cons, nil); err != nil {
			r.fail(err)
		}
	})
}

// startRunner starts the goroutine of a task.
func (r *run) startRunner(tr *taskRunner) {
	window := r.c.jc.WindowInterval
	if window == 0 {
		window = r.c.def.WindowDefault
	}
	go func() {
		tr.run(r.taskCtx, r.c.jc.CommitInterval, window, r.postUpcalls)
		switch {
		case errors.Is(tr.err, errTransactionAborted):
			r.post(event{kind: evRewind, task: tr.core.name, err: tr.err})
		case tr.err != nil:
			r.fail(tr.err)
		}
	}()
}

// loop runs the dispatchers, the tasks and the partition monitor, and handles their
// events until the container stops.
func (r *run) loop(ctx context.Context) error {
	r.pollCtx, r.cancelPoll = context.WithCancel(context.WithoutCancel(ctx))
	defer r.cancelPoll()
	r.taskCtx = context.WithoutCancel(ctx) // in-flight messages finish even after a signal
	caught := map[string]bool{}
	for name, tr := range r.tasks {
		if tr.core.caughtUp { // before its goroutine owns caughtUp
			caught[name] = true
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(r.consumers)) {
		r.startDispatcher(sys, r.consumers[sys])
	}
	for _, name := range slices.Sorted(maps.Keys(r.tasks)) {
		tr := r.tasks[name]
		r.startOwn(tr)
		r.startRunner(tr)
		r.c.opts.Events.taskAdded(taskEvent(tr, "assigned at start"))
	}
	known := partitionCounts(r.meta)
	r.dispatch.Go(func() { r.monitorPartitions(r.pollCtx, known) })
	var failure error
	if r.coord != nil {
		if err := r.coord.Start(ctx, taskCount(jobmodel.TaskPartitions(r.c.jc, r.meta)), r.coordinatorHandler()); err != nil {
			failure = fmt.Errorf("join the job's task group: %w", err)
		}
	}

	var lost <-chan struct{} // nil (never) without a run lock
	if r.runLock != nil {
		lost = r.runLock.Lost()
	}
	var status <-chan time.Time
	if r.c.opts.StatusInterval > 0 {
		tk := time.NewTicker(r.c.opts.StatusInterval)
		defer tk.Stop()
		status = tk.C
	}
	st := newStatus(r)
	start := &StartEvent{At: time.Now(), Duration: time.Since(r.began), CheckpointRead: r.cpRead, Tasks: len(r.tasks)}
	r.live.start.Store(start)
	r.live.turn()
	r.live.looping.Store(true)
	r.c.opts.Events.started(*start)
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	votes := map[string]bool{}
	reason := ""
	allCaughtUp := func() bool {
		if r.coord != nil && !r.assignedOnce {
			return false // its tasks have not come yet
		}
		for name := range r.tasks {
			if !caught[name] {
				return false
			}
		}
		return len(r.restart) == 0
	}
	if r.c.opts.ExitWhenCaughtUp && allCaughtUp() {
		reason = "every input partition was already at its end"
	}
	for reason == "" && failure == nil {
		r.live.turn()
		select {
		case <-beat.C:
		case <-ctx.Done():
			reason = "signal"
		case err := <-r.failures:
			failure = err
		case <-lost:
			failure = fmt.Errorf("lost the run lock: %w", r.runLock.Err())
		case e := <-r.events:
			if _, ok := r.tasks[e.task]; !ok && e.task != "" && e.kind != evRetired {
				continue // from a task removed since
			}
			switch e.kind {
			case evCommitAll:
				for _, tr := range r.tasks {
					tr.requestCommit()
				}
			case evShutdownVote:
				votes[e.task] = true
				if len(votes) == len(r.tasks) {
					reason = "every task asked to shut down"
				}
			case evShutdownAll:
				reason = "task " + e.task + " asked to shut down the container"
			case evCaughtUp:
				caught[e.task] = true
				if r.c.opts.ExitWhenCaughtUp && allCaughtUp() {
					reason = "every input partition reached the end offset it had at start (--exit-when-caught-up)"
				}
			case evPartitions:
				if err := r.partitionsChanged(ctx, e.meta, votes, caught); err != nil {
					failure = err
				}
			case evGroup:
				if err := r.groupChanged(ctx, e.group, caught); err != nil {
					failure = err
				}
				if r.c.opts.ExitWhenCaughtUp && allCaughtUp() {
					reason = "every input partition reached the end offset it had at start (--exit-when-caught-up)"
				}
			case evRewind:
				if err := r.rewind(ctx, e.task, e.err); err != nil {
					failure = err
				}
			case evRetired:
				delete(r.retiringNow, e.task)
				if r.restart[e.task] {
					delete(r.restart, e.task)
					if err := r.addTask(ctx, e.task, caught); err != nil {
						failure = err
					}
				}
			}
		case <-status:
			st.report(ctx)
		}
	}
	r.live.stopping.Store(true)
	if failure != nil {
		r.log.Error("container failing", "error", failure)
	} else {
		r.log.Info("container stopping", "reason", reason)
	}
	failure = r.shutdown(ctx, failure)
	st.report(context.WithoutCancel(ctx))
	s := r.c.Stats()
	r.log.Info("container stopped", "processed", s.Processed, "commits", s.Commits, "checkpoint_writes", s.CheckpointWrites,
		"listener_errors", s.ListenerErrors, "out_of_range_resets", s.OutOfRangeResets, "messages_skipped", s.MessagesSkipped,
		"ignored_errors", s.IgnoredErrors)
	return failure
}

// shutdown stops every task after its current message, and the dispatchers, then
// commits every task once more (task.commit.on.shutdown), all within
// task.shutdown.ms. A task still busy at that deadline is not committed, and fails
// the stop; so does a failed final commit. It returns failure (why the container
// stops, if it failed) joined with what went wrong while stopping.
func (r *run) shutdown(ctx context.Context, failure error) error {
	deadline := time.Now().Add(r.c.jc.ShutdownTimeout)
	r.requestStop()
	for _, tr := range r.tasks {
		tr.halt()
	}
	r.cancelPoll()
	waitCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	var errs []error
	add := func(err error) {
		if err == nil {
			return
		}
		for _, e := range errs {
			if errors.Is(e, err) {
				return
			}
		}
		errs = append(errs, err)
	}
	add(failure)
	// Each task is committed as soon as it has finished its current message, so one
	// that is stuck takes no time from the others.
	type outcome struct {
		name      string
		stuck     bool
		err       error // the task's own failure
		commitErr error
	}
	fenced := errors.Is(failure, checkpoint.ErrFenced)
	if fenced {
		r.log.Warn("no final commit: another process took this container over, and its checkpoints must not be overwritten")
	}
	outcomes := make(chan outcome, len(r.tasks))
	for name, tr := range r.tasks {
		go func() {
			select {
			case <-tr.done:
			case <-waitCtx.Done():
				outcomes <- outcome{name: name, stuck: true}
				return
			}
			o := outcome{name: name, err: tr.err}
			t := tr.core
			switch {
			case !r.c.jc.CommitOnShutdown:
			case fenced:
				// Another process runs this container now: its checkpoints are its own.
			case t.commitFailed || t.outputLost.Load():
				// Its outputs may not all have been delivered: checkpointing it now
				// could cover lost messages. It restarts from its last checkpoint.
				t.log.Warn("no final commit for this task: an earlier commit of it failed or an output was lost, so it restarts from its last checkpoint")
			default:
				o.commitErr = t.commit(waitCtx, "shutdown")
			}
			outcomes <- o
		}()
	}
	var stuck []string
	var commitErrs []error
	for range len(r.tasks) {
		o := <-outcomes
		if o.stuck {
			stuck = append(stuck, o.name)
		}
		add(o.err)
		if o.commitErr != nil {
			commitErrs = append(commitErrs, o.commitErr)
		}
	}
	if len(stuck) > 0 {
		slices.Sort(stuck)
		add(fmt.Errorf("tasks %s did not finish their current message within task.shutdown.ms (%v): they are not checkpointed past their last commit", strings.Join(stuck, ", "), r.c.jc.ShutdownTimeout))
	}
	if !waitFor(waitCtx, &r.dispatch) {
		add(errors.New("a consumer did not stop polling within task.shutdown.ms"))
	}
	if !waitFor(waitCtx, &r.retiring) {
		add(errors.New("a task being removed did not finish within task.shutdown.ms"))
	}
	// Report with the rest what failed while stopping (a dispatcher, a removal).
	for drained := false; !drained; {
		select {
		case err := <-r.failures:
			add(err)
		default:
			drained = true
		}
	}
	if len(commitErrs) > 0 {
		add(fmt.Errorf("final commit: %w", errors.Join(commitErrs...)))
	}
	if len(errs) > 1 {
		for _, err := range errs[1:] {
			r.log.Error("another failure while stopping", "error", err)
		}
	}
	return errors.Join(errs...)
}

// waitFor waits for wg until ctx is done, and reports whether wg finished.
func waitFor(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func taskEvent(tr *taskRunner, why string) TaskEvent {
	starts := make(map[system.SystemStreamPartition]string, len(tr.core.ssps))
	for ssp, s := range tr.core.starts {
		starts[ssp] = s.Offset
	}
	return TaskEvent{Task: tr.core.name, Partitions: slices.Clone(tr.core.ssps), Starts: starts, Why: why}
}

// dispatchLoop polls one consumer and hands each run of messages of one partition to
// its task. A task that falls behind gets its partitions paused (see mailbox); with a
// consumer that cannot pause, the dispatcher waits for the task instead. Messages of
// a partition no task reads any more (its task was removed) are dropped: they were
// not processed, so nothing checkpoints past them.
//
// fixed, when not nil, is the route table of a task's own consumer (broadcast.go),
// used instead of the container's.
func (r *run) dispatchLoop(ctx context.Context, sys string, cons system.Consumer, fixed routeTable) error {
	_, canPause := cons.(system.Pauser)
	rec, _ := cons.(system.Recycler)
	for {
		envs, err := cons.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consumer of system %s: %w", sys, err)
		}
		l := newLease(envs, rec)
		route := fixed
		if route == nil {
			route = *r.route.Load()
		}
		for i := 0; i < len(envs); {
			ssp := envs[i].SSP
			j := i + 1
			for j < len(envs) && envs[j].SSP == ssp {
				j++
			}
			if tr, ok := route[ssp]; ok && !tr.stopped() {
				l.hold()
				if tr.box.put(batch{envs: envs[i:j:j], lease: l}) {
					if !r.waitForRoom(tr, canPause) {
						return nil
					}
				}
			}
			i = j
		}
		l.release()
	}
}

// waitForRoom waits until t's mailbox has room. With a consumer that can pause, it
// waits at most pauseAfter, then pauses t's partitions and returns (see mailbox). It
// returns false when the container stops.
func (r *run) waitForRoom(t *taskRunner, canPause bool) bool {
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
		case <-t.stop:
			return true // the task is being removed: its batches are dropped
		case <-r.stop:
			return false
		}
	}
	return true
}

// close releases everything Run acquired, in reverse order.
func (r *run) close() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.tasks)) {
		tr := r.tasks[name]
		select {
		case <-tr.done:
		default:
			if r.looping {
				continue // still busy in the task's code: leave it be
			}
		}
		errs = append(errs, tr.core.close())
	}
	for _, name := range slices.Sorted(maps.Keys(r.tasks)) {
		errs = append(errs, r.closeOwn(r.tasks[name]))
	}
	for _, sys := range slices.Sorted(maps.Keys(r.consumers)) {
		if err := r.consumers[sys].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close consumer of system %s: %w", sys, err))
		}
	}
	if r.coord != nil {
		if err := r.coord.Close(); err != nil {
			errs = append(errs, fmt.Errorf("leave the job's task group: %w", err))
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

// runLockIdentity is the container the run lock marks as running: the one of
// --container-id, or, in a group without one, a dynamic container.
func (r *run) runLockIdentity() checkpoint.Container {
	switch {
	case r.coord == nil:
		return checkpoint.Container{ID: r.c.opts.ContainerID, Count: r.c.jc.ContainerCount}
	case r.c.opts.ContainerIDSet:
		return checkpoint.Container{ID: r.c.opts.ContainerID, Count: r.c.opts.ContainerID + 1}
	}
	return checkpoint.Container{Dynamic: true}
}
