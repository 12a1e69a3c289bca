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

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// taskInstance is one running task. Everything but the box, commitCh and pub is
// owned by the task's goroutine (and by the container after that goroutine ended).
type taskInstance struct {
	r    *run
	name string
	ssps []system.SystemStreamPartition
	impl task.StreamTask
	log  *slog.Logger

	starts    map[system.SystemStreamPartition]offset.Start
	last      map[system.SystemStreamPartition]string // last processed offset
	written   map[system.SystemStreamPartition]string // offsets of the last checkpoint
	producers map[string]system.Producer              // by system, created on first send
	// the producer of the last Send, and its system
	lastSystem   string
	lastProducer system.Producer
	dirty        bool // sent something since the last flush
	// commitFailed is set when a flush or checkpoint write failed: outputs may be
	// lost, so this task is never checkpointed again in this run (not even by the
	// final commit of the shutdown that follows).
	commitFailed bool
	// outputLost is set, from a producer's goroutine, when a delivery of this task
	// failed (system.FailureNotifier): the task is never checkpointed again.
	outputLost atomic.Bool

	// caught-up tracking for --exit-when-caught-up
	ends     map[system.SystemStreamPartition]string
	caughtUp bool

	// requests made by the task during the current call
	reqCommit, reqCommitAll, reqShutdown, reqShutdownAll bool

	box      *mailbox
	commitCh chan struct{}

	pubMu sync.Mutex
	pub   map[system.SystemStreamPartition]string // last processed, published for status
}

// guard runs fn, turning a panic into a *TaskPanicError.
func (t *taskInstance) guard(where string, fn func() error) error {
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

// process is guard for one message, without the per-message cost of a closure and of
// formatting where it happened (that is done only after a panic).
func (t *taskInstance) process(ctx context.Context, env *system.IncomingEnvelope) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &TaskPanicError{Task: t.name, Where: fmt.Sprintf("processing %s at offset %s", env.SSP, env.Offset), Value: v, Stack: string(debug.Stack())}
		}
	}()
	return t.impl.Process(ctx, *env, t, t)
}

func (t *taskInstance) initCaughtUp() {
	t.ends = map[system.SystemStreamPartition]string{}
	for _, ssp := range t.ssps {
		end := t.r.meta[ssp].Upcoming
		admin, _ := t.r.admin(ssp.System)
		if cmp, err := admin.CompareOffsets(t.starts[ssp].Offset, end); err == nil && cmp >= 0 {
			continue
		}
		t.ends[ssp] = end
	}
	t.caughtUp = len(t.ends) == 0
}

// requestCommit asks the task's goroutine for a commit; a pending request is enough.
func (t *taskInstance) requestCommit() {
	select {
	case t.commitCh <- struct{}{}:
	default:
	}
}

func (t *taskInstance) run(ctx context.Context) error {
	c := t.r.c
	var commitC, windowC <-chan time.Time
	if c.jc.CommitInterval > 0 {
		tk := time.NewTicker(c.jc.CommitInterval)
		defer tk.Stop()
		commitC = tk.C
	}
	window := c.jc.WindowInterval
	if window == 0 {
		window = c.def.WindowDefault
	}
	wt, windowable := t.impl.(task.WindowableTask)
	if windowable && window > 0 {
		tk := time.NewTicker(window)
		defer tk.Stop()
		windowC = tk.C
	}
	for {
		select {
		case <-t.r.stop:
			select {
			case <-t.commitCh: // a commit requested before the stop is still honoured
				return t.commit(ctx, "requested")
			default:
				return nil
			}
		case <-t.box.ready:
			if batch, ok := t.box.take(); ok {
				if err := t.processBatch(ctx, batch); err != nil {
					return err
				}
			}
		case <-commitC:
			if err := t.commit(ctx, "periodic"); err != nil {
				return err
			}
		case <-t.commitCh:
			if err := t.commit(ctx, "requested"); err != nil {
				return err
			}
		case <-windowC:
			err := t.guard("in Window", func() error { return wt.Window(ctx, t, t) })
			if err != nil {
				return fmt.Errorf("task %s: window: %w", t.name, err)
			}
			if err := t.handleRequests(ctx); err != nil {
				return err
			}
		}
	}
}

