package container

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/system"
)

// mailbox holds the batches polled for one task that the task has not taken yet.
//
// A dispatcher (one per consumer) puts batches in. When more than limit batches
// wait, the dispatcher waits for the task to take one, as plain backpressure: the
// consumer keeps its next fetch buffered meanwhile, so a task that is merely busy
// gets its next batch the moment it is ready. If the task takes nothing for
// pauseAfter, it has fallen behind: the dispatcher pauses the task's partitions at
// every consumer that implements system.Pauser and moves on, so the consumer's other
// partitions keep flowing to their tasks while the slow task's memory stays bounded.
// The partitions are resumed when the task takes the last waiting batch, so fetching
// overlaps with processing it. A consumer that cannot pause makes its dispatcher wait
// for as long as it takes.
type mailbox struct {
	limit int
	// pausers are the task's partitions, grouped by the consumer that reads them, for
	// the consumers that can pause.
	pausers []pauseGroup

	mu      sync.Mutex
	batches []batch // oldest first
	head    int     // batches[head:] are waiting
	// prio, when set, is each partition's samza.priority: take returns the waiting
	// batch of the highest priority first (arrival order among equals).
	prio func(system.SystemStreamPartition) int
	// held are partitions paused by hold (the task is bootstrapping).
	held   map[system.SystemStreamPartition]bool
	paused bool

	ready chan struct{} // capacity 1: there are batches waiting
	room  chan struct{} // capacity 1: a batch was taken
}

// pauseAfter is how long a dispatcher waits for a task with a full mailbox before it
// pauses the task's partitions and moves on.
const pauseAfter = 50 * time.Millisecond

type pauseGroup struct {
	p    system.Pauser
	ssps []system.SystemStreamPartition
}

func newMailbox(limit int) *mailbox {
	return &mailbox{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// batch is a run of messages of one partition, part of one polled slice.
type batch struct {
	envs  []system.IncomingEnvelope
	lease *lease
}

// lease counts the holders of one polled slice, the dispatcher and each batch cut from
// it, and gives the slice back to its consumer (system.Recycler) when the last one is
// done with it. A nil lease does nothing.
type lease struct {
	envs []system.IncomingEnvelope
	rec  system.Recycler
	held atomic.Int32
}

func newLease(envs []system.IncomingEnvelope, rec system.Recycler) *lease {
	if rec == nil {
		return nil
	}
	l := &lease{envs: envs, rec: rec}
	l.held.Store(1) // the dispatcher's
	return l
}

func (l *lease) hold() {
	if l != nil {
		l.held.Add(1)
	}
}

func (l *lease) release() {
	if l != nil && l.held.Add(-1) == 0 {
		l.rec.Recycle(l.envs)
	}
}

// put adds a batch and reports whether more than limit batches wait now.
func (m *mailbox) put(b batch) (full bool) {
	m.mu.Lock()
	m.batches = append(m.batches, b)
	n := len(m.batches) - m.head
	m.mu.Unlock()
	signal(m.ready)
	return n > m.limit
}

// isPaused reports whether the task's partitions are paused.
func (m *mailbox) isPaused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

// pause pauses the task's partitions if more than limit batches still wait and they
// are not paused yet; it reports whether they are paused now.
func (m *mailbox) pause() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.paused && len(m.batches)-m.head > m.limit && len(m.pausers) > 0 {
		m.paused = true
		for _, g := range m.pausers {
			g.p.Pause(g.ssps...)
		}
	}
	return m.paused
}

// waiting returns how many batches wait.
func (m *mailbox) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.batches) - m.head
}

// take removes the oldest waiting batch; ok is false when none waits.
func (m *mailbox) take() (b batch, ok bool) {
	m.mu.Lock()
	if m.head == len(m.batches) {
		m.mu.Unlock()
		return batch{}, false
	}
	if m.prio != nil {
		m.preferLocked()
	}
	b = m.batches[m.head]
	m.batches[m.head] = batch{}
	m.head++
	left := len(m.batches) - m.head
	if left == 0 {
		m.batches, m.head = m.batches[:0], 0
		m.resumeLocked()
	}
	m.mu.Unlock()
	if left > 0 {
		signal(m.ready)
	}
	signal(m.room)
	return b, true
}

// resume resumes the task's partitions if they are paused.
func (m *mailbox) resume() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resumeLocked()
}

func (m *mailbox) resumeLocked() {
	if m.paused {
		m.paused = false
		for _, g := range m.pausers {
			g.p.Resume(m.unheld(g.ssps)...)
		}
	}
}

// unheld returns ssps without the held ones.
func (m *mailbox) unheld(ssps []system.SystemStreamPartition) []system.SystemStreamPartition {
	if len(m.held) == 0 {
		return ssps
	}
	out := make([]system.SystemStreamPartition, 0, len(ssps))
	for _, ssp := range ssps {
		if !m.held[ssp] {
			out = append(out, ssp)
		}
	}
	return out
}

// preferLocked moves the waiting batch of the highest priority (the first of those)
// to the head, so that take returns it.
func (m *mailbox) preferLocked() {
	best := m.head
	for i := m.head + 1; i < len(m.batches); i++ {
		if m.prio(m.batches[i].envs[0].SSP) > m.prio(m.batches[best].envs[0].SSP) {
			best = i
		}
	}
	if best != m.head {
		b := m.batches[best]
		copy(m.batches[m.head+1:best+1], m.batches[m.head:best])
		m.batches[m.head] = b
	}
}

// hold pauses ssp at its consumer until release, whatever the slow-task pausing does
// meanwhile: the task is bootstrapping and must not be given messages of ssp yet.
func (m *mailbox) hold(ssp system.SystemStreamPartition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[ssp] {
		return
	}
	if m.held == nil {
		m.held = map[system.SystemStreamPartition]bool{}
	}
	m.held[ssp] = true
	for _, g := range m.pausers {
		if slices.Contains(g.ssps, ssp) {
			g.p.Pause(ssp)
		}
	}
}

// release resumes the partitions hold paused (unless the task is paused as slow).
func (m *mailbox) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ssps []system.SystemStreamPartition
	for ssp := range m.held {
		ssps = append(ssps, ssp)
	}
	m.held = nil
	if m.paused {
		return // resumed with the rest when the task has caught up
	}
	for _, g := range m.pausers {
		var mine []system.SystemStreamPartition
		for _, ssp := range ssps {
			if slices.Contains(g.ssps, ssp) {
				mine = append(mine, ssp)
			}
		}
		if len(mine) > 0 {
			g.p.Resume(mine...)
		}
	}
}
