package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// taskCore is one task's logic: it processes batches of messages, windows, snapshots
// the offsets it processed and commits them through a committer. It is synchronous
// and starts no goroutine, and it knows nothing of the run that drives it: it is
// given its partitions, its starting offsets, the user's task and a coreEnv (admins,
// producers, committer, listeners, counters, events). The shell (taskRunner) owns the
// goroutine that calls it, so everything in it belongs to that goroutine, except the
// fields marked otherwise; after that goroutine ended it belongs to whoever waited
// for it.
type taskCore struct {
	name string
	ssps []system.SystemStreamPartition
	impl task.StreamTask
	log  *slog.Logger
	env  *coreEnv

	starts    map[system.SystemStreamPartition]offset.Start
	last      map[system.SystemStreamPartition]string // last processed offset
	written   map[system.SystemStreamPartition]string // offsets of the last checkpoint
	producers map[string]system.Producer              // by system, created on first send
	// the producer of the last Send, and its system
	lastSystem   string
	lastProducer system.Producer
	dirty        bool // sent something since the last flush
	// commitFailed is set when a commit failed: outputs may be lost, so this task is
	// never checkpointed again in this run (not even by the final commit of the
	// shutdown that follows).
	commitFailed bool

	// caught-up tracking for --exit-when-caught-up
	ends     map[system.SystemStreamPartition]string
	caughtUp bool
	// bootstrap holds the partitions of bootstrap streams (samza.bootstrap) not yet read
	// up to their end: until it is empty, the task processes nothing else.
	bootstrap map[system.SystemStreamPartition]bool
	// bootstrapping mirrors len(bootstrap) > 0 for the status line.
	bootstrapping atomic.Bool

	// halt, set from any goroutine, makes processBatch return after the current message.
	halt atomic.Bool
	// outputLost is set, from a producer's goroutine, when a delivery of this task
	// failed (system.FailureNotifier): the task is never checkpointed again.
	outputLost atomic.Bool
	// reqs holds the Commit and Shutdown requests the task made (req* bits), from any
	// of its goroutines; wake is signalled with each, for requests made outside
	// Process and Window.
	reqs atomic.Uint32
	wake chan struct{}

	pubMu sync.Mutex
	pub   map[system.SystemStreamPartition]string // last processed, published for status
	ops   published                               // checkpoint and high watermarks, for Progress
}

// coreEnv is what the task cores of a container share. It is read-only once the
// container runs.
type coreEnv struct {
	jc          *job.Config
	cfg         config.Config
	admins      offset.Admins
	newProducer func(sys string) (system.Producer, error)
	committer   committer
	// notify tells the consumers that listen (system.CheckpointListener) about a
	// task's checkpoint.
	notify func(task string, offsets map[system.SystemStreamPartition]string)
	// deliveryFailed is called, from a producer's goroutine, with a task's first
	// failed delivery.
	deliveryFailed func(task string, err error)
	stats          *stats
	events         *Events
}

// The bits of taskCore.reqs.
const (
	reqCommit uint32 = 1 << iota
	reqCommitAll
	reqShutdown
	reqShutdownAll
)

// upcalls are what a task asked of the container, for the shell to pass on.
type upcalls struct {
	commitAll, shutdownVote, shutdownAll, caughtUp bool
}

func (u upcalls) any() bool { return u.commitAll || u.shutdownVote || u.shutdownAll || u.caughtUp }

func (u *upcalls) merge(o upcalls) {
	u.commitAll = u.commitAll || o.commitAll
	u.shutdownVote = u.shutdownVote || o.shutdownVote
	u.shutdownAll = u.shutdownAll || o.shutdownAll
	u.caughtUp = u.caughtUp || o.caughtUp
}

// newTaskCore returns the core of a task whose starting offsets are resolved; written
// is its last checkpoint.
func newTaskCore(name string, ssps []system.SystemStreamPartition, impl task.StreamTask, starts map[system.SystemStreamPartition]offset.Start,
	written map[system.SystemStreamPartition]string, env *coreEnv, log *slog.Logger) *taskCore {
	return &taskCore{
		name: name, ssps: ssps, impl: impl, log: log, env: env,
		starts:  maps.Clone(starts),
		last:    map[system.SystemStreamPartition]string{},
		written: written,
		wake:    make(chan struct{}, 1),
		pub:     map[system.SystemStreamPartition]string{},
		ops:     published{written: written},
	}
}

