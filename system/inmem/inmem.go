// Package inmem is an in-process message system for unit tests of task logic: a Store
// holds streams of partitions in memory, and its Factory plugs it into a container as a
// system like any other. Offsets are decimal message indexes ("0", "1", ...).
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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
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
	return strconv.FormatInt(part.base+int64(len(part.msgs))-1, 10), nil
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

// FailProduce makes every later producer Flush return err (nil restores success). It
// lets tests check that a failed flush fails the commit.
func (s *Store) FailProduce(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

// Factory returns a system.Factory whose systems all use this store.
func (s *Store) Factory() system.Factory {
	return func(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
		return &System{name: name, store: s}, nil
	}
}

// System is one configured in-memory system.
type System struct {
	name            string
	store           *Store
	resets, skipped atomic.Int64
}

var (
	_ system.System             = (*System)(nil)
	_ system.ResetCounter       = (*System)(nil)
	_ system.Consumer           = (*Consumer)(nil)
	_ system.Pauser             = (*Consumer)(nil)
	_ system.CheckpointListener = (*Consumer)(nil)
	_ system.Producer           = (*Producer)(nil)
)

// OutOfRangeResets implements system.ResetCounter: how many times a consumer found
// its next message deleted by Truncate and moved to the oldest retained one, and how
// many messages those moves skipped.
func (y *System) OutOfRangeResets() (resets, skipped int64) {
	return y.resets.Load(), y.skipped.Load()
}

// Start does nothing: the store is already there.
func (y *System) Start(context.Context) error { return nil }

// Admin returns the system's admin.
func (y *System) Admin() system.Admin { return admin{y} }

// NewConsumer returns a consumer over the store.
func (y *System) NewConsumer() (system.Consumer, error) {
	return &Consumer{sys: y, next: map[system.SystemStreamPartition]int64{}}, nil
}

// NewProducer returns a producer into the store.
func (y *System) NewProducer() (system.Producer, error) { return &Producer{sys: y}, nil }

// Close does nothing.
func (y *System) Close() error { return nil }

type admin struct{ y *System }

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
			md := system.PartitionMetadata{Oldest: strconv.FormatInt(p.base, 10), Upcoming: strconv.FormatInt(up, 10)}
			if len(p.msgs) > 0 {
				md.Newest = strconv.FormatInt(up-1, 10)
			}
			out[system.NewSSP(a.y.name, stream, int32(i))] = md
		}
	}
	return out, nil
}

func parse(off string) (int64, error) {
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("inmem: offset %q is not a non-negative integer", off)
	}
	return n, nil
}

func (admin) CompareOffsets(a, b string) (int, error) {
	x, err := parse(a)
	if err != nil {
		return 0, err
	}
	y, err := parse(b)
	if err != nil {
		return 0, err
	}
	switch {
	case x < y:
		return -1, nil
	case x > y:
		return 1, nil
	}
	return 0, nil
}

func (admin) OffsetAfter(off string) (string, error) {
	n, err := parse(off)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(n+1, 10), nil
}

func (admin) Distance(from, to string) (int64, error) {
	x, err := parse(from)
	if err != nil {
		return 0, err
	}
	y, err := parse(to)
	if err != nil {
		return 0, err
	}
	return y - x, nil
}

// Consumer reads registered partitions of the store. It implements system.Pauser.
type Consumer struct {
	sys     *System
	mu      sync.Mutex
	next    map[system.SystemStreamPartition]int64
	paused  map[system.SystemStreamPartition]bool
	resumed chan struct{} // closed and replaced by Resume, to wake a waiting Poll
	started bool
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
	if c.resumed != nil {
		close(c.resumed)
		c.resumed = nil
	}
}

// Register sets where ssp is read from.
func (c *Consumer) Register(ssp system.SystemStreamPartition, offset string) error {
	n, err := parse(offset)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("inmem: register after start")
	}
	c.next[ssp] = n
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
		var out []system.IncomingEnvelope
		for ssp, next := range c.next {
			if ssp.System != c.sys.name || c.paused[ssp] {
				continue
			}
			part, err := s.part(ssp.Stream, ssp.Partition)
			if err != nil {
				c.mu.Unlock()
				s.mu.Unlock()
				return nil, err
			}
			if next < part.base {
				// Retention deleted what we were to read next: move on, and count it
				// (system.ResetCounter) so the container reports it.
				c.sys.resets.Add(1)
				c.sys.skipped.Add(part.base - next)
				next = part.base
			}
			for ; next < part.base+int64(len(part.msgs)) && len(out) < maxPoll; next++ {
				m := part.msgs[next-part.base]
				out = append(out, system.IncomingEnvelope{SSP: ssp, Offset: strconv.FormatInt(next, 10), Key: m.Key, Message: m.Value, Headers: m.Headers, Timestamp: m.Time})
			}
			c.next[ssp] = next
		}
		wait := s.changed
		if c.resumed == nil {
			c.resumed = make(chan struct{})
		}
		resumed := c.resumed
		c.mu.Unlock()
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		case <-resumed:
		}
	}
}

// Close does nothing.
func (c *Consumer) Close() error { return nil }

// Producer appends to the store.
type Producer struct {
	sys *System
}

// Send appends env to its stream right away.
func (p *Producer) Send(_ context.Context, env system.OutgoingEnvelope) error {
	if env.Stream.System != p.sys.name {
		return fmt.Errorf("inmem: producer of system %q cannot send to %s", p.sys.name, env.Stream)
	}
	s := p.sys.store
	s.mu.Lock()
	defer s.mu.Unlock()
	part := env.Partition
	if env.PartitionByKey {
		ps, ok := s.streams[env.Stream.Stream]
		if !ok {
			return fmt.Errorf("inmem: no stream %q", env.Stream.Stream)
		}
		part = int32(fnv32(env.Key) % uint32(len(ps)))
	}
	_, err := s.appendLocked(env.Stream.Stream, part, Message{Key: env.Key, Value: env.Message, Headers: env.Headers, Time: env.Timestamp})
	return err
}

// Flush returns the failure set with FailProduce, if any.
func (p *Producer) Flush(context.Context) error {
	s := p.sys.store
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failErr
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
