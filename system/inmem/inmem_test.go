package inmem_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

func TestAdminOffsetsAndTruncate(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("a", 1)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	ssp := system.NewSSP("mem", "a", 0)
	md, _ := sys.Admin().Partitions(context.Background(), "a")
	if md[ssp] != (system.PartitionMetadata{Oldest: "0", Newest: "", Upcoming: "0"}) {
		t.Errorf("empty metadata = %+v", md[ssp])
	}
	for range 5 {
		s.Append("a", 0, nil, []byte("x"))
	}
	s.Truncate("a", 0, 3)
	md, _ = sys.Admin().Partitions(context.Background(), "a")
	if md[ssp] != (system.PartitionMetadata{Oldest: "3", Newest: "4", Upcoming: "5"}) {
		t.Errorf("metadata = %+v", md[ssp])
	}
	if _, err := sys.Admin().Partitions(context.Background(), "missing"); err == nil {
		t.Error("missing stream gave no error")
	}
	a := sys.Admin()
	if c, _ := a.CompareOffsets("9", "10"); c != -1 {
		t.Errorf("compare 9,10 = %d (must be numeric, not lexical)", c)
	}
	if n, _ := a.OffsetAfter("9"); n != "10" {
		t.Errorf("after 9 = %s", n)
	}
	if d, _ := a.Distance("3", "10"); d != 7 {
		t.Errorf("distance = %d", d)
	}
	if _, err := a.CompareOffsets("x", "1"); err == nil {
		t.Error("bad offset accepted")
	}
}

func TestConsumerReadsOnlyRegisteredAndWaits(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("a", 2)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	c, _ := sys.NewConsumer()
	c.Register(system.NewSSP("mem", "a", 1), "0")
	c.Start(context.Background())
	s.Append("a", 0, nil, []byte("not mine"))
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Append("a", 1, nil, []byte("mine"))
	}()
	envs, err := c.Poll(context.Background())
	if err != nil || len(envs) != 1 || string(envs[0].Message) != "mine" {
		t.Fatalf("poll = %v, %v", envs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Poll(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("idle poll = %v", err)
	}
}

// TestProducerFailureSticks: a delivery that failed under FailProduce keeps its
// producer's every later Flush failing, also after FailProduce(nil), as a Kafka
// producer's does; the message is not stored; other producers are not affected.
func TestProducerFailureSticks(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("a", 1)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	ctx := context.Background()
	out := system.SystemStream{System: "mem", Stream: "a"}
	p, _ := sys.NewProducer()
	var notified []error
	p.(system.FailureNotifier).NotifyFailure(func(err error) { notified = append(notified, err) })
	s.FailProduce(errors.New("nope"))
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: out, Message: []byte("lost")}); err != nil {
		t.Fatalf("Send = %v; delivery failures belong to Flush", err)
	}
	if err := p.Flush(ctx); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Flush = %v; want the delivery failure", err)
	}
	s.FailProduce(nil)
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: out, Message: []byte("later")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Flush after FailProduce(nil) = %v; want the first failure again", err)
	}
	if len(notified) != 1 || !strings.Contains(notified[0].Error(), "nope") {
		t.Errorf("notified %v; want the failure once", notified)
	}
	q, _ := sys.NewProducer()
	if err := q.Send(ctx, system.OutgoingEnvelope{Stream: out, Message: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatalf("Flush of another producer = %v", err)
	}
	ms, _ := s.Messages("a", 0)
	var values []string
	for _, m := range ms {
		values = append(values, string(m.Value))
	}
	if !slices.Equal(values, []string{"later", "other"}) {
		t.Errorf("stored %q; want later and other (the failed message is not stored)", values)
	}
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "other", Stream: "a"}}); err == nil {
		t.Error("send to another system succeeded")
	}
}