// trackCaughtUp records the end offsets (the upcoming offsets when the task was
// added) that the task must reach to be caught up, for --exit-when-caught-up; call it
// after init, which may move the starting offsets.
func (t *taskCore) trackCaughtUp(ends map[system.SystemStreamPartition]string) {
	t.ends = map[system.SystemStreamPartition]string{}
	for _, ssp := range t.ssps {
		end, ok := ends[ssp]
		if !ok {
			continue
		}
		admin, _ := t.env.admins(ssp.System)
		if cmp, err := admin.CompareOffsets(t.starts[ssp].Offset, end); err == nil && cmp >= 0 {
			continue
		}
		t.ends[ssp] = end
		if t.env.jc.Bootstrap(ssp.SystemStream) {
			if t.bootstrap == nil {
				t.bootstrap = map[system.SystemStreamPartition]bool{}
			}
			t.bootstrap[ssp] = true
		}
	}
	t.caughtUp = len(t.ends) == 0
	t.bootstrapping.Store(len(t.bootstrap) > 0)
	t.ops.ends = maps.Clone(ends)
}

// holds reports whether messages of ssp must wait: the task is still reading its
// bootstrap streams and ssp is not one of them.
func (t *taskCore) holds(ssp system.SystemStreamPartition) bool {
	return len(t.bootstrap) > 0 && !t.bootstrap[ssp]
}

// guard runs fn, turning a panic into a *TaskPanicError.
func (t *taskCore) guard(where string, fn func() error) error {
	return guard(t.name, where, fn)
}

// guard runs fn, turning a panic into a *TaskPanicError of task (a task name, or the
// task class before there is an instance).
func guard(task, where string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &TaskPanicError{Task: task, Where: where, Value: v, Stack: string(debug.Stack())}
		}
	}()
	return fn()
}

// init calls the task's Init, if it has one.
func (t *taskCore) init(ctx context.Context) error {
	it, ok := t.impl.(task.InitableTask)
	if !ok {
		return nil
	}
	if err := t.guard("in Init", func() error { return it.Init(ctx, initContext{t}) }); err != nil {
		return fmt.Errorf("init task %s: %w", t.name, err)
	}
	return nil
}

// process is guard for one message, without the per-message cost of a closure and of
// formatting where it happened (that is done only after a panic).
func (t *taskCore) process(ctx context.Context, env *system.IncomingEnvelope) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &TaskPanicError{Task: t.name, Where: fmt.Sprintf("processing %s at offset %s", env.SSP, env.Offset), Value: v, Stack: string(debug.Stack())}
		}
	}()
	return t.impl.Process(ctx, *env, t, t)
}

// processBatch processes a run of messages of one partition, stopping early when the
// task is halted. Only messages whose Process returned nil (or failed with an error
// the job ignores) count as processed.
func (t *taskCore) processBatch(ctx context.Context, batch []system.IncomingEnvelope) (up upcalls, err error) {
	if len(batch) == 0 {
		return up, nil
	}
	ssp := batch[0].SSP
	done := 0
	var began time.Time
	if t.env.events.timesBatches() {
		began = time.Now()
	}
	defer func() {
		if done > 0 {
			off := batch[done-1].Offset
			t.last[ssp] = off
			t.env.stats.processed.Add(int64(done))
			t.pubMu.Lock()
			t.pub[ssp] = off
			t.pubMu.Unlock()
			if !began.IsZero() {
				t.env.events.processed(ProcessEvent{Task: t.name, SSP: ssp, Messages: done, Offset: off, Duration: time.Since(began)})
			}
		}
	}()
	for i := range batch {
		if t.halt.Load() {
			return up, nil
		}
		env := &batch[i]
		if env.Control {
			done = i + 1 // a transaction marker: its offset is processed, nothing else
			continue
		}
		if err := t.process(ctx, env); err != nil {
			if !task.Ignored(err, t.env.jc.IgnoredErrors) {
				return up, fmt.Errorf("task %s failed processing %s at offset %s: %w", t.name, ssp, env.Offset, err)
			}
			if err := t.skip(ctx, env, err); err != nil {
				return up, err
			}
		}
		done = i + 1
		if t.reqs.Load() != 0 {
			t.last[ssp] = env.Offset
			u, err := t.handleRequests(ctx)
			up.merge(u)
			if err != nil {
				return up, err
			}
		}
	}
	if !t.caughtUp {
		t.last[ssp] = batch[done-1].Offset
		up.caughtUp = t.checkCaughtUp(ssp)
	}
	return up, nil
}

