package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (b *bencher) createTopic(ctx context.Context, topic string, partitions int, configs map[string]*string) error {
	resp, err := b.adm.CreateTopic(ctx, int32(partitions), 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// deleteTopics deletes topics, ignoring ones that do not exist.
func (b *bencher) deleteTopics(ctx context.Context, topics ...string) error {
	resps, err := b.adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	for _, r := range resps {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// endTotal returns the sum of the end offsets of topic's partitions.
func (b *bencher) endTotal(ctx context.Context, topic string) (int64, error) {
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// errorSink keeps the first error of asynchronous produces.
type errorSink struct {
	mu  sync.Mutex
	err error
}

func (s *errorSink) promise(_ *kgo.Record, err error) {
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
}

func (s *errorSink) first() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fill produces n messages of size bytes round-robin over partitions and waits for
// all of them.
func (b *bencher) fill(ctx context.Context, topic string, partitions, n, size int) error {
	began := time.Now()
	values := newPayloads(size)
	var sink errorSink
	for i := range n {
		b.cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: values.value()}, sink.promise)
		if i%1_000_000 == 999_999 {
			b.logf("  produced %s of %s", group(int64(i+1)), group(int64(n)))
		}
	}
	if err := b.cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	if err := sink.first(); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	b.logf("  %s messages in %s (%.0f msg/s)", group(int64(n)), time.Since(began).Round(time.Millisecond), float64(n)/time.Since(began).Seconds())
	return nil
}

// payloads hands out message values: windows of one block of random bytes, so that
// values differ and do not compress (a repeated value would compress many times
// over, and the broker limits fetches by compressed bytes).
type payloads struct {
	block []byte
	size  int
	next  int
}

func newPayloads(size int) *payloads {
	block := make([]byte, 1<<20+size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], rng.Uint64())
	}
	return &payloads{block: block, size: size}
}

func (p *payloads) value() []byte {
	v := p.block[p.next : p.next+p.size : p.next+p.size]
	p.next = (p.next + 61) % (len(p.block) - p.size)
	return v
}

// feeder writes to a topic at a steady rate in the background (see pace).
type feeder struct {
	stop chan struct{}
	done chan struct{} // closed when pace returned; err is set then
	err  error
	once sync.Once
}

// feed starts pace in the background. Call stopFeed to end it.
func (b *bencher) feed(ctx context.Context, topic string, partitions, rate, size int) *feeder {
	return b.feedKeyed(ctx, topic, partitions, rate, size, false)
}

// feedKeyed is feed; with keyed, each message's key is its sequence number (see
// seqKey), unique in the topic.
func (b *bencher) feedKeyed(ctx context.Context, topic string, partitions, rate, size int, keyed bool) *feeder {
	f := &feeder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if _, err := b.pace(ctx, f.stop, topic, partitions, rate, size, keyed); err != nil {
			f.err = fmt.Errorf("feeding the input: %w", err)
		}
	}()
	return f
}

// stopFeed ends the feed and returns how it went; it may be called more than once.
func (f *feeder) stopFeed() error {
	f.once.Do(func() { close(f.stop) })
	<-f.done
	return f.err
}

// pace produces to topic at rate messages per second, round-robin over
// partitions, until ctx is done or stop is closed; it returns how many it
// produced and the first produce error.
func (b *bencher) pace(ctx context.Context, stop <-chan struct{}, topic string, partitions, rate, size int, keyed bool) (int64, error) {
	values := newPayloads(size)
	var sink errorSink
	const tick = 10 * time.Millisecond
	tk := time.NewTicker(tick)
	defer tk.Stop()
	began := time.Now()
	var sent int64
	for {
		select {
		case <-stop:
			return sent, errors.Join(b.cl.Flush(context.WithoutCancel(ctx)), sink.first())
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tk.C:
		}
		due := int64(time.Since(began).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			r := &kgo.Record{Topic: topic, Partition: int32(sent % int64(partitions)), Value: values.value()}
			if keyed {
				r.Key = seqKey(sent)
			}
			b.cl.Produce(ctx, r, sink.promise)
		}
		if err := sink.first(); err != nil {
			return sent, err
		}
	}
}

// readTopic reads every partition of topic from its start to the end offset it has
// now and calls fn with each record, control records left out. committed reads as a
// read_committed consumer does (records of aborted transactions left out) up to the
// last stable offset.
func (b *bencher) readTopic(ctx context.Context, topic string, committed bool, fn func(*kgo.Record)) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	list := b.adm.ListEndOffsets
	if committed {
		list = b.adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want, end := map[int32]int64{}, map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		end[o.Partition] = o.Offset
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	opts := []kgo.Opt{kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}), kgo.KeepControlRecords()}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w (%d partitions not read to their end)", topic, err, len(want))
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= end[r.Partition] {
				delete(want, r.Partition)
			}
			if !r.Attrs.IsControl() && r.Offset < end[r.Partition] {
				fn(r)
			}
		})
	}
	return nil
}

// countCommitted returns the number of records of topic a read_committed reader sees.
func (b *bencher) countCommitted(ctx context.Context, topic string) (int64, error) {
	var n int64
	err := b.readTopic(ctx, topic, true, func(*kgo.Record) { n++ })
	return n, err
}

// seqKey is the key of the message number n of a keyed feed: n, big-endian.
func seqKey(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