// TestConsumerResetPolicy: a consumer whose next message was truncated away follows
// the configured auto.offset.reset; under fail, Poll fails naming partition and offset,
// and keeps failing.
func TestConsumerResetPolicy(t *testing.T) {
	for _, tt := range []struct {
		name  string
		keys  map[string]string
		first string // offset of the first message read, or "" for a failure
	}{
		{"default", nil, "6"},
		{"upcoming", map[string]string{"systems.mem.consumer.auto.offset.reset": "latest"}, "10"},
		{"fail", map[string]string{"systems.mem.consumer.auto.offset.reset": "fail"}, ""},
		{"stream-fail", map[string]string{"systems.mem.streams.a.b.consumer.auto.offset.reset": "none"}, ""},
		{"stream-over-system", map[string]string{"systems.mem.consumer.auto.offset.reset": "none", "systems.mem.streams.a.b.consumer.auto.offset.reset": "Earliest"}, "6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := inmem.NewStore()
			s.CreateStream("a.b", 1)
			for range 10 {
				s.Append("a.b", 0, nil, []byte("x"))
			}
			s.Truncate("a.b", 0, 6)
			sys, err := s.Factory()("mem", config.New(tt.keys), nil)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := sys.NewConsumer()
			ssp := system.NewSSP("mem", "a.b", 0)
			c.Register(ssp, "2")
			c.Start(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.first == "10" {
				// The first Poll moves to the upcoming offset and finds nothing there.
				idle, cancelIdle := context.WithTimeout(ctx, 20*time.Millisecond)
				envs, err := c.Poll(idle)
				cancelIdle()
				if len(envs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Poll at upcoming = %v, %v; want nothing", envs, err)
				}
				s.Append("a.b", 0, nil, []byte("new"))
			}
			envs, err := c.Poll(ctx)
			if tt.first == "" {
				if err == nil || !strings.Contains(err.Error(), "mem.a.b#0") || !strings.Contains(err.Error(), "offset 2 ") || !strings.Contains(err.Error(), "auto.offset.reset is fail") {
					t.Fatalf("Poll = %v, %v; want an error naming mem.a.b#0 and offset 2", envs, err)
				}
				if _, again := c.Poll(context.Background()); again == nil || again.Error() != err.Error() {
					t.Errorf("second Poll = %v; want the same error", again)
				}
				return
			}
			if err != nil || len(envs) == 0 || envs[0].Offset != tt.first {
				t.Fatalf("Poll = %v, %v; want messages from offset %s", envs, err, tt.first)
			}
		})
	}
	_, err := inmem.NewStore().Factory()("mem", config.New(map[string]string{
		"systems.mem.consumer.auto.offset.reset":                "sometimes",
		"systems.mem.streams.a.b.consumer.auto.offset.reset":    "never",
		"systems.mem.streams.a.b.consumer.auto.offset.reset.ms": "ignored: not a reset key",
	}), nil)
	if err == nil || !strings.Contains(err.Error(), "systems.mem.consumer.auto.offset.reset") || !strings.Contains(err.Error(), "systems.mem.streams.a.b.consumer.auto.offset.reset") {
		t.Errorf("bad reset values: %v; want an error naming both keys", err)
	}
}

func TestConsumerPauseResumeAndTruncateCount(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("a", 2)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	c, _ := sys.NewConsumer()
	p0, p1 := system.NewSSP("mem", "a", 0), system.NewSSP("mem", "a", 1)
	c.Register(p0, "0")
	c.Register(p1, "0")
	c.Start(context.Background())
	c.(system.Pauser).Pause(p0)
	s.Append("a", 0, nil, []byte("paused"))
	s.Append("a", 1, nil, []byte("flowing"))
	envs, err := c.Poll(context.Background())
	if err != nil || len(envs) != 1 || envs[0].SSP != p1 {
		t.Fatalf("poll with partition 0 paused = %v, %v; want only partition 1's message", envs, err)
	}
	// Resume wakes a waiting Poll, which carries on where partition 0 stopped.
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.(system.Pauser).Resume(p0)
	}()
	envs, err = c.Poll(context.Background())
	if err != nil || len(envs) != 1 || envs[0].SSP != p0 || envs[0].Offset != "0" {
		t.Fatalf("poll after Resume = %v, %v; want partition 0 offset 0", envs, err)
	}
	// Messages deleted before they were read are skipped, and counted.
	for range 5 {
		s.Append("a", 1, nil, []byte("x"))
	}
	s.Truncate("a", 1, 4)
	envs, _ = c.Poll(context.Background())
	if len(envs) != 2 || envs[0].Offset != "4" {
		t.Fatalf("poll after truncation = %v; want offsets 4 and 5", envs)
	}
	if resets, skipped := sys.(system.ResetCounter).OutOfRangeResets(); resets != 1 || skipped != 3 {
		t.Errorf("OutOfRangeResets = %d, %d; want 1 reset skipping 3 (offsets 1..3)", resets, skipped)
	}
}

func TestConsumerHearsCheckpoints(t *testing.T) {
	s := inmem.NewStore()
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	c, _ := sys.NewConsumer()
	ssp := system.NewSSP("mem", "a", 0)
	if _, ok := s.Acknowledged(ssp); ok {
		t.Fatal("acknowledged before any checkpoint")
	}
	if err := c.(system.CheckpointListener).OnCheckpoint(map[system.SystemStreamPartition]string{ssp: "7"}); err != nil {
		t.Fatal(err)
	}
	if off, ok := s.Acknowledged(ssp); !ok || off != "7" {
		t.Errorf("Acknowledged = %q, %v; want 7", off, ok)
	}
}