// skip sets aside a message whose processing failed with an error listed in
// task.ignored.exceptions: it is logged, counted, sent to the dead-letter stream when
// one is configured (through the task's own producer, so the checkpoint that covers
// it waits for that delivery), and then counts as processed.
func (t *taskCore) skip(ctx context.Context, env *system.IncomingEnvelope, cause error) error {
	n := t.env.stats.ignored.Add(1)
	if n <= skipLogFull || n%skipLogEvery == 0 {
		t.log.Warn("skipping a message whose processing failed (task.ignored.exceptions)", "partition", env.SSP.String(), "offset", env.Offset,
			"error", cause, "skipped_so_far", n)
	}
	dl := t.env.jc.DeadLetter
	if dl == nil {
		return nil
	}
	msg := cause.Error()
	if len(msg) > maxErrorHeader {
		msg = msg[:maxErrorHeader] + "…"
	}
	headers := append(slices.Clip(env.Headers),
		system.Header{Key: HeaderJob, Value: []byte(t.env.jc.Name + "-" + t.env.jc.ID)},
		system.Header{Key: HeaderTask, Value: []byte(t.name)},
		system.Header{Key: HeaderSource, Value: []byte(env.SSP.String())},
		system.Header{Key: HeaderOffset, Value: []byte(env.Offset)},
		system.Header{Key: HeaderError, Value: []byte(msg)},
	)
	err := t.Send(ctx, system.OutgoingEnvelope{Stream: *dl, PartitionByKey: true, Key: env.Key, Message: env.Message, Headers: headers, Timestamp: env.Timestamp})
	if err != nil {
		return fmt.Errorf("task %s: sending the failed message at %s offset %s to the dead-letter stream %s: %w (it failed with: %v)", t.name, env.SSP, env.Offset, dl, err, cause)
	}
	return nil
}

// The headers a message sent to the dead-letter stream carries besides its own.
const (
	HeaderJob    = "sluice.job"    // job name and id, "name-id"
	HeaderTask   = "sluice.task"   // the task that failed, "Partition N"
	HeaderSource = "sluice.source" // the input partition, "system.stream#N"
	HeaderOffset = "sluice.offset" // the message's offset there
	HeaderError  = "sluice.error"  // the error, cut at 1000 bytes
)

const (
	maxErrorHeader = 1000
	// A skipped message is logged in full up to skipLogFull times per container, then
	// once every skipLogEvery skips, so a flood of bad input does not flood the log.
	skipLogFull  = 20
	skipLogEvery = 1000
)

// checkCaughtUp reports whether ssp's progress made the task caught up.
func (t *taskCore) checkCaughtUp(ssp system.SystemStreamPartition) bool {
	end, ok := t.ends[ssp]
	if !ok {
		return false
	}
	admin, _ := t.env.admins(ssp.System)
	next, err := admin.OffsetAfter(t.last[ssp])
	if err != nil {
		return false
	}
	if cmp, err := admin.CompareOffsets(next, end); err == nil && cmp >= 0 {
		delete(t.ends, ssp)
		if t.bootstrap[ssp] {
			delete(t.bootstrap, ssp)
			if len(t.bootstrap) > 0 {
				t.log.Info("bootstrapping: a bootstrap partition was read to its end", "partition", ssp.String(), "end", end, "bootstrap_partitions_left", len(t.bootstrap))
			} else {
				t.bootstrapping.Store(false)
				t.log.Info("bootstrapped: every bootstrap stream was read up to the end it had when the task started; the other inputs come now")
			}
		}
		if len(t.ends) == 0 {
			t.caughtUp = true
			t.log.Info("caught up: every partition reached the end offset it had when the task started")
			return true
		}
	}
	return false
}

