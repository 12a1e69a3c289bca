package container

import (
	"sync"

	"github.com/sluice-streams/sluice/system"
)

// mailbox holds the batches polled for one task that the task has not taken yet.
//
// The dispatchers (one per consumer) put batches in without waiting when they can:
// once more than limit batches wait, the task's partitions are paused at every
// consumer that implements system.Pauser, so the slow task's memory stays bounded
// while the consumer's other partitions keep flowing to their tasks. They are resumed
// when the task takes the last waiting batch, so fetching overlaps with processing it.
// A consumer that cannot pause makes its dispatcher wait for room instead.
type mailbox struct {
	limit int
	// pausers are the task's partitions, grouped by the consumer that reads them, for
	// the consumers that can pause.
	pausers []pauseGroup

	mu      sync.Mutex
	batches [][]system.IncomingEnvelope // oldest first
	head    int                         // batches[head:] are waiting
	paused  bool

	ready chan struct{} // capacity 1: there are batches waiting
	room  chan struct{} // capacity 1: a batch was taken
}

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

// put adds a batch and reports whether the caller must wait for room (on m.room)
// before putting more: true when more than limit batches wait and the caller's
// consumer cannot pause.
func (m *mailbox) put(b []system.IncomingEnvelope, canPause bool) (full bool) {
	m.mu.Lock()
	m.batches = append(m.batches, b)
	n := len(m.batches) - m.head
	if n > m.limit && len(m.pausers) > 0 && !m.paused {
		m.paused = true
		for _, g := range m.pausers {
			g.p.Pause(g.ssps...)
		}
	}
	m.mu.Unlock()
	signal(m.ready)
	return n > m.limit && !canPause
}

// waiting returns how many batches wait.
func (m *mailbox) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.batches) - m.head
}

// take removes the oldest waiting batch; ok is false when none waits.
func (m *mailbox) take() (b []system.IncomingEnvelope, ok bool) {
	m.mu.Lock()
	if m.head == len(m.batches) {
		m.mu.Unlock()
		return nil, false
	}
	b = m.batches[m.head]
	m.batches[m.head] = nil
	m.head++
	left := len(m.batches) - m.head
	if left == 0 {
		m.batches, m.head = m.batches[:0], 0
		if m.paused {
			m.paused = false
			for _, g := range m.pausers {
				g.p.Resume(g.ssps...)
			}
		}
	}
	m.mu.Unlock()
	if left > 0 {
		signal(m.ready)
	}
	signal(m.room)
	return b, true
}
