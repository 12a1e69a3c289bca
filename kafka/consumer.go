package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// Consumer reads the partitions registered with it, from exactly the registered
// offsets, with its own franz-go client and no consumer group. It implements
// system.Pauser and system.PartitionChanger: partitions can be added and removed while
// it runs (franz-go's AddConsumePartitions and RemoveConsumePartitions).
//
// When the next offset of a partition no longer exists while the consumer runs
// (retention deleted it before it was read), the partition's ResetPolicy decides:
// ResetOldest and ResetUpcoming look up the new position, log a warning with the old
// and new offsets and the number of messages skipped, count it in Stats, and carry
// on there; ResetFail makes Poll return an error naming the partition and offset.
//
// Poll must not be called concurrently with itself; Close, Pause, Resume,
// AddPartitions and RemovePartitions may be called at any time, from any goroutine.
type Consumer struct {
	s       *System
	envPool envelopePool // see Recycle

	mu      sync.Mutex // guards start, cl, closed, owned, pending; and next before Start
	start   map[string]map[int32]kgo.Offset
	cl      *kgo.Client
	closed  bool
	owned   map[topicPartition]struct{} // the partitions read, as Add and Remove see them
	pending []partitionChange           // changes since Start that Poll has not applied yet
	// changes counts the partition changes since Start. Poll applies them (pending)
	// when it differs from seen, which keeps the common case free of locks.
	changes atomic.Uint64

	pollMu   sync.Mutex
	failed   error                    // sticky fatal error; guarded by pollMu
	next     map[topicPartition]int64 // next offset to read; guarded by pollMu after Start
	seen     uint64                   // the changes applied to next; guarded by pollMu
	resetAdm *kadm.Client

	afterFetch func(kgo.Fetches) // a test's hook: called by Poll after each PollFetches
	marks      watermarks        // see HighWatermarks
	contact    contact           // see LastContact
	mirror     *mirror           // see OnCheckpoint; nil when off
}

// partitionChange is one AddPartitions or RemovePartitions of a partition after Start.
type partitionChange struct {
	tp     topicPartition
	remove bool
	offset int64 // where an added partition is read from
}

type topicPartition struct {
	topic     string
	partition int32
}

var (
	_ system.Consumer         = (*Consumer)(nil)
	_ system.Pauser           = (*Consumer)(nil)
	_ system.PartitionChanger = (*Consumer)(nil)
)

func newConsumer(s *System) *Consumer {
	c := &Consumer{s: s, start: map[string]map[int32]kgo.Offset{}, next: map[topicPartition]int64{}, owned: map[topicPartition]struct{}{}}
	if s.mirrorGroup != "" {
		c.mirror = newMirror(s, s.mirrorGroup)
	}
	return c
}

// Register asks for ssp to be read from offset. Registering an SSP twice keeps the
// earlier offset.
func (c *Consumer) Register(ssp system.SystemStreamPartition, offset string) error {
	n, err := c.check(ssp, offset, "register")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cl != nil || c.closed {
		return fmt.Errorf("kafka system %q: register %s after Start", c.s.name, ssp)
	}
	tp := topicPartition{ssp.Stream, ssp.Partition}
	if old, ok := c.next[tp]; ok && old <= n {
		return nil
	}
	c.addBeforeStart(tp, n)
	return nil
}

// check validates a partition to read and its offset.
func (c *Consumer) check(ssp system.SystemStreamPartition, offset, verb string) (int64, error) {
	if ssp.System != c.s.name {
		return 0, fmt.Errorf("kafka system %q: cannot %s %s of another system", c.s.name, verb, ssp)
	}
	if ssp.Partition < 0 {
		return 0, fmt.Errorf("kafka system %q: cannot %s %s: negative partition", c.s.name, verb, ssp)
	}
	n, err := ParseOffset(offset)
	if err != nil {
		return 0, fmt.Errorf("kafka system %q: %s %s: %w", c.s.name, verb, ssp, err)
	}
	return n, nil
}

// addBeforeStart records tp to be read from n once the consumer starts; c.mu is held.
func (c *Consumer) addBeforeStart(tp topicPartition, n int64) {
	if c.start[tp.topic] == nil {
		c.start[tp.topic] = map[int32]kgo.Offset{}
	}
	c.start[tp.topic][tp.partition] = kgo.NewOffset().At(n)
	c.next[tp] = n
	c.owned[tp] = struct{}{}
}

