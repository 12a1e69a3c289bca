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

// pace produces to topic at rate messages per second, round-robin over
// partitions, until ctx is done or stop is closed; it returns how many it
// produced and the first produce error.
// feeder writes to a topic at a steady rate in the background (see pace).
type feeder struct {
	stop chan struct{}
	done chan struct{} // closed when pace returned; err is set then
	err  error
	once sync.Once
}

// feed starts pace in the background. Call stopFeed to end it.
func (b *bencher) feed(ctx context.Context, topic string, partitions, rate, size int) *feeder {
	f := &feeder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		if _, err := b.pace(ctx, f.stop, topic, partitions, rate, size); err != nil {
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

func (b *bencher) pace(ctx context.Context, stop <-chan struct{}, topic string, partitions, rate, size int) (int64, error) {
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
			b.cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(sent % int64(partitions)), Value: values.value()}, sink.promise)
		}
		if err := sink.first(); err != nil {
			return sent, err
		}
	}
}