// processBatch processes a run of messages of one partition, stopping early when the
// container stops. Only messages whose Process returned nil count as processed.
func (t *taskInstance) processBatch(ctx context.Context, batch []system.IncomingEnvelope) error {
	if len(batch) == 0 {
		return nil
	}
	ssp := batch[0].SSP
	done := 0
	defer func() {
		if done > 0 {
			off := batch[done-1].Offset
			t.last[ssp] = off
			t.r.c.stats.processed.Add(int64(done))
			t.pubMu.Lock()
			t.pub[ssp] = off
			t.pubMu.Unlock()
		}
	}()
	for i := range batch {
		if t.r.stopping.Load() {
			return nil
		}
		env := &batch[i]
		if err := t.process(ctx, env); err != nil {
			if !task.Ignored(err, t.r.c.jc.IgnoredErrors) {
				return fmt.Errorf("task %s failed processing %s at offset %s: %w", t.name, ssp, env.Offset, err)
			}
			if err := t.skip(ctx, env, err); err != nil {
				return err
			}
		}
		done = i + 1
		if t.reqCommit || t.reqCommitAll || t.reqShutdown || t.reqShutdownAll {
			t.last[ssp] = env.Offset
			if err := t.handleRequests(ctx); err != nil {
				return err
			}
		}
	}
	if !t.caughtUp {
		t.last[ssp] = batch[done-1].Offset
		t.checkCaughtUp(ssp)
	}
	return nil
}

