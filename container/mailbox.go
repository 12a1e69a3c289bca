package container

import (
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
	paused  bool

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
			g.p.Resume(g.ssps...)
		}
	}
}
