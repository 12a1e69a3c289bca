// Package inmem is an in-process message system for unit tests of task logic: a Store
// holds streams of partitions in memory, and its Factory plugs it into a container as a
// system like any other. Offsets are decimal message indexes ("0", "1", ...), written
// plainly (package decimal).
//
// It keeps the promises a real system makes (system/systemtest checks them for it and
// for Kafka): a delivery failure sticks to its producer, a consumer whose next message
// was deleted (Store.Truncate) follows systems.<name>.consumer.auto.offset.reset (or the
// stream's own key), and partitions can be added to and removed from a running consumer.
//
// It is not a substitute for Kafka in tests of Sluice itself; it exists so users can
// run their tasks through a real container without a broker.
package inmem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

// Message is one stored message.
type Message struct {
	Key, Value []byte
	Headers    []system.Header
	Time       time.Time
}

type partition struct {
	base int64 // offset of msgs[0]; raised by Truncate
	msgs []Message
}

// Store holds streams. It is safe for concurrent use. The zero value is not usable;
// call NewStore.
type Store struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every append
	streams map[string][]*partition
	failErr error
	acked   map[system.SystemStreamPartition]string // by CheckpointListener
}

// Acknowledged returns the offset last acknowledged for ssp through the consumers'
// system.CheckpointListener (the next offset to read, as checkpointed), and whether
// any was. It lets tests see what a consumer-controlled system would have been told.
func (s *Store) Acknowledged(ssp system.SystemStreamPartition) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off, ok := s.acked[ssp]
	return off, ok
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{changed: make(chan struct{}), streams: map[string][]*partition{}}
}

// CreateStream creates stream with n partitions. Creating an existing stream with the
// same partition count is a no-op.
func (s *Store) CreateStream(stream string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ps, ok := s.streams[stream]; ok {
		if len(ps) != n {
			return fmt.Errorf("inmem: stream %q exists with %d partitions, not %d", stream, len(ps), n)
		}
		return nil
	}
	if n < 1 {
		return fmt.Errorf("inmem: stream %q: partition count %d must be at least 1", stream, n)
	}
	ps := make([]*partition, n)
	for i := range ps {
		ps[i] = &partition{}
	}
	s.streams[stream] = ps
	return nil
}

func (s *Store) part(stream string, p int32) (*partition, error) {
	ps, ok := s.streams[stream]
	if !ok {
		return nil, fmt.Errorf("inmem: no stream %q", stream)
	}
	if p < 0 || int(p) >= len(ps) {
		return nil, fmt.Errorf("inmem: stream %q has no partition %d", stream, p)
	}
	return ps[p], nil
}

// AddPartitions grows stream to n partitions, as a Kafka topic's partition count can be
// raised while jobs read it. Shrinking is an error.
func (s *Store) AddPartitions(stream string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.streams[stream]
	switch {
	case !ok:
		return fmt.Errorf("inmem: no stream %q", stream)
	case n < len(ps):
		return fmt.Errorf("inmem: stream %q has %d partitions; cannot shrink it to %d", stream, len(ps), n)
	}
	for len(ps) < n {
		ps = append(ps, &partition{})
	}
	s.streams[stream] = ps
	return nil
}

// Append adds a message stamped with the current time and returns its offset.
func (s *Store) Append(stream string, p int32, key, value []byte) (string, error) {
	return s.AppendMessage(stream, p, Message{Key: key, Value: value})
}

// AppendMessage adds a copy of m (a zero Time is the current time) and returns its
// offset.
func (s *Store) AppendMessage(stream string, p int32, m Message) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(stream, p, m)
}