// AddPartitions implements system.PartitionChanger: it starts reading each partition
// from its offset, before or after Start. A partition read already, one of another
// system or a malformed offset is an error, and then nothing is added.
func (c *Consumer) AddPartitions(offsets map[system.SystemStreamPartition]string) error {
	parsed := make(map[topicPartition]int64, len(offsets))
	for ssp, off := range offsets {
		n, err := c.check(ssp, off, "add")
		if err != nil {
			return err
		}
		parsed[topicPartition{ssp.Stream, ssp.Partition}] = n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("kafka system %q: AddPartitions on a closed consumer", c.s.name)
	}
	for tp := range parsed {
		if _, ok := c.owned[tp]; ok {
			return fmt.Errorf("kafka system %q: %s is read already", c.s.name, system.NewSSP(c.s.name, tp.topic, tp.partition))
		}
	}
	if c.cl == nil {
		for tp, n := range parsed {
			c.addBeforeStart(tp, n)
		}
		return nil
	}
	add := make(map[string]map[int32]kgo.Offset, 1)
	for tp, n := range parsed {
		c.owned[tp] = struct{}{}
		c.pending = append(c.pending, partitionChange{tp: tp, offset: n})
		if add[tp.topic] == nil {
			add[tp.topic] = map[int32]kgo.Offset{}
		}
		add[tp.topic][tp.partition] = kgo.NewOffset().At(n)
	}
	// Counted before the client may fetch them: Poll applies the change before it
	// converts a record of an added partition.
	c.changes.Add(1)
	c.cl.AddConsumePartitions(add)
	return nil
}

// RemovePartitions implements system.PartitionChanger: once it returns, Poll returns
// nothing more of ssps. franz-go drops what it had buffered of them; what a Poll had
// taken before is dropped by that Poll, unless it returned first. A pause of a removed
// partition is forgotten.
func (c *Consumer) RemovePartitions(ssps ...system.SystemStreamPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	remove := make(map[string][]int32, 1)
	for _, ssp := range ssps {
		tp := topicPartition{ssp.Stream, ssp.Partition}
		if _, ok := c.owned[tp]; !ok || ssp.System != c.s.name {
			continue
		}
		delete(c.owned, tp)
		if c.cl == nil {
			delete(c.next, tp)
			delete(c.start[tp.topic], tp.partition)
			if len(c.start[tp.topic]) == 0 {
				delete(c.start, tp.topic)
			}
			continue
		}
		c.pending = append(c.pending, partitionChange{tp: tp, remove: true})
		remove[tp.topic] = append(remove[tp.topic], tp.partition)
	}
	if len(remove) == 0 {
		return nil
	}
	// Counted before the removal, so that a Poll that took records of them before it
	// and looks after it drops them.
	c.changes.Add(1)
	c.cl.RemoveConsumePartitions(remove)
	c.cl.ResumeFetchPartitions(remove)
	return nil
}

