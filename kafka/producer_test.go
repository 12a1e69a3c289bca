package kafka

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/system"
)

func TestProducerSendFlush(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(4, "out"))
	s, _ := startSystem(t, seeds, map[string]string{"systems.kafka.producer.linger.ms": "0"})
	p, err := s.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()
	for i := range 100 {
		env := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Partition: int32(i % 4), Key: []byte("k"), Message: []byte(itoa(i))}
		if err := p.Send(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything flushed is readable, each in the partition it was sent to.
	cl, _ := rawClient(t, seeds, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 100 {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var i int
			for _, c := range r.Value {
				i = i*10 + int(c-'0')
			}
			if r.Partition != int32(i%4) {
				t.Errorf("message %d in partition %d, want %d", i, r.Partition, i%4)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Errorf("second Flush = %v", err)
	}
}

// TestProducerFlushWaitsForOwnRecords holds one task's produce request at the broker:
// that task's Flush waits for it, while another task's Flush, with nothing of its own
// in flight, returns at once although the shared client is still busy.
func TestProducerFlushWaitsForOwnRecords(t *testing.T) {
	c, seeds := cluster(t, kfake.SeedTopics(1, "slow"), kfake.SeedTopics(1, "fast"))
	s, _ := startSystem(t, seeds, map[string]string{"systems.kafka.producer.linger.ms": "0"})
	ctx := t.Context()
	slowP, _ := s.NewProducer()
	fastP, _ := s.NewProducer()

	// Warm up the connection and producer id so that the hold below catches only
	// the produce request we mean.
	warm := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "fast"}, Message: []byte("w")}
	if err := fastP.Send(ctx, warm); err != nil {
		t.Fatal(err)
	}
	if err := fastP.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	// The next produce request is the slow task's (topics travel by ID in recent
	// produce versions, so we do not look at names).
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() {
			close(held)
			c.SleepControl(func() { <-release })
		})
		return nil, nil, false
	})

	if err := slowP.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "slow"}, Message: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow produce request never reached the broker")
	}
	slowDone := make(chan error, 1)
	go func() { slowDone <- slowP.Flush(context.Background()) }()

	fastCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := fastP.Flush(fastCtx); err != nil {
		t.Fatalf("Flush of the producer with nothing in flight = %v while another task's record was held", err)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow Flush returned %v while its record was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := slowP.(*Producer).inflight.Load(); got != 1 {
		t.Fatalf("slow producer has %d in flight, want 1", got)
	}
	close(release)
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("slow Flush = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow Flush did not return after the record was released")
	}
}

func TestProducerFlushContext(t *testing.T) {
	c, seeds := cluster(t, kfake.SeedTopics(1, "held"))
	s, _ := startSystem(t, seeds, nil)
	p, _ := s.NewProducer()
	release := make(chan struct{})
	defer close(release)
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() { c.SleepControl(func() { <-release }) })
		return nil, nil, false
	})
	if err := p.Send(t.Context(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "held"}, Message: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := p.Flush(ctx); err == nil || !strings.Contains(err.Error(), "1 messages still unacknowledged") {
		t.Fatalf("Flush = %v, want the deadline with one message outstanding", err)
	}
}

// TestProducerConcurrentTasks flushes many producers concurrently under -race.
func TestProducerConcurrentTasks(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(8, "out"))
	s, _ := startSystem(t, seeds, nil)
	var wg sync.WaitGroup
	for task := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := s.NewProducer()
			for round := range 5 {
				for i := range 50 {
					env := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Partition: int32(task), Message: []byte(itoa(round*50 + i))}
					if err := p.Send(t.Context(), env); err != nil {
						t.Error(err)
						return
					}
				}
				if err := p.Flush(t.Context()); err != nil {
					t.Error(err)
					return
				}
				if n := p.(*Producer).inflight.Load(); n != 0 {
					t.Errorf("task %d: %d in flight after Flush", task, n)
				}
			}
		}()
	}
	wg.Wait()
	md, err := s.Admin().Partitions(t.Context(), "out")
	if err != nil {
		t.Fatal(err)
	}
	for ssp, m := range md {
		if m.Upcoming != "250" {
			t.Errorf("%s: upcoming %s, want 250", ssp, m.Upcoming)
		}
	}
}

// murmur2 is Kafka's Utils.murmur2, transcribed from the Java source.
func murmur2(data []byte) int32 {
	const (
		seed = int32(-1756908916) // 0x9747b28c
		m    = int32(0x5bd1e995)
		r    = 24
	)
	length := int32(len(data))
	h := seed ^ length
	length4 := length / 4
	for i := range length4 {
		i4 := i * 4
		k := int32(data[i4+0]) + int32(data[i4+1])<<8 + int32(data[i4+2])<<16 + int32(data[i4+3])<<24
		k *= m
		k ^= int32(uint32(k) >> r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length & ^3)+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length & ^3)+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[length & ^3])
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return h
}

