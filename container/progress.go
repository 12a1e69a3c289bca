package container

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// Progress is a snapshot of a container: its tasks, how far each partition was
// processed and checkpointed, how far it reaches, and whether the control loop turns.
// Taking it costs no request to any system: the high watermarks are those the
// consumers last heard (system.HighWatermarker), or the partition's end when the task
// was added.
type Progress struct {
	// Running says the container processes: start-up is over and it has not begun
	// to stop.
	Running bool
	// Stopping says the container has begun to stop (or has stopped).
	Stopping bool
	// Group says the container's tasks come from the job's task group
	// (job.coordinator.factory=kafka); Assigned says the group assigned them once.
	Group, Assigned bool
	// LoopTurned is when the control loop last handled an event or a tick; it turns
	// at least once a second while it is not wedged.
	LoopTurned time.Time
	// Start describes the start-up, once it is over.
	Start *StartEvent
	// Consumers holds, per input system, when its consumer last heard from the
	// system (system.ContactReporter); zero when it cannot tell.
	Consumers map[string]time.Time
	// Tasks are the container's tasks, by partition number.
	Tasks []TaskProgress
}

// TaskProgress is one task of a Progress.
type TaskProgress struct {
	Task string
	// Partitions are the task's input partitions, in order.
	Partitions []PartitionProgress
	// LastCheckpoint is when the task's latest checkpoint was written: in this run, or
	// before it (as the checkpoint manager recorded it); zero when unknown or none.
	LastCheckpoint time.Time
	// Bootstrapping says the task still reads its bootstrap streams.
	Bootstrapping bool
}

// PartitionProgress is one input partition of a task.
type PartitionProgress struct {
	SSP system.SystemStreamPartition
	// Checkpointed is the offset in the task's latest checkpoint (the next offset to
	// read); "" when the partition has none.
	Checkpointed string
	// Next is the offset of the next message the task processes.
	Next string
	// HighWatermark is the upcoming offset of the partition as last heard; "" unknown.
	HighWatermark string
	// Lag is how many messages lie from Next up to HighWatermark; -1 when unknown.
	Lag int64
}

// ContactReporter is implemented by consumers that know when they last heard from
// their system (any answer of a broker, records or not), so that readiness checks can
// tell a consumer cut off from its brokers.
type ContactReporter interface {
	LastContact() time.Time
}

// published is what a task core publishes for Progress beside its processed offsets;
// guarded by taskCore.pubMu, except ends, which is set before the task runs.
type published struct {
	written   map[system.SystemStreamPartition]string
	writtenAt time.Time
	ends      map[system.SystemStreamPartition]string // the partitions' ends when the task was added
}

// publishWritten records the offsets of a checkpoint the task just wrote.
func (t *taskCore) publishWritten(offsets map[system.SystemStreamPartition]string) {
	t.pubMu.Lock()
	t.ops.written = offsets
	t.ops.writtenAt = time.Now()
	t.pubMu.Unlock()
}

// watched is a consumer as Progress sees it.
type watched struct {
	sys  string
	cons system.Consumer
}

// liveState is what Progress reads of a run, from any goroutine.
type liveState struct {
	looping  atomic.Bool
	stopping atomic.Bool
	assigned atomic.Bool
	beat     atomic.Int64 // unix nanos of the control loop's last turn
	start    atomic.Pointer[StartEvent]
	watched  atomic.Pointer[[]watched]
}

func (l *liveState) turn() { l.beat.Store(time.Now().UnixNano()) }

// watch adds a consumer for Progress to read.
func (l *liveState) watch(sys string, cons system.Consumer) {
	var ws []watched
	if p := l.watched.Load(); p != nil {
		ws = slices.Clone(*p)
	}
	ws = append(ws, watched{sys: sys, cons: cons})
	l.watched.Store(&ws)
}

// unwatch removes a consumer that is closed.
func (l *liveState) unwatch(cons system.Consumer) {
	p := l.watched.Load()
	if p == nil {
		return
	}
	ws := slices.DeleteFunc(slices.Clone(*p), func(w watched) bool { return w.cons == cons })
	l.watched.Store(&ws)
}

// Progress returns a snapshot of the container (see Progress). It may be called from
// any goroutine, at any time; before Run and after it returned, it has no tasks.
func (c *Container) Progress() Progress {
	r := c.live.Load()
	if r == nil {
		return Progress{Stopping: c.ran.Load(), Group: c.coord != nil}
	}
	p := Progress{
		Running:  r.live.looping.Load() && !r.live.stopping.Load(),
		Stopping: r.live.stopping.Load(),
		Group:    r.coord != nil,
		Assigned: r.live.assigned.Load(),
		Start:    r.live.start.Load(),
	}
	if n := r.live.beat.Load(); n != 0 {
		p.LoopTurned = time.Unix(0, n)
	}
	hwm := map[system.SystemStreamPartition]string{}
	if ws := r.live.watched.Load(); ws != nil {
		p.Consumers = map[string]time.Time{}
		for _, w := range *ws {
			if h, ok := w.cons.(system.HighWatermarker); ok {
				maps.Copy(hwm, h.HighWatermarks())
			}
			var at time.Time
			if cr, ok := w.cons.(ContactReporter); ok {
				at = cr.LastContact()
			}
			p.Consumers[w.sys] = at
		}
	}
	seen := map[*taskRunner]bool{}
	for _, tr := range *r.route.Load() {
		if seen[tr] {
			continue
		}
		seen[tr] = true
		p.Tasks = append(p.Tasks, c.taskProgress(tr.core, hwm))
	}
	slices.SortFunc(p.Tasks, func(a, b TaskProgress) int { return job.CompareTaskNames(a.Task, b.Task) })
	return p
}

// taskProgress describes one task; hwm holds the high watermarks the consumers heard.
func (c *Container) taskProgress(t *taskCore, hwm map[system.SystemStreamPartition]string) TaskProgress {
	t.pubMu.Lock()
	pub := maps.Clone(t.pub)
	written, at := t.ops.written, t.ops.writtenAt
	t.pubMu.Unlock()
	tp := TaskProgress{Task: t.name, LastCheckpoint: at, Bootstrapping: t.bootstrapping.Load()}
	for _, ssp := range t.ssps {
		pp := PartitionProgress{SSP: ssp, Checkpointed: written[ssp], Next: t.starts[ssp].Offset, Lag: -1}
		admin, ok := c.systems[ssp.System]
		if !ok {
			tp.Partitions = append(tp.Partitions, pp)
			continue
		}
		a := admin.Admin()
		if last, ok := pub[ssp]; ok {
			if n, err := a.OffsetAfter(last); err == nil {
				pp.Next = n
			}
		}
		pp.HighWatermark = t.ops.ends[ssp]
		if h, ok := hwm[ssp]; ok {
			if pp.HighWatermark == "" {
				pp.HighWatermark = h
			} else if cmp, err := a.CompareOffsets(h, pp.HighWatermark); err == nil && cmp > 0 {
				pp.HighWatermark = h
			}
		}
		if pp.HighWatermark != "" {
			if d, err := a.Distance(pp.Next, pp.HighWatermark); err == nil {
				pp.Lag = max(d, 0)
			}
		}
		tp.Partitions = append(tp.Partitions, pp)
	}
	return tp
}