// window calls the task's Window, if it has one, and acts on its requests.
func (t *taskCore) window(ctx context.Context) (upcalls, error) {
	wt, ok := t.impl.(task.WindowableTask)
	if !ok {
		return upcalls{}, nil
	}
	began := time.Now()
	err := t.guard("in Window", func() error { return wt.Window(ctx, t, t) })
	t.env.events.windowDone(WindowEvent{Task: t.name, Duration: time.Since(began), Err: err})
	if err != nil {
		if !task.Ignored(err, t.env.jc.IgnoredErrors) {
			return upcalls{}, fmt.Errorf("task %s: window: %w", t.name, err)
		}
		// As in Samza, task.ignored.exceptions covers Window too: there is no message to
		// set aside, so it is logged and counted.
		if n := t.env.stats.ignored.Add(1); n <= skipLogFull || n%skipLogEvery == 0 {
			t.log.Warn("ignoring a failure of Window (task.ignored.exceptions)", "error", err, "skipped_so_far", n)
		}
	}
	return t.handleRequests(ctx)
}

// handleRequests acts on the Commit and Shutdown calls the task made: it commits the
// task itself, and returns what the container must do.
func (t *taskCore) handleRequests(ctx context.Context) (upcalls, error) {
	r := t.reqs.Swap(0)
	up := upcalls{
		commitAll:    r&reqCommitAll != 0,
		shutdownAll:  r&reqShutdownAll != 0,
		shutdownVote: r&reqShutdown != 0 && r&reqShutdownAll == 0,
	}
	if r&reqCommit != 0 {
		if err := t.commit(ctx, "requested"); err != nil {
			return up, err
		}
	}
	return up, nil
}

// snapshot returns the offsets to checkpoint: the offset after the last processed
// message of each partition, or the starting offset where nothing was processed.
func (t *taskCore) snapshot() (map[system.SystemStreamPartition]string, error) {
	out := make(map[system.SystemStreamPartition]string, len(t.ssps))
	for _, ssp := range t.ssps {
		last, ok := t.last[ssp]
		if !ok {
			out[ssp] = t.starts[ssp].Offset
			continue
		}
		admin, _ := t.env.admins(ssp.System)
		next, err := admin.OffsetAfter(last)
		if err != nil {
			return nil, fmt.Errorf("offset after %s of %s: %w", last, ssp, err)
		}
		out[ssp] = next
	}
	return out, nil
}

// commit checkpoints the task: (1) snapshot its offsets, (2)+(3) have the committer
// make its outputs durable and write the checkpoint, (4) tell the listeners.
func (t *taskCore) commit(ctx context.Context, why string) error {
	if t.commitFailed {
		return fmt.Errorf("commit of task %s: refused, an earlier commit of this task failed in this run", t.name)
	}
	if t.outputLost.Load() {
		t.commitFailed = true
		return fmt.Errorf("commit of task %s: refused, a message it sent could not be delivered", t.name)
	}
	t.env.stats.commits.Add(1)
	began := time.Now()
	offsets, err := t.snapshot() // (1) before anything is flushed
	if err != nil {
		return fmt.Errorf("commit of task %s: %w", t.name, err)
	}
	write := t.env.committer.checkpoints() && !maps.Equal(offsets, t.written)
	if err := t.env.committer.commit(ctx, t.name, t.producers, t.dirty, offsets, write); err != nil { // (2), (3)
		t.commitFailed = true
		err = fmt.Errorf("commit of task %s: %w", t.name, err)
		t.env.events.commitFailed(CommitEvent{Task: t.name, Why: why, Offsets: offsets, Duration: time.Since(began), Err: err})
		return err
	}
	t.dirty = false
	if write {
		t.written = offsets
		t.env.stats.writes.Add(1)
		t.env.stats.lastCheckpoint.Store(time.Now().UnixNano())
		t.publishWritten(offsets)
		t.log.Debug("checkpoint written", "why", why)
	}
	if write || !t.env.committer.checkpoints() {
		t.env.notify(t.name, offsets) // (4)
	}
	t.env.events.commitDone(CommitEvent{Task: t.name, Why: why, Offsets: offsets, Written: write, Duration: time.Since(began)})
	return nil
}