// applyChanges brings next up to date with the partitions added and removed since the
// last call, and drops from fetches the records and errors of partitions removed
// since: they were taken before the removal. A partition removed and added again is
// rewound to where it was added, in case what was dropped came after the add.
// pollMu is held.
func (c *Consumer) applyChanges(fetches kgo.Fetches) {
	c.mu.Lock()
	ops := c.pending
	c.pending = nil
	c.seen = c.changes.Load()
	c.mu.Unlock()
	var removed map[topicPartition]bool
	for _, op := range ops {
		if op.remove {
			delete(c.next, op.tp)
			if removed == nil {
				removed = map[topicPartition]bool{}
			}
			removed[op.tp] = true
			continue
		}
		c.next[op.tp] = op.offset
	}
	if removed == nil {
		return
	}
	var rewind map[string]map[int32]kgo.EpochOffset
	for i := range fetches {
		for j := range fetches[i].Topics {
			ft := &fetches[i].Topics[j]
			for k := range ft.Partitions {
				fp := &ft.Partitions[k]
				tp := topicPartition{ft.Topic, fp.Partition}
				if !removed[tp] {
					continue
				}
				if next, ok := c.next[tp]; ok && len(fp.Records) > 0 {
					if rewind == nil {
						rewind = map[string]map[int32]kgo.EpochOffset{}
					}
					if rewind[tp.topic] == nil {
						rewind[tp.topic] = map[int32]kgo.EpochOffset{}
					}
					rewind[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
				}
				fp.Records, fp.Err = nil, nil
			}
		}
	}
	if rewind != nil {
		c.cl.SetOffsets(rewind)
	}
}

// Start creates the consumer's client and begins fetching.
func (c *Consumer) Start(ctx context.Context) error {
	if err := c.s.started(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("kafka system %q: consumer Start after Close", c.s.name)
	case c.cl != nil:
		return nil
	}
	opts := c.s.set.consumerOpts(c.s.klog)
	if c.s.set.fetchMaxWait == 0 {
		// Kafka's default, not franz-go's 5 s: a fetch waiting for data delays a
		// partition added or resumed meanwhile until it returns.
		opts = append(opts, kgo.FetchMaxWait(defaultFetchMaxWait))
	}
	opts = append(opts,
		kgo.ConsumePartitions(c.start),
		// Never move silently: an out-of-range offset comes back as an error that
		// Poll handles per the reset policy.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.WithHooks(&c.contact),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka system %q: consumer: %w", c.s.name, err)
	}
	c.cl = cl
	if c.mirror != nil {
		c.mirror.start(cl)
	}
	c.resetAdm = kadm.NewClient(cl)
	return nil
}

var errNotStarted = errors.New("consumer not started")

// defaultFetchMaxWait is fetch.max.wait.ms when it is not set: Kafka's default.
const defaultFetchMaxWait = 500 * time.Millisecond

// Poll returns the next messages of the registered partitions, in offset order per
// partition, blocking until there are some, ctx is done (ctx.Err()), or the consumer
// fails. The returned slice and its offset strings are new on every call.
func (c *Consumer) Poll(ctx context.Context) ([]system.IncomingEnvelope, error) {
	c.mu.Lock()
	cl, closed := c.cl, c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("kafka system %q: consumer is closed", c.s.name)
	case cl == nil:
		return nil, fmt.Errorf("kafka system %q: %w", c.s.name, errNotStarted)
	}
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.failed != nil {
		return nil, c.failed
	}
	for {
		fetches := cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return nil, fmt.Errorf("kafka system %q: consumer is closed", c.s.name)
		}
		if err := ctx.Err(); err != nil && fetches.Empty() {
			return nil, err
		}
		if c.afterFetch != nil {
			c.afterFetch(fetches)
		}
		c.marks.note(fetches)
		if c.changes.Load() != c.seen {
			c.applyChanges(fetches)
		}
		if err := c.handleErrors(ctx, fetches); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.failed = err
			return nil, err
		}
		if envs := c.envelopes(fetches); len(envs) > 0 {
			return envs, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// envelopes converts fetches, allocating the slice, one string holding every offset
// (each envelope's Offset is a slice of it) and one slice holding every header, and
// nothing per message.
func (c *Consumer) envelopes(fetches kgo.Fetches) []system.IncomingEnvelope {
	// Offsets rise within a partition, so the last one has the most digits: an
	// upper bound that is exact unless a batch crosses a power of ten.
	n, digits, headers := 0, 0, 0
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			n += len(p.Records)
			digits += len(p.Records) * decimalLen(p.Records[len(p.Records)-1].Offset)
			for _, r := range p.Records {
				headers += len(r.Headers)
			}
		}
	})
	if n == 0 {
		return nil
	}
	// Every envelope's headers are a slice of one allocation.
	var hdrs []system.Header
	if headers > 0 {
		hdrs = make([]system.Header, 0, headers)
	}
	var b strings.Builder
	b.Grow(digits)
	var scratch [20]byte
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			b.Write(strconv.AppendInt(scratch[:0], r.Offset, 10))
		}
	})
	offsets := b.String()
	envs := c.envPool.get(n)
	i, at := 0, 0
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		ssp := system.NewSSP(c.s.name, p.Topic, p.Partition)
		for _, r := range p.Records {
			end := at + decimalLen(r.Offset)
			e := &envs[i]
			e.SSP = ssp
			e.Offset = offsets[at:end]
			e.Key = r.Key
			e.Message = r.Value
			e.Timestamp = r.Timestamp
			e.Control = r.Attrs.IsControl()
			if len(r.Headers) > 0 {
				from := len(hdrs)
				for _, h := range r.Headers {
					hdrs = append(hdrs, system.Header{Key: h.Key, Value: h.Value})
				}
				e.Headers = hdrs[from:len(hdrs):len(hdrs)]
			}
			i, at = i+1, end
		}
		c.next[topicPartition{p.Topic, p.Partition}] = p.Records[len(p.Records)-1].Offset + 1
	})
	return envs
}