// skip sets aside a message whose processing failed with an error listed in
// task.ignored.exceptions: it is logged, counted, sent to the dead-letter stream when
// one is configured (through the task's own producer, so the checkpoint that covers
// it waits for that delivery), and then counts as processed.
func (t *taskInstance) skip(ctx context.Context, env *system.IncomingEnvelope, cause error) error {
	n := t.r.c.stats.ignored.Add(1)
	if n <= skipLogFull || n%skipLogEvery == 0 {
		t.log.Warn("skipping a message whose processing failed (task.ignored.exceptions)", "partition", env.SSP.String(), "offset", env.Offset,
			"error", cause, "skipped_so_far", n)
	}
	dl := t.r.c.jc.DeadLetter
	if dl == nil {
		return nil
	}
	msg := cause.Error()
	if len(msg) > maxErrorHeader {
		msg = msg[:maxErrorHeader] + "…"
	}
	headers := append(slices.Clip(env.Headers),
		system.Header{Key: HeaderJob, Value: []byte(t.r.c.jc.Name + "-" + t.r.c.jc.ID)},
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

func (t *taskInstance) checkCaughtUp(ssp system.SystemStreamPartition) {
	end, ok := t.ends[ssp]
	if !ok {
		return
	}
	admin, _ := t.r.admin(ssp.System)
	next, err := admin.OffsetAfter(t.last[ssp])
	if err != nil {
		return
	}
	if cmp, err := admin.CompareOffsets(next, end); err == nil && cmp >= 0 {
		delete(t.ends, ssp)
		if len(t.ends) == 0 {
			t.caughtUp = true
			t.log.Info("caught up: every partition reached the end offset it had at start")
			t.r.post(event{kind: evCaughtUp, task: t})
		}
	}
}

// handleRequests acts on the Commit and Shutdown calls the task made.
func (t *taskInstance) handleRequests(ctx context.Context) error {
	commit, all, down, downAll := t.reqCommit, t.reqCommitAll, t.reqShutdown, t.reqShutdownAll
	t.reqCommit, t.reqCommitAll, t.reqShutdown, t.reqShutdownAll = false, false, false, false
	if commit {
		if err := t.commit(ctx, "requested"); err != nil {
			return err
		}
	}
	if all {
		t.r.post(event{kind: evCommitAll, task: t})
	}
	if downAll {
		t.r.post(event{kind: evShutdownAll, task: t})
	} else if down {
		t.r.post(event{kind: evShutdownVote, task: t})
	}
	return nil
}

// snapshot returns the offsets to checkpoint: the offset after the last processed
// message of each partition, or the starting offset where nothing was processed.
func (t *taskInstance) snapshot() (map[system.SystemStreamPartition]string, error) {
	out := make(map[system.SystemStreamPartition]string, len(t.ssps))
	for _, ssp := range t.ssps {
		last, ok := t.last[ssp]
		if !ok {
			out[ssp] = t.starts[ssp].Offset
			continue
		}
		admin, _ := t.r.admin(ssp.System)
		next, err := admin.OffsetAfter(last)
		if err != nil {
			return nil, fmt.Errorf("offset after %s of %s: %w", last, ssp, err)
		}
		out[ssp] = next
	}
	return out, nil
}

// commit checkpoints the task: snapshot, flush producers, write, tell listeners.
func (t *taskInstance) commit(ctx context.Context, why string) error {
	c := t.r.c
	if t.commitFailed {
		return fmt.Errorf("commit of task %s: refused, an earlier commit of this task failed in this run", t.name)
	}
	if t.outputLost.Load() {
		t.commitFailed = true
		return fmt.Errorf("commit of task %s: refused, a message it sent could not be delivered", t.name)
	}
	c.stats.commits.Add(1)
	offsets, err := t.snapshot() // (1) before anything is flushed
	if err != nil {
		return fmt.Errorf("commit of task %s: %w", t.name, err)
	}
	if t.dirty { // (2)
		for sys, p := range t.producers {
			if err := p.Flush(ctx); err != nil {
				t.commitFailed = true
				return fmt.Errorf("commit of task %s: flush of outputs to system %s failed, so no checkpoint was written: %w", t.name, sys, err)
			}
		}
		t.dirty = false
	}
	if c.cpm == nil || maps.Equal(offsets, t.written) {
		if c.cpm == nil {
			t.notifyListeners(offsets)
		}
		return nil
	}
	if err := t.write(ctx, offsets); err != nil { // (3)
		t.commitFailed = true
		return err
	}
	t.written = offsets
	c.stats.writes.Add(1)
	c.stats.lastCheckpoint.Store(time.Now().UnixNano())
	t.log.Debug("checkpoint written", "why", why)
	t.notifyListeners(offsets) // (4)
	return nil
}

// write stores the checkpoint, trying up to 4 times with backoff (0.1, 0.4, 1.6 s)
// unless the manager has already retried it itself (checkpoint.ErrRetriesExhausted).
func (t *taskInstance) write(ctx context.Context, offsets map[system.SystemStreamPartition]string) error {
	const attempts = 4
	backoff := 100 * time.Millisecond
	var err error
	for i := 1; ; i++ {
		err = t.r.c.cpm.Write(ctx, t.name, checkpoint.Checkpoint{Offsets: offsets})
		if err == nil || i == attempts || errors.Is(err, checkpoint.ErrJobRunning) || errors.Is(err, checkpoint.ErrRetriesExhausted) {
			break
		}
		t.log.Warn("checkpoint write failed; retrying", "attempt", i, "of", attempts, "error", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("commit of task %s: %w", t.name, ctx.Err())
		}
		backoff *= 4
	}
	if err != nil {
		return fmt.Errorf("commit of task %s: checkpoint write failed: %w", t.name, err)
	}
	return nil
}

func (t *taskInstance) notifyListeners(offsets map[system.SystemStreamPartition]string) {
	for sys, cons := range t.r.consumers {
		l, ok := cons.(system.CheckpointListener)
		if !ok {
			continue
		}
		mine := map[system.SystemStreamPartition]string{}
		for ssp, off := range offsets {
			if ssp.System == sys {
				mine[ssp] = off
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := l.OnCheckpoint(mine); err != nil {
			t.r.c.stats.listenerErrors.Add(1)
			t.log.Error("checkpoint listener failed (the checkpoint stands)", "system", sys, "error", err)
		}
	}
}

// Send implements task.Collector.
func (t *taskInstance) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	// Tasks almost always send to one system: skip the map for it.
	if t.lastProducer != nil && env.Stream.System == t.lastSystem {
		t.dirty = true
		return t.lastProducer.Send(ctx, env)
	}
	p, ok := t.producers[env.Stream.System]
	if !ok {
		s, ok := t.r.c.systems[env.Stream.System]
		if !ok {
			return fmt.Errorf("send to %s: no system %q is configured", env.Stream, env.Stream.System)
		}
		var err error
		if p, err = s.NewProducer(); err != nil {
			return fmt.Errorf("create producer of system %s: %w", env.Stream.System, err)
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
func (t *taskInstance) deliveryFailed(err error) {
	t.outputLost.Store(true)
	t.r.fail(fmt.Errorf("task %s: an output could not be delivered, so the job stops and nothing after its last checkpoint is checkpointed: %w", t.name, err))
}

// Commit implements task.Coordinator.
func (t *taskInstance) Commit(scope task.Scope) {
	if scope == task.AllTasksInContainer {
		t.reqCommitAll = true
	}
	t.reqCommit = true
}

// Shutdown implements task.Coordinator.
func (t *taskInstance) Shutdown(scope task.Scope) {
	if scope == task.AllTasksInContainer {
		t.reqShutdownAll = true
		return
	}
	t.reqShutdown = true
}

func (t *taskInstance) close() error {
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

// initContext is the task.Context given to Init.
type initContext struct{ t *taskInstance }

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
	admin, _ := ic.t.r.admin(ssp.System)
	if _, err := admin.CompareOffsets(off, off); err != nil {
		return fmt.Errorf("starting offset for %s: %w", ssp, err)
	}
	ic.t.starts[ssp] = offset.Start{Offset: off, Reason: offset.FromOverride, Detail: "set by the task at init"}
	return nil
}

func (ic initContext) Config() config.Config { return ic.t.r.c.jc.Raw }

func (ic initContext) Logger() *slog.Logger { return ic.t.log }