// javaPartition is Kafka's BuiltInPartitioner.partitionForKey: toPositive(murmur2) % n.
func javaPartition(key []byte, n int32) int32 {
	return (murmur2(key) & 0x7fffffff) % n
}

func TestProducerPartitionByKey(t *testing.T) {
	// Known values of Kafka's murmur2 (from the Java client's UtilsTest).
	for s, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107} {
		if got := murmur2([]byte(s)); got != want {
			t.Fatalf("reference murmur2(%q) = %d, want %d", s, got, want)
		}
	}
	const parts = 7
	_, seeds := cluster(t, kfake.SeedTopics(parts, "keyed"))
	s, _ := startSystem(t, seeds, nil)
	p, _ := s.NewProducer()
	ctx := t.Context()
	keys := []string{"user-1", "user-2", "Partition 0", "a", "", "日本", "the quick brown fox jumps over the lazy dog"}
	for i := range 50 {
		keys = append(keys, "key-"+itoa(i))
	}
	for _, k := range keys {
		// Partition is ignored when PartitionByKey is set.
		env := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "keyed"}, Partition: 99, PartitionByKey: true, Key: []byte(k), Message: []byte(k)}
		if err := p.Send(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cl, _ := rawClient(t, seeds, kgo.ConsumeTopics("keyed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < len(keys) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got++
			if want := javaPartition(r.Key, parts); r.Partition != want {
				t.Errorf("key %q in partition %d, want %d (murmur2)", r.Key, r.Partition, want)
			}
		})
	}
}

func TestProducerMissingTopicFailsAtFlush(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "present"))
	s, _ := startSystem(t, seeds, nil)
	p, _ := s.NewProducer()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "no-such-topic"}, Message: []byte("x")}); err != nil {
		t.Fatalf("Send = %v; delivery errors belong to Flush", err)
	}
	err := p.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), `"no-such-topic"`) {
		t.Fatalf("Flush = %v, want an error naming the topic", err)
	}
	// The failure sticks: a later Flush must not report success over a lost message,
	// even with nothing new in flight.
	if err2 := p.Flush(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Flush = %v, want the same failure again (%v)", err2, err)
	}
	// A partition that does not exist fails too, naming topic and partition.
	p, _ = s.NewProducer()
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "present"}, Partition: 5, Message: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err == nil || !strings.Contains(err.Error(), `partition 5 of topic "present", which has 1 partition (0)`) {
		t.Fatalf("Flush = %v, want an error naming present partition 5", err)
	}
}

func TestProducerSendRejects(t *testing.T) {
	_, seeds := cluster(t)
	s, _ := startSystem(t, seeds, nil)
	p, _ := s.NewProducer()
	ctx := t.Context()
	for _, env := range []system.OutgoingEnvelope{
		{Stream: system.SystemStream{System: "other", Stream: "x"}},
		{Stream: system.SystemStream{System: "kafka", Stream: ""}},
		{Stream: system.SystemStream{System: "kafka", Stream: "x"}, Partition: -1},
	} {
		if err := p.Send(ctx, env); err == nil {
			t.Errorf("Send(%+v) succeeded", env)
		}
	}
	p.Close()
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "x"}}); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// TestProducerFlushDoesNotWaitForLinger sets a long linger: Flush sends at once
// rather than waiting it out, for a topic whose metadata is loaded and for one seen
// for the first time.
func TestProducerFlushDoesNotWaitForLinger(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "a"), kfake.SeedTopics(1, "b"))
	s, _ := startSystem(t, seeds, map[string]string{"systems.kafka.producer.linger.ms": "60000"})
	p, _ := s.NewProducer()
	for _, topic := range []string{"a", "a", "b"} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: topic}, Message: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatalf("Flush to %s with a 60 s linger = %v", topic, err)
		}
		cancel()
	}
}

func TestProducerIsIdempotentWithAcksAll(t *testing.T) {
	// What goes over the wire: every produce request of the job's producer asks for
	// acks from all in-sync replicas, and every batch carries a producer ID and
	// sequence (idempotence), so a retried batch is never written twice.
	c, seeds := cluster(t, kfake.SeedTopics(2, "out"))
	var mu sync.Mutex
	var requests, batches int
	var problems []string
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if pr.Acks != -1 {
			problems = append(problems, "acks="+itoa(int(pr.Acks)))
		}
		for _, tp := range pr.Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err != nil {
					problems = append(problems, "unreadable batch: "+err.Error())
					continue
				}
				batches++
				if b.ProducerID < 0 || b.FirstSequence < 0 {
					problems = append(problems, "batch without producer id/sequence")
				}
			}
		}
		return nil, nil, false // let the broker handle it
	})
	s, _ := startSystem(t, seeds, nil)
	p, err := s.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		env := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Partition: int32(i % 2), Message: []byte(itoa(i))}
		if err := p.Send(t.Context(), env); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests == 0 || batches == 0 {
		t.Fatalf("saw %d produce requests with %d batches; want some", requests, batches)
	}
	if len(problems) > 0 {
		t.Errorf("produce requests not acks=all + idempotent: %v", problems)
	}
}