// pow10 holds 10^0 .. 10^18.
var pow10 = [...]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// decimalLen returns the number of decimal digits of n >= 0.
func decimalLen(n int64) int {
	d := (bits.Len64(uint64(n)) * 1233) >> 12 // about log10, one too small at most
	if d < len(pow10) && n >= pow10[d] {
		d++
	}
	return max(d, 1)
}

// handleErrors applies the reset policy to out-of-range partitions and returns the
// first fatal error. Retriable errors never get here: franz-go retries them.
func (c *Consumer) handleErrors(ctx context.Context, fetches kgo.Fetches) error {
	var fatal error
	fetches.EachError(func(topic string, partition int32, err error) {
		if fatal != nil {
			return
		}
		tp := topicPartition{topic, partition}
		if _, read := c.next[tp]; !read && topic != "" {
			return // of a partition removed since; the error was on its way
		}
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			fatal = err
		case errors.Is(err, kerr.OffsetOutOfRange):
			fatal = c.reset(ctx, topicPartition{topic, partition})
		default:
			if dl, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
				skipped := max(0, dl.ResetTo-dl.ConsumedTo)
				if c.s.ResetPolicy(topic) == system.ResetFail {
					// franz-go moved on by itself; with policy fail the job stops
					// here, before anything after the gap is processed.
					fatal = fmt.Errorf("kafka system %q: %s: the broker lost data this consumer had not read yet (offsets %d to %d, %d messages) and auto.offset.reset is fail; "+
						"set systems.%s.streams.%s.consumer.auto.offset.reset (or systems.%s.consumer.auto.offset.reset) to oldest or upcoming to resume past the gap",
						c.s.name, system.NewSSP(c.s.name, topic, partition), dl.ConsumedTo, dl.ResetTo, skipped, c.s.name, topic, c.s.name)
					return
				}
				// franz-go already moved on; say what was lost.
				c.s.resets.Add(1)
				c.s.skipped.Add(skipped)
				c.s.log.Warn("kafka: the broker lost data this consumer had not read yet; resuming",
					"ssp", system.NewSSP(c.s.name, topic, partition).String(),
					"old_offset", dl.ConsumedTo, "new_offset", dl.ResetTo, "skipped", skipped)
				c.next[topicPartition{topic, partition}] = dl.ResetTo
				return
			}
			fatal = fmt.Errorf("kafka system %q: reading %s: %w", c.s.name, system.NewSSP(c.s.name, topic, partition), err)
		}
	})
	return fatal
}

// reset moves an out-of-range partition per its reset policy. It looks the
// partition's offsets up first, also under ResetFail: an answer about an offset that
// is valid (again) is stale, and the offset is fetched again.
func (c *Consumer) reset(ctx context.Context, tp topicPartition) error {
	ssp := system.NewSSP(c.s.name, tp.topic, tp.partition)
	old, known := c.next[tp]
	policy := c.s.ResetPolicy(tp.topic)
	failErr := func(detail string) error {
		return fmt.Errorf("kafka system %q: %s: offset %d is out of range (deleted by retention, or beyond the end%s) and auto.offset.reset is fail; "+
			"set systems.%s.streams.%s.consumer.auto.offset.reset (or systems.%s.consumer.auto.offset.reset) to oldest or upcoming to resume, or rewrite the checkpoint",
			c.s.name, ssp, old, detail, c.s.name, tp.topic, c.s.name)
	}
	starts, ends, err := listOffsets(ctx, c.resetAdm, tp.topic)
	if err != nil {
		if policy == system.ResetFail && known {
			return fmt.Errorf("%w (looking up the partition's offsets failed too: %v)", failErr(""), err)
		}
		return fmt.Errorf("kafka system %q: %s is out of range, and looking up its offsets failed: %w", c.s.name, ssp, err)
	}
	so, ok1 := starts.Lookup(tp.topic, tp.partition)
	eo, ok2 := ends.Lookup(tp.topic, tp.partition)
	if !ok1 || !ok2 {
		return fmt.Errorf("kafka system %q: %s is out of range, and the partition no longer exists", c.s.name, ssp)
	}
	start, end := so.Offset, max(eo.Offset, so.Offset)
	if known && old >= start && old <= end {
		// A stale answer for an offset that is valid again (or that we already moved
		// from): fetch it again.
		c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: old}}})
		return nil
	}
	if policy == system.ResetFail {
		if !known {
			return fmt.Errorf("kafka system %q: %s: the next offset is out of range and auto.offset.reset is fail", c.s.name, ssp)
		}
		return failErr(fmt.Sprintf("; the partition holds %d to %d", start, end))
	}
	target := start
	if policy == system.ResetUpcoming {
		target = end
	}
	skipped := int64(0)
	if known {
		skipped = max(0, target-old)
	}
	c.s.resets.Add(1)
	c.s.skipped.Add(skipped)
	c.s.log.Warn("kafka: next offset no longer exists; resuming per auto.offset.reset",
		"ssp", ssp.String(), "old_offset", old, "new_offset", target, "skipped", skipped,
		"policy", string(policy), "oldest", start, "upcoming", end)
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: target}}})
	c.next[tp] = target
	return nil
}

