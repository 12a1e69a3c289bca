package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
	records recordCache

	inflight atomic.Int64
	waiting  atomic.Bool
	closed   atomic.Bool

	mu        sync.Mutex
	wake      chan struct{} // closed when inflight reaches zero while waiting
	firstErr  error
	onFailure func(error) // see NotifyFailure
}

var (
	_ system.Producer        = (*Producer)(nil)
	_ system.FailureNotifier = (*Producer)(nil)
)

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
	r := p.records.get()
	r.Topic, r.Key, r.Value, r.Partition, r.Timestamp = env.Stream.Stream, env.Key, env.Message, env.Partition, env.Timestamp
	for _, h := range env.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if env.PartitionByKey {
		r.Partition = byKey
	}
	if ctx.Done() == nil {
		// The usual case (the container's task context cannot be cancelled): one
		// shared context per moment bounds delivery as delivery.timeout.ms says.
		ctx = p.s.deadlines.current()
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.s.set.deliveryTimeout)
		r.Context = ctx // kept for the cancel below, once the promise has run
		p.inflight.Add(1)
		p.cl.Produce(ctx, r, func(r *kgo.Record, err error) { cancel(); p.promise(r, err) })
		return nil
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
		var notify func(error)
		if p.firstErr == nil {
			p.firstErr = p.deliveryError(r, err)
			notify = p.onFailure
		}
		first := p.firstErr
		p.mu.Unlock()
		if notify != nil {
			notify(first)
		}
	}
	p.records.put(r) // franz-go is done with it once the promise returns
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

// recordCache recycles the records one Producer hands to franz-go: the client is
// done with a record once its promise has returned, so a later Send can reuse it, and
// a passthrough job allocates no record per message. Senders take records from a list
// of their own and, once it is empty, swap it for the list the promises filled, so
// that a sender and franz-go's promise goroutine share one lock per many records, not
// one per record (a sync.Pool cost more: its records came back on another P and were
// dropped at every collection). It keeps at most maxCachedRecords; a record past that
// is left to the collector.
type recordCache struct {
	getMu sync.Mutex // the senders'
	local []*kgo.Record

	putMu    sync.Mutex // the promises'
	returned []*kgo.Record
}

// maxCachedRecords bounds a producer's cache: more than franz-go buffers per client by
// default (10,000 records) is never in flight at once.
const maxCachedRecords = 1 << 14

func (rc *recordCache) get() *kgo.Record {
	rc.getMu.Lock()
	defer rc.getMu.Unlock()
	if len(rc.local) == 0 {
		rc.putMu.Lock()
		rc.local, rc.returned = rc.returned, rc.local
		rc.putMu.Unlock()
		if len(rc.local) == 0 {
			return new(kgo.Record)
		}
	}
	n := len(rc.local) - 1
	r := rc.local[n]
	rc.local[n] = nil
	rc.local = rc.local[:n]
	return r
}

func (rc *recordCache) put(r *kgo.Record) {
	clear(r.Headers)
	*r = kgo.Record{Headers: r.Headers[:0]} // keep the headers' room, drop the rest
	rc.putMu.Lock()
	if len(rc.returned) < maxCachedRecords {
		rc.returned = append(rc.returned, r)
	}
	rc.putMu.Unlock()
}

// NotifyFailure implements system.FailureNotifier: fn is called once, on a franz-go
// goroutine, with the first delivery failure of this producer (at once if one
// happened already). It must not block.
func (p *Producer) NotifyFailure(fn func(error)) {
	p.mu.Lock()
	p.onFailure = fn
	first := p.firstErr
	p.mu.Unlock()
	if first != nil && fn != nil {
		fn(first)
	}
}

// deliveryError says in a user's words why r could not be delivered, and which
// setting or topic to look at, wrapping the client's error.
func (p *Producer) deliveryError(r *kgo.Record, err error) error {
	name := p.s.name
	switch {
	case errors.Is(err, kerr.MessageTooLarge):
		return fmt.Errorf("kafka system %q: a message of %d bytes (key and value) to topic %q is too large: the producer sends batches of at most %d bytes "+
			"(systems.%s.producer.max.request.size, or batch.size when set) and the broker refuses messages over the topic's max.message.bytes; raise whichever is smaller: %w",
			name, len(r.Key)+len(r.Value), r.Topic, p.s.set.maxProducerBatchBytes(), name, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("kafka system %q: output topic %q does not exist (create it, e.g. with sluice topic create, or let the broker auto-create topics): %w", name, r.Topic, err)
	}
	var pick, available int
	if _, serr := fmt.Sscanf(err.Error(), "invalid record partitioning choice of %d from %d available", &pick, &available); serr == nil {
		parts := fmt.Sprintf("%d partitions (0..%d)", available, available-1)
		if available == 1 {
			parts = "1 partition (0)"
		}
		return fmt.Errorf("kafka system %q: the task sent a message to partition %d of topic %q, which has %s; "+
			"give the output at least as many partitions as the task uses, or send by key: %w", name, pick, r.Topic, parts, err)
	}
	return fmt.Errorf("kafka system %q: producing to topic %q partition %d: %w", name, r.Topic, r.Partition, err)
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

// deliveryDeadlines hands out contexts that bound how long a produced record may wait
// for its acknowledgement: delivery.timeout.ms from the moment it is sent, give or
// take one slot. franz-go fails a record whose context is done the way it fails one
// past kgo.RecordDeliveryTimeout (only where that is safe for idempotence), but
// measures the latter from the record's timestamp, which Sluice keeps from the input.
// A goroutine (started by the system's Start, ended by its Close) replaces the
// current context every slot, so that Send reads neither the clock nor a lock.
type deliveryDeadlines struct {
	timeout, slot time.Duration
	cur           atomic.Pointer[deadlineSlot]
	stop          chan struct{}
	done          chan struct{}
}

type deadlineSlot struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newDeliveryDeadlines(timeout time.Duration) *deliveryDeadlines {
	d := &deliveryDeadlines{timeout: timeout, slot: max(timeout/16, time.Millisecond), stop: make(chan struct{}), done: make(chan struct{})}
	d.rotate()
	return d
}

// rotate makes the current context one whose deadline is timeout plus one slot away:
// it is handed out for one slot, so every record gets between timeout and
// timeout+slot.
func (d *deliveryDeadlines) rotate() {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout+d.slot)
	d.cur.Store(&deadlineSlot{ctx: ctx, cancel: cancel})
}

// run rotates the context every slot until close. Contexts handed out earlier release
// themselves at their deadline.
func (d *deliveryDeadlines) run() {
	defer close(d.done)
	tk := time.NewTicker(d.slot)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			d.rotate()
		case <-d.stop:
			return
		}
	}
}

// current returns a context whose deadline is between timeout and timeout+slot away.
func (d *deliveryDeadlines) current() context.Context { return d.cur.Load().ctx }

// close ends run, if it was started, and releases the newest context.
func (d *deliveryDeadlines) close(started bool) {
	if started {
		close(d.stop)
		<-d.done
	}
	d.cur.Load().cancel()
}
