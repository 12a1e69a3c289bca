package kafka

import (
	"context"
	"maps"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// roleHooks counts, per role, the clients created and the requests written with the
// options of WithClientOptsFunc.
type roleHooks struct {
	mu       sync.Mutex
	clients  map[Role]int
	requests map[Role]int
	produced map[Role][]string // topics of the records produced
}

type roleHook struct {
	h    *roleHooks
	role Role
}

func (r roleHook) OnNewClient(*kgo.Client) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.clients[r.role]++
}

func (r roleHook) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.requests[r.role]++
}

func (r roleHook) OnProduceRecordBuffered(rec *kgo.Record) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.h.produced[r.role] = append(r.h.produced[r.role], rec.Topic)
}

func (h *roleHooks) counts() (clients, requests map[Role]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.clients), maps.Clone(h.requests)
}

// useEveryClient drives every kind of client of s and of a checkpoint manager on it:
// admin lookups, a produce and flush, a consumer's poll, a checkpoint write, read and
// the run lock.
func useEveryClient(t *testing.T, s *System, cfg config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Admin().Partitions(ctx, "in"); err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	p, err := s.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "in"}, Message: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(system.NewSSP("kafka", "in", 0), "0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if envs := pollUntil(t, c, 1); string(envs[0].Message) != "m" {
		t.Fatalf("polled %q, want m", envs[0].Message)
	}
	m, err := NewCheckpointManager(s, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("checkpoint Start: %v", err)
	}
	lock, err := m.AcquireRunLock(ctx, checkpoint.Container{ID: 0, Count: 1})
	if err != nil {
		t.Fatalf("AcquireRunLock: %v", err)
	}
	if err := m.Write(ctx, "Partition 0", cp(system.NewSSP("kafka", "in", 0), "1")); err != nil {
		t.Fatalf("checkpoint Write: %v", err)
	}
	if _, err := m.Read(ctx, "Partition 0"); err != nil {
		t.Fatalf("checkpoint Read: %v", err)
	}
	lock.Close()
}

func TestClientOptsFuncReachEveryClientWithItsRole(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	cfg := config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": seeds, "job.name": "opts"})
	h := &roleHooks{clients: map[Role]int{}, requests: map[Role]int{}, produced: map[Role][]string{}}
	s, err := New("kafka", cfg, nil, WithClientOptsFunc(func(role Role) []kgo.Opt {
		return []kgo.Opt{kgo.WithHooks(roleHook{h, role})}
	}))
	if err != nil {
		t.Fatal(err)
	}
	useEveryClient(t, s, cfg)
	clients, requests := h.counts()
	for _, role := range []Role{RoleAdmin, RoleConsumer, RoleProducer, RoleCheckpoint} {
		if clients[role] == 0 || requests[role] == 0 {
			t.Errorf("role %s: %d clients and %d requests with the extra options, want some of each (clients %v, requests %v)", role, clients[role], requests[role], clients, requests)
		}
	}
	if len(clients) != 4 {
		t.Errorf("clients by role %v, want only the four roles", clients)
	}
	// The output went through the producer's client, the checkpoint through the
	// checkpoint manager's.
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := map[Role][]string{RoleProducer: {"in"}, RoleCheckpoint: {"__samza_checkpoint_opts_1"}}; !reflect.DeepEqual(h.produced, want) {
		t.Errorf("records produced by role %v, want %v", h.produced, want)
	}
}

// connCounter counts the connections of every client that has it.
type connCounter struct {
	mu    sync.Mutex
	conns int
}

func (c *connCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		c.mu.Lock()
		c.conns++
		c.mu.Unlock()
	}
}

func TestClientOptsReplaceTheConnectionKeys(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	// The keys name a port nobody listens on; the extra options name the broker, and
	// come after the keys' options, so they win.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": deadAddr, "job.name": "opts"})
	counter := &connCounter{}
	s, err := New("kafka", cfg, nil, WithClientOpts(kgo.SeedBrokers(strings.Split(seeds, ",")...), kgo.WithHooks(counter)))
	if err != nil {
		t.Fatal(err)
	}
	useEveryClient(t, s, cfg)
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.conns == 0 {
		t.Error("no connection made with the extra hook")
	}
}

func TestClientOptsCannotOverrideWhatSluiceNeeds(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(3, "out"))
	cfg := config.New(map[string]string{"systems.kafka.producer.bootstrap.servers": seeds})
	// A partitioner of the program's own would send messages wherever it likes; the
	// producer's own partitioner (the envelope's partition) comes after it.
	s, err := New("kafka", cfg, nil, WithClientOpts(kgo.RecordPartitioner(kgo.RoundRobinPartitioner())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Partition: 2, Message: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := s.Admin().Partitions(ctx, "out")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range []int32{0, 1, 2} {
		got = append(got, md[system.NewSSP("kafka", "out", p)].Upcoming)
	}
	if !slices.Equal(got, []string{"0", "0", "6"}) {
		t.Errorf("upcoming offsets of out's partitions = %v, want all 6 messages in partition 2", got)
	}
}

func TestNewFactoryPassesOptions(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	cfg := config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": seeds})
	counter := &connCounter{}
	sys, err := NewFactory(WithClientOpts(kgo.WithHooks(counter)))("kafka", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := sys.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.conns == 0 {
		t.Error("the factory's system made no connection with the extra hook")
	}
	if _, err := NewFactory()("bad.name", cfg, nil); err == nil {
		t.Error("NewFactory: no error for a bad system name")
	}
}