// Pause stops fetching the given partitions until Resume. franz-go drops what it
// had buffered for them and fetches it again after Resume, so nothing is skipped or
// repeated; Poll returns nothing more of a paused partition.
func (c *Consumer) Pause(ssps ...system.SystemStreamPartition) {
	if cl := c.client(); cl != nil {
		cl.PauseFetchPartitions(c.byTopic(ssps))
	}
}

// Resume fetches the given partitions again, from after the last message Poll
// returned.
func (c *Consumer) Resume(ssps ...system.SystemStreamPartition) {
	if cl := c.client(); cl != nil {
		cl.ResumeFetchPartitions(c.byTopic(ssps))
	}
}

func (c *Consumer) client() *kgo.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.cl
}

func (c *Consumer) byTopic(ssps []system.SystemStreamPartition) map[string][]int32 {
	m := make(map[string][]int32, 1)
	for _, ssp := range ssps {
		if ssp.System == c.s.name {
			m[ssp.Stream] = append(m[ssp.Stream], ssp.Partition)
		}
	}
	return m
}

// Close closes the consumer's client. It is idempotent.
func (c *Consumer) Close() error {
	c.mu.Lock()
	cl := c.cl
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if already {
		return nil
	}
	if cl != nil {
		if c.mirror != nil {
			c.mirror.close()
		}
		cl.Close()
	}
	c.s.forget(c)
	return nil
}

// Recycle implements system.Recycler: Poll reuses envs for a later batch.
func (c *Consumer) Recycle(envs []system.IncomingEnvelope) { c.envPool.put(envs) }

// envelopePool recycles the envelope slices Poll returns, so that a busy consumer
// allocates no slice per poll. A recycled slice is cleared first: it must not keep
// the records' memory alive. It is a plain list, not a sync.Pool: the slices come back
// from the tasks' goroutines, and a sync.Pool dropped them at every collection, so a
// third of the polls allocated anew. It keeps at most maxPooledSlices.
type envelopePool struct {
	mu   sync.Mutex
	free [][]system.IncomingEnvelope
}

// maxPooledSlices bounds the pool: a consumer's slices are held by at most a few
// batches per task.
const maxPooledSlices = 256

// get returns a slice of n zeroed envelopes. New slices get a capacity of the next
// power of two, so that one slice serves polls of similar sizes: polls vary in size,
// and a slice too small for the next one would be garbage.
func (ep *envelopePool) get(n int) []system.IncomingEnvelope {
	ep.mu.Lock()
	var s []system.IncomingEnvelope
	// The most recently returned slice that fits; when none does, the most recent
	// one is dropped, so that the pool follows polls that grow.
	for i := len(ep.free) - 1; i >= 0; i-- {
		if cap(ep.free[i]) >= n {
			s = ep.free[i]
			ep.free = slices.Delete(ep.free, i, i+1)
			break
		}
	}
	if s == nil && len(ep.free) > 0 {
		ep.free = slices.Delete(ep.free, len(ep.free)-1, len(ep.free))
	}
	ep.mu.Unlock()
	if s != nil {
		return s[:n]
	}
	return make([]system.IncomingEnvelope, n, max(64, 1<<bits.Len(uint(n-1))))
}

// put takes back a slice get returned, as long as get made it: the entries past its
// length are still zero, so only those up to it are cleared.
func (ep *envelopePool) put(envs []system.IncomingEnvelope) {
	clear(envs)
	envs = envs[:cap(envs)]
	ep.mu.Lock()
	if len(ep.free) < maxPooledSlices {
		ep.free = append(ep.free, envs)
	}
	ep.mu.Unlock()
}
