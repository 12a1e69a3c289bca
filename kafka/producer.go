package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// Producer sends one task's messages through the system's shared producer client
// (acks=all, idempotent). It counts its own messages in flight, so Flush waits for
// this task's messages only, not for other tasks' (the client's own Flush would wait
// for every task's, forever under continuous load). Flush first asks the client to
// send lingering batches at once without waiting for them (a client Flush with a
// context that is already done), so it rarely waits out linger.ms (franz-go's
// default is 10 ms); a batch the client has not yet placed (its topic's metadata is
// still loading) may still wait up to the linger. A message that cannot be
// delivered within delivery.timeout.ms (default 30 s) fails, and the failure
// surfaces at Flush, at every Flush from then on.
//
// Send and Flush are meant to be called from the task's goroutine; they are safe
// for concurrent use all the same.
type Producer struct {
	s       *System
	cl      *kgo.Client
	promise func(*kgo.Record, error) // p.onDelivery, bound once

	inflight atomic.Int64
	waiting  atomic.Bool
	closed   atomic.Bool

	mu       sync.Mutex
	wake     chan struct{} // closed when inflight reaches zero while waiting
	firstErr error
}

var _ system.Producer = (*Producer)(nil)

// byKey marks a record whose partition the partitioner chooses from its key.
const byKey = -1

// Send queues env. It returns an error at once for a message that can never be sent
// (another system, no stream, a negative partition); delivery errors surface at
// Flush. env.Partition is used exactly unless env.PartitionByKey is set, in which case
// the partition is chosen from the key as Kafka's Java client does (murmur2 of the
// key, modulo the partition count; nil keys go round-robin).
func (p *Producer) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	switch {
	case p.closed.Load():
		return fmt.Errorf("kafka system %q: Send on a closed producer", p.s.name)
	case env.Stream.System != p.s.name:
		return fmt.Errorf("kafka system %q: cannot send to %s of another system", p.s.name, env.Stream)
	case env.Stream.Stream == "":
		return fmt.Errorf("kafka system %q: cannot send to an empty stream name", p.s.name)
	case !env.PartitionByKey && env.Partition < 0:
		return fmt.Errorf("kafka system %q: cannot send to %s partition %d", p.s.name, env.Stream, env.Partition)
	}
	r := &kgo.Record{Topic: env.Stream.Stream, Key: env.Key, Value: env.Message, Partition: env.Partition}
	if env.PartitionByKey {
		r.Partition = byKey
	}
	p.inflight.Add(1)
	p.cl.Produce(ctx, r, p.promise)
	return nil
}

func newProducer(s *System) *Producer {
	p := &Producer{s: s, cl: s.prod}
	p.promise = p.onDelivery
	return p
}

// onDelivery runs once per record, on a franz-go goroutine.
func (p *Producer) onDelivery(r *kgo.Record, err error) {
	if err != nil {
		p.mu.Lock()
		if p.firstErr == nil {
			p.firstErr = fmt.Errorf("kafka system %q: producing to topic %q partition %d: %w", p.s.name, r.Topic, r.Partition, err)
		}
		p.mu.Unlock()
	}
	if p.inflight.Add(-1) == 0 && p.waiting.Load() {
		p.mu.Lock()
		if p.wake != nil {
			close(p.wake)
			p.wake = nil
		}
		p.waiting.Store(false)
		p.mu.Unlock()
	}
}

// Flush waits until every message this producer sent is acknowledged by all in-sync
// replicas or has failed, then returns the first delivery failure of this producer.
// A failure is never forgotten: every later Flush returns it too, because a message
// that was not delivered must never be covered by a checkpoint.
func (p *Producer) Flush(ctx context.Context) error {
	var rekick *time.Timer
	for p.inflight.Load() != 0 {
		// Send lingering batches now: with a done context the client's Flush
		// does not wait for anything.
		_ = p.cl.Flush(p.s.doneCtx)
		p.mu.Lock()
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.waiting.Store(true)
		p.mu.Unlock()
		// Publish waiting before looking again: the last promise either sees
		// waiting, or we see its decrement.
		if p.inflight.Load() == 0 {
			break
		}
		// Kick again now and then, for records that reached a batch only after
		// the kick (their topic's metadata was loading).
		if rekick == nil {
			rekick = time.NewTimer(flushRekick)
			defer rekick.Stop()
		} else {
			rekick.Reset(flushRekick)
		}
		select {
		case <-wake:
		case <-rekick.C:
		case <-ctx.Done():
			return fmt.Errorf("kafka system %q: flush: %d messages still unacknowledged: %w", p.s.name, p.inflight.Load(), ctx.Err())
		}
	}
	p.mu.Lock()
	err := p.firstErr
	p.mu.Unlock()
	return err
}

// flushRekick is how often a waiting Flush asks the client again to send what
// lingers.
const flushRekick = 50 * time.Millisecond

// Close stops further Sends; it flushes nothing (call Flush first) and leaves the
// shared client to the System.
func (p *Producer) Close() error {
	p.closed.Store(true)
	return nil
}

// envelopePartitioner uses a record's partition as set by Send, or, for records
// marked byKey, Kafka's default key hashing (murmur2, as kgo.StickyKeyPartitioner(nil)
// and the Java client do). Records marked byKey with a nil key go round-robin.
//
// It deliberately does not implement kgo.TopicPartitionerOnNewBatch: franz-go holds
// a per-topic lock while buffering for partitioners that do.
type envelopePartitioner struct{}

func (envelopePartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &envelopeTopicPartitioner{hash: kgo.StickyKeyPartitioner(nil).ForTopic(topic)}
}

type envelopeTopicPartitioner struct {
	hash kgo.TopicPartitioner // used for non-nil keys only, where it keeps no state
	rr   int                  // next partition for nil keys; franz-go serialises calls per topic
}

func (*envelopeTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition != byKey || r.Key != nil
}

func (t *envelopeTopicPartitioner) Partition(r *kgo.Record, n int) int {
	switch {
	case r.Partition != byKey:
		return int(r.Partition)
	case r.Key != nil:
		return t.hash.Partition(r, n)
	}
	t.rr = (t.rr + 1) % n
	return t.rr
}
