package inmem_test

import (
	"context"
	"errors"
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

func TestProducerFailureAtFlush(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("a", 1)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	p, _ := sys.NewProducer()
	if err := p.Send(context.Background(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "mem", Stream: "a"}, Message: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s.FailProduce(errors.New("nope"))
	if err := p.Flush(context.Background()); err == nil {
		t.Error("flush succeeded")
	}
	if err := p.Send(context.Background(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "other", Stream: "a"}}); err == nil {
		t.Error("send to another system succeeded")
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