func (s *Store) appendLocked(stream string, p int32, m Message) (string, error) {
	part, err := s.part(stream, p)
	if err != nil {
		return "", err
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Key, m.Value = slices.Clone(m.Key), slices.Clone(m.Value)
	if m.Headers != nil {
		hs := make([]system.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = system.Header{Key: h.Key, Value: slices.Clone(h.Value)}
		}
		m.Headers = hs
	}
	part.msgs = append(part.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return decimal.Format(part.base + int64(len(part.msgs)) - 1), nil
}

// Messages returns a copy of the retained messages of one partition.
func (s *Store) Messages(stream string, p int32) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	part, err := s.part(stream, p)
	if err != nil {
		return nil, err
	}
	return slices.Clone(part.msgs), nil
}

// Retained returns a copy of the retained messages of one partition and the offset of
// the first of them (the partition's oldest offset, also when it holds none).
func (s *Store) Retained(stream string, p int32) ([]Message, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	part, err := s.part(stream, p)
	if err != nil {
		return nil, 0, err
	}
	return slices.Clone(part.msgs), part.base, nil
}

// Truncate deletes the messages before offset, as retention would.
func (s *Store) Truncate(stream string, p int32, before int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	part, err := s.part(stream, p)
	if err != nil {
		return err
	}
	n := before - part.base
	if n <= 0 {
		return nil
	}
	if n > int64(len(part.msgs)) {
		n = int64(len(part.msgs))
	}
	part.msgs = part.msgs[n:]
	part.base += n
	return nil
}

// FailProduce makes the delivery of every message sent from now on fail with err,
// until FailProduce(nil): the message is not stored, and its producer's Flush returns
// the failure. A producer never forgets a failed delivery, as a Kafka producer does not:
// its every later Flush fails too, also after FailProduce(nil), so a lost message is
// never covered by a checkpoint. It lets tests check that a failed delivery fails the
// commit.
func (s *Store) FailProduce(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

// Factory returns a system.Factory whose systems all use this store. A system reads
// one kind of key: what its consumers do when the next message of a partition no longer
// exists (Truncate deleted it) or lies beyond the end,
// systems.<name>.consumer.auto.offset.reset, and per stream
// systems.<name>.streams.<stream>.consumer.auto.offset.reset: oldest (the default;
// Kafka's earliest and smallest too) moves to the oldest message, upcoming (latest,
// largest) to the next one to be appended, and fail (none) makes Poll fail with an
// error naming the partition and offset. A bad value is an error naming its key.
func (s *Store) Factory() system.Factory {
	return func(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
		var p config.Problems
		y := &System{name: name, store: s, policies: system.ReadResetPolicies(&p, cfg, name)}
		if err := p.Err(); err != nil {
			return nil, err
		}
		return y, nil
	}
}

// System is one configured in-memory system.
type System struct {
	name            string
	store           *Store
	policies        system.ResetPolicies
	resets, skipped atomic.Int64
}

// resetPolicy is the out-of-range policy of stream.
func (y *System) resetPolicy(stream string) system.ResetPolicy { return y.policies.Of(stream) }

var (
	_ system.System             = (*System)(nil)
	_ system.ResetCounter       = (*System)(nil)
	_ system.Consumer           = (*Consumer)(nil)
	_ system.Pauser             = (*Consumer)(nil)
	_ system.PartitionChanger   = (*Consumer)(nil)
	_ system.CheckpointListener = (*Consumer)(nil)
	_ system.Producer           = (*Producer)(nil)
	_ system.FailureNotifier    = (*Producer)(nil)
)

// OutOfRangeResets implements system.ResetCounter: how many times a consumer found
// its next message deleted by Truncate (or beyond the end) and moved per its reset
// policy, and how many messages those moves skipped.
func (y *System) OutOfRangeResets() (resets, skipped int64) {
	return y.resets.Load(), y.skipped.Load()
}

// Start does nothing: the store is already there.
func (y *System) Start(context.Context) error { return nil }

// Admin returns the system's admin.
func (y *System) Admin() system.Admin { return admin{decimal.Offsets{Prefix: "inmem"}, y} }

// NewConsumer returns a consumer over the store.
func (y *System) NewConsumer() (system.Consumer, error) {
	return &Consumer{sys: y, next: map[system.SystemStreamPartition]int64{}}, nil
}

// NewProducer returns a producer into the store.
func (y *System) NewProducer() (system.Producer, error) { return &Producer{sys: y}, nil }

// Close does nothing.
func (y *System) Close() error { return nil }

type admin struct {
	decimal.Offsets
	y *System
}

func (a admin) Partitions(_ context.Context, streams ...string) (map[system.SystemStreamPartition]system.PartitionMetadata, error) {
	s := a.y.store
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[system.SystemStreamPartition]system.PartitionMetadata{}
	for _, stream := range streams {
		ps, ok := s.streams[stream]
		if !ok {
			return nil, fmt.Errorf("inmem: no stream %q in system %q", stream, a.y.name)
		}
		for i, p := range ps {
			up := p.base + int64(len(p.msgs))
			md := system.PartitionMetadata{Oldest: decimal.Format(p.base), Upcoming: decimal.Format(up)}
			if len(p.msgs) > 0 {
				md.Newest = decimal.Format(up - 1)
			}
			out[system.NewSSP(a.y.name, stream, int32(i))] = md
		}
	}
	return out, nil
}

// Consumer reads registered partitions of the store. It implements system.Pauser and
// system.PartitionChanger; all its methods are safe for concurrent use.
type Consumer struct {
	sys     *System
	mu      sync.Mutex
	next    map[system.SystemStreamPartition]int64
	paused  map[system.SystemStreamPartition]bool
	wake    chan struct{} // closed and replaced by Resume and AddPartitions, to wake a waiting Poll
	started bool
	failed  error // sticky: set when a partition is out of range under the fail policy
}

// OnCheckpoint implements system.CheckpointListener: it records offsets as
// acknowledged in the store (see Store.Acknowledged).
func (c *Consumer) OnCheckpoint(offsets map[system.SystemStreamPartition]string) error {
	s := c.sys.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acked == nil {
		s.acked = map[system.SystemStreamPartition]string{}
	}
	for ssp, off := range offsets {
		s.acked[ssp] = off
	}
	return nil
}

// Pause stops Poll from returning messages of ssps until Resume.
func (c *Consumer) Pause(ssps ...system.SystemStreamPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused == nil {
		c.paused = map[system.SystemStreamPartition]bool{}
	}
	for _, ssp := range ssps {
		c.paused[ssp] = true
	}
}

// Resume lets Poll return messages of ssps again, from where it stopped.
func (c *Consumer) Resume(ssps ...system.SystemStreamPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ssp := range ssps {
		delete(c.paused, ssp)
	}
	c.wakeLocked()
}

func (c *Consumer) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// Register sets where ssp is read from.
func (c *Consumer) Register(ssp system.SystemStreamPartition, offset string) error {
	n, err := decimal.Parse(offset)
	if err != nil {
		return fmt.Errorf("inmem: register %s: %w", ssp, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("inmem: register after start")
	}
	c.next[ssp] = n
	return nil
}

// AddPartitions implements system.PartitionChanger: it starts reading each partition
// from its offset, before or after Start. A partition already read, one of another
// system or a malformed offset is an error, and then nothing is added.
func (c *Consumer) AddPartitions(offsets map[system.SystemStreamPartition]string) error {
	parsed := make(map[system.SystemStreamPartition]int64, len(offsets))
	for ssp, off := range offsets {
		if ssp.System != c.sys.name {
			return fmt.Errorf("inmem system %q: cannot read %s of another system", c.sys.name, ssp)
		}
		n, err := decimal.Parse(off)
		if err != nil {
			return fmt.Errorf("inmem: add %s: %w", ssp, err)
		}
		parsed[ssp] = n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ssp := range parsed {
		if _, ok := c.next[ssp]; ok {
			return fmt.Errorf("inmem system %q: %s is read already", c.sys.name, ssp)
		}
	}
	for ssp, n := range parsed {
		c.next[ssp] = n
	}
	c.wakeLocked()
	return nil
}

// RemovePartitions implements system.PartitionChanger: Poll returns nothing more of
// ssps once it returns. Their pause is forgotten: a partition added again is read.
func (c *Consumer) RemovePartitions(ssps ...system.SystemStreamPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ssp := range ssps {
		delete(c.next, ssp)
		delete(c.paused, ssp)
	}
	return nil
}

// Start begins reading.
func (c *Consumer) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = true
	return nil
}

// maxPoll bounds one Poll, so that a large backlog is handed over in pieces.
const maxPoll = 512

// Poll returns the next messages of the registered partitions, waiting for some.
func (c *Consumer) Poll(ctx context.Context) ([]system.IncomingEnvelope, error) {
	s := c.sys.store
	for {
		s.mu.Lock()
		c.mu.Lock()
		out, err := c.collectLocked()
		wait := s.changed
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		woken := c.wake
		c.mu.Unlock()
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		case <-woken:
		}
	}
}

// collectLocked takes the next messages; c.mu and the store's mu are held.
func (c *Consumer) collectLocked() ([]system.IncomingEnvelope, error) {
	if c.failed != nil {
		return nil, c.failed
	}
	s := c.sys.store
	var out []system.IncomingEnvelope
	for ssp, next := range c.next {
		if ssp.System != c.sys.name || c.paused[ssp] {
			continue
		}
		part, err := s.part(ssp.Stream, ssp.Partition)
		if err != nil {
			return nil, err
		}
		end := part.base + int64(len(part.msgs))
		if next < part.base || next > end {
			// Retention deleted what we were to read next, or it lies beyond the end:
			// the reset policy says where to go.
			if next, err = c.resetLocked(ssp, next, part.base, end); err != nil {
				c.failed = err
				return nil, err
			}
		}
		for ; next < end && len(out) < maxPoll; next++ {
			m := part.msgs[next-part.base]
			out = append(out, system.IncomingEnvelope{SSP: ssp, Offset: decimal.Format(next), Key: m.Key, Message: m.Value, Headers: m.Headers, Timestamp: m.Time})
		}
		c.next[ssp] = next
	}
	return out, nil
}

// resetLocked moves ssp, whose next offset is outside [oldest, end], per its reset
// policy, and counts the move (system.ResetCounter) so the container reports it.
func (c *Consumer) resetLocked(ssp system.SystemStreamPartition, next, oldest, end int64) (int64, error) {
	y := c.sys
	target := oldest
	switch y.resetPolicy(ssp.Stream) {
	case system.ResetFail:
		return 0, fmt.Errorf("inmem system %q: %s: offset %d is out of range (deleted by retention, or beyond the end; the partition holds %d to %d) and auto.offset.reset is fail; "+
			"set systems.%s.streams.%s.consumer.auto.offset.reset (or systems.%s.consumer.auto.offset.reset) to oldest or upcoming to resume past it, or rewrite the checkpoint",
			y.name, ssp, next, oldest, end, y.name, ssp.Stream, y.name)
	case system.ResetUpcoming:
		target = end
	}
	y.resets.Add(1)
	y.skipped.Add(max(0, target-next))
	return target, nil
}

// Close does nothing.
func (c *Consumer) Close() error { return nil }

// Producer appends to the store. It implements system.FailureNotifier.
type Producer struct {
	sys *System

	mu        sync.Mutex
	firstErr  error
	onFailure func(error)
}

// Send appends env to its stream right away, unless Store.FailProduce makes its
// delivery fail: then the message is not stored, and Flush reports the failure.
func (p *Producer) Send(_ context.Context, env system.OutgoingEnvelope) error {
	if env.Stream.System != p.sys.name {
		return fmt.Errorf("inmem: producer of system %q cannot send to %s", p.sys.name, env.Stream)
	}
	s := p.sys.store
	s.mu.Lock()
	part := env.Partition
	if env.PartitionByKey {
		ps, ok := s.streams[env.Stream.Stream]
		if !ok {
			s.mu.Unlock()
			return fmt.Errorf("inmem: no stream %q", env.Stream.Stream)
		}
		part = int32(fnv32(env.Key) % uint32(len(ps)))
	}
	if failErr := s.failErr; failErr != nil {
		s.mu.Unlock()
		p.failed(fmt.Errorf("inmem system %q: delivery to %s partition %d failed: %w", p.sys.name, env.Stream, part, failErr))
		return nil
	}
	_, err := s.appendLocked(env.Stream.Stream, part, Message{Key: env.Key, Value: env.Message, Headers: env.Headers, Time: env.Timestamp})
	s.mu.Unlock()
	return err
}

// failed records a delivery failure; the first one is kept and notified.
func (p *Producer) failed(err error) {
	p.mu.Lock()
	if p.firstErr != nil {
		p.mu.Unlock()
		return
	}
	p.firstErr = err
	notify := p.onFailure
	p.mu.Unlock()
	if notify != nil {
		notify(err)
	}
}

// NotifyFailure implements system.FailureNotifier: fn is called once with the first
// delivery failure of this producer (at once if one happened already).
func (p *Producer) NotifyFailure(fn func(error)) {
	p.mu.Lock()
	p.onFailure = fn
	first := p.firstErr
	p.mu.Unlock()
	if first != nil && fn != nil {
		fn(first)
	}
}

// Flush returns the first delivery failure of this producer, if any: every message
// sent before is stored or failed already.
func (p *Producer) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr
}

// Close does nothing.
func (p *Producer) Close() error { return nil }

func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