// Send implements task.Collector.
func (t *taskCore) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	// Tasks almost always send to one system: skip the map for it.
	if t.lastProducer != nil && env.Stream.System == t.lastSystem {
		t.dirty = true
		return t.lastProducer.Send(ctx, env)
	}
	p, ok := t.producers[env.Stream.System]
	if !ok {
		var err error
		if p, err = t.env.newProducer(env.Stream.System); err != nil {
			return fmt.Errorf("send to %s: %w", env.Stream, err)
		}
		if t.producers == nil {
			t.producers = map[string]system.Producer{}
		}
		t.producers[env.Stream.System] = p
		if n, ok := p.(system.FailureNotifier); ok {
			n.NotifyFailure(t.deliveryFailed)
		}
	}
	t.lastSystem, t.lastProducer = env.Stream.System, p
	t.dirty = true
	return p.Send(ctx, env)
}

// deliveryFailed is called by a producer, on its own goroutine, when a message of
// this task could not be delivered: the task must not be checkpointed again, and the
// container fails now rather than at the task's next commit.
func (t *taskCore) deliveryFailed(err error) {
	t.outputLost.Store(true)
	t.env.deliveryFailed(t.name, err)
}

// Commit implements task.Coordinator. It may be called from any goroutine.
func (t *taskCore) Commit(scope task.Scope) {
	r := reqCommit
	if scope == task.AllTasksInContainer {
		r |= reqCommitAll
	}
	t.reqs.Or(r)
	signal(t.wake)
}

// Shutdown implements task.Coordinator. It may be called from any goroutine.
func (t *taskCore) Shutdown(scope task.Scope) {
	r := reqShutdown
	if scope == task.AllTasksInContainer {
		r = reqShutdownAll
	}
	t.reqs.Or(r)
	signal(t.wake)
}

// close closes the user's task and the task's producers.
func (t *taskCore) close() error {
	var errs []error
	if ct, ok := t.impl.(task.ClosableTask); ok {
		if err := t.guard("in Close", ct.Close); err != nil {
			errs = append(errs, fmt.Errorf("close task %s: %w", t.name, err))
		}
	}
	for sys, p := range t.producers {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close producer of task %s to system %s: %w", t.name, sys, err))
		}
	}
	return errors.Join(errs...)
}

// published returns the last processed offset of each partition, for status lines.
func (t *taskCore) published() map[system.SystemStreamPartition]string {
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	return maps.Clone(t.pub)
}

// initContext is the task.Context given to Init.
type initContext struct{ t *taskCore }

func (ic initContext) TaskName() string { return ic.t.name }

func (ic initContext) Partitions() []system.SystemStreamPartition {
	return append([]system.SystemStreamPartition(nil), ic.t.ssps...)
}

func (ic initContext) StartingOffset(ssp system.SystemStreamPartition) (string, string) {
	s, ok := ic.t.starts[ssp]
	if !ok {
		return "", ""
	}
	return s.Offset, string(s.Reason)
}

func (ic initContext) SetStartingOffset(ssp system.SystemStreamPartition, off string) error {
	if _, ok := ic.t.starts[ssp]; !ok {
		return fmt.Errorf("task %s does not read %s", ic.t.name, ssp)
	}
	admin, _ := ic.t.env.admins(ssp.System)
	if _, err := admin.CompareOffsets(off, off); err != nil {
		return fmt.Errorf("starting offset for %s: %w", ssp, err)
	}
	ic.t.starts[ssp] = offset.Start{Offset: off, Reason: offset.FromOverride, Detail: "set by the task at init"}
	return nil
}

func (ic initContext) Config() config.Config { return ic.t.env.cfg }

func (ic initContext) Logger() *slog.Logger { return ic.t.log }
