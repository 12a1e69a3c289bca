package container_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// journal records the order of interesting calls across systems and managers.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// memManager is a checkpoint manager kept in memory, shared across container runs.
type memManager struct {
	mu       sync.Mutex
	cps      map[string]checkpoint.Checkpoint
	writes   int
	tries    int // Write calls, failed ones included
	failNext error
	j        *journal
}

func newMemManager(j *journal) *memManager {
	return &memManager{cps: map[string]checkpoint.Checkpoint{}, j: j}
}

func (m *memManager) Start(context.Context) error { return nil }
func (m *memManager) Close() error                { return nil }

func (m *memManager) Read(_ context.Context, task string) (checkpoint.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.cps[task]
	if !ok {
		return checkpoint.Checkpoint{}, checkpoint.ErrNoCheckpoint
	}
	return checkpoint.New(cp.Offsets), nil
}

func (m *memManager) Write(_ context.Context, task string, cp checkpoint.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries++
	if m.failNext != nil {
		return m.failNext
	}
	m.cps[task] = checkpoint.New(cp.Offsets)
	m.writes++
	if m.j != nil {
		m.j.add("write %s %v", task, sortedOffsets(cp.Offsets))
	}
	return nil
}

func (m *memManager) get(task string) map[system.SystemStreamPartition]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.cps[task].Offsets)
}

func sortedOffsets(m map[system.SystemStreamPartition]string) string {
	cp := checkpoint.Checkpoint{Offsets: m}
	var b bytes.Buffer
	for i, ssp := range cp.Partitions() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", ssp, m[ssp])
	}
	return b.String()
}

// recSystem wraps an inmem system, journaling flushes and checkpoint callbacks.
type recSystem struct {
	system.System
	name string
	j    *journal
	cons atomic.Pointer[recConsumer]
	// failFlushOnce, when set, is returned by the next Flush of any of this system's
	// producers and then forgotten: a producer that reports a delivery failure once.
	failFlushOnce *atomic.Pointer[error]
	// noPause hides the consumer's Pause and Resume from the container.
	noPause bool
	// noChange hides the consumer's AddPartitions and RemovePartitions.
	noChange bool
	// listenerErr is returned by the consumers' OnCheckpoint.
	listenerErr error
}

func (s *recSystem) NewConsumer() (system.Consumer, error) {
	c, err := s.System.NewConsumer()
	if err != nil {
		return nil, err
	}
	rc := &recConsumer{Consumer: c, name: s.name, j: s.j, listenerErr: s.listenerErr}
	s.cons.Store(rc)
	switch {
	case s.noPause:
		return plainConsumer{rc}, nil
	case s.noChange:
		return unchangingConsumer{rc}, nil
	}
	return rc, nil
}

// HighWatermarks forwards to the inmem consumer.
func (c *recConsumer) HighWatermarks() map[system.SystemStreamPartition]string {
	return c.Consumer.(system.HighWatermarker).HighWatermarks()
}

// AddPartitions and RemovePartitions forward to the inmem consumer; a recSystem with
// noChange hides them.
func (c *recConsumer) AddPartitions(offsets map[system.SystemStreamPartition]string) error {
	return c.Consumer.(system.PartitionChanger).AddPartitions(offsets)
}

func (c *recConsumer) RemovePartitions(ssps ...system.SystemStreamPartition) error {
	return c.Consumer.(system.PartitionChanger).RemovePartitions(ssps...)
}

// unchangingConsumer is a consumer that can pause but cannot add or remove partitions.
type unchangingConsumer struct{ *recConsumer }

func (unchangingConsumer) AddPartitions() {}

func (unchangingConsumer) RemovePartitions() {}

func (s *recSystem) NewProducer() (system.Producer, error) {
	p, err := s.System.NewProducer()
	return &recProducer{Producer: p, name: s.name, j: s.j, failOnce: s.failFlushOnce}, err
}

type recConsumer struct {
	system.Consumer
	name   string
	j      *journal
	polled sync.Map
	mu     sync.Mutex
	n      int
	pauses int
	// listenerErr is what OnCheckpoint returns.
	listenerErr error
}

func (c *recConsumer) Poll(ctx context.Context) ([]system.IncomingEnvelope, error) {
	envs, err := c.Consumer.Poll(ctx)
	c.mu.Lock()
	c.n += len(envs)
	c.mu.Unlock()
	return envs, err
}

// Pause and Resume forward to the inmem consumer, which can pause; a recSystem with
// noPause hides them behind a plain system.Consumer.
func (c *recConsumer) Pause(ssps ...system.SystemStreamPartition) {
	c.Consumer.(system.Pauser).Pause(ssps...)
	c.mu.Lock()
	c.pauses++
	c.mu.Unlock()
}

func (c *recConsumer) Resume(ssps ...system.SystemStreamPartition) {
	c.Consumer.(system.Pauser).Resume(ssps...)
}

func (c *recConsumer) pauseCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pauses
}

// plainConsumer is a consumer that cannot pause.
type plainConsumer struct{ system.Consumer }

func (c *recConsumer) polledCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *recConsumer) OnCheckpoint(offsets map[system.SystemStreamPartition]string) error {
	c.j.add("listener %s %v", c.name, sortedOffsets(offsets))
	return c.listenerErr
}

type recProducer struct {
	system.Producer
	name     string
	j        *journal
	failOnce *atomic.Pointer[error]
}

func (p *recProducer) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	p.j.add("send %s %s", env.Stream, env.Message)
	return p.Producer.Send(ctx, env)
}

func (p *recProducer) Flush(ctx context.Context) error {
	err := p.Producer.Flush(ctx)
	if p.failOnce != nil {
		if e := p.failOnce.Swap(nil); e != nil {
			err = *e
		}
	}
	p.j.add("flush %s err=%v", p.name, err)
	return err
}

// env is a test environment: an inmem store, a memory checkpoint manager and a journal.
type env struct {
	t       *testing.T
	store   *inmem.Store
	mgr     *memManager
	j       *journal
	systems map[string]*recSystem
	tasks   map[string]task.Definition
	logs    *bytes.Buffer
	// failFlushOnce makes the next producer Flush fail with the stored error, once.
	failFlushOnce atomic.Pointer[error]
	// noPause gives the container consumers that cannot pause.
	noPause bool
	// noChange gives the container consumers that cannot add or remove partitions.
	noChange bool
	// listenerErr makes every CheckpointListener call fail.
	listenerErr error
	// clock is the container's clock (Options.Clock): retry backoff takes no real time.
	clock *backoff.FakeClock
}

func newEnv(t *testing.T) *env {
	j := &journal{}
	return &env{t: t, store: inmem.NewStore(), mgr: newMemManager(j), j: j, systems: map[string]*recSystem{},
		tasks: map[string]task.Definition{}, logs: &bytes.Buffer{}, clock: backoff.NewFakeClock(time.Unix(0, 0))}
}

func (e *env) stream(name string, partitions int, msgsPerPartition int) {
	e.t.Helper()
	if err := e.store.CreateStream(name, partitions); err != nil {
		e.t.Fatal(err)
	}
	for p := range partitions {
		for i := range msgsPerPartition {
			if _, err := e.store.Append(name, int32(p), nil, []byte(fmt.Sprintf("%s-%d-%d", name, p, i))); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

func baseConfig(extra ...string) config.Config {
	m := map[string]string{
		"job.name":                         "test-job",
		"systems.mem.samza.factory":        "inmem",
		"systems.mem.samza.offset.default": "oldest",
		"task.inputs":                      "mem.in",
		"task.class":                       "test",
		"task.commit.ms":                   "-1",
		"task.checkpoint.factory":          "mem",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "<unset>" {
			delete(m, extra[i])
			continue
		}
		m[extra[i]] = extra[i+1]
	}
	return config.New(m)
}

type logWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (e *env) container(cfg config.Config, mod ...func(*container.Options)) (*container.Container, error) {
	opts := container.Options{
		Tasks: e.tasks,
		Systems: map[string]system.Factory{
			"inmem": func(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
				s, err := e.store.Factory()(name, cfg, logger)
				if err != nil {
					return nil, err
				}
				rs := &recSystem{System: s, name: name, j: e.j, failFlushOnce: &e.failFlushOnce, noPause: e.noPause, noChange: e.noChange, listenerErr: e.listenerErr}
				e.systems[name] = rs
				return rs, nil
			},
		},
		Checkpoints: map[string]container.CheckpointFactory{
			"mem": func(*job.Config, map[string]system.System, *slog.Logger) (checkpoint.Manager, error) {
				return e.mgr, nil
			},
		},
		Logger:         slog.New(slog.NewTextHandler(&logWriter{b: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StatusInterval: -1,
		Clock:          e.clock,
	}
	for _, m := range mod {
		m(&opts)
	}
	return container.New(cfg, opts)
}

// run runs a container to completion, failing the test if it takes over 10 s.
func (e *env) run(cfg config.Config, mod ...func(*container.Options)) error {
	e.t.Helper()
	c, err := e.container(cfg, mod...)
	if err != nil {
		e.t.Fatalf("new container: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if ctx.Err() != nil {
		e.t.Fatalf("container did not stop by itself within 10 s; logs:\n%s", e.logs)
	}
	return err
}

func exitWhenCaughtUp(o *container.Options) { o.ExitWhenCaughtUp = true }

// funcTask adapts a function to task.StreamTask.
type funcTask func(ctx context.Context, env system.IncomingEnvelope, out task.Collector, coord task.Coordinator) error

func (f funcTask) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, coord task.Coordinator) error {
	return f(ctx, env, out, coord)
}

// copyTask copies each message to mem.out, same partition, and records what it saw.
type seen struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (s *seen) add(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs == nil {
		s.msgs = map[string]int{}
	}
	s.msgs[m]++
}

func (s *seen) count(m string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[m]
}

func (s *seen) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.msgs {
		n += c
	}
	return n
}

func copyTo(out string, s *seen, hook func(env system.IncomingEnvelope, coord task.Coordinator) error) task.Definition {
	return task.Definition{New: func(string, config.Config) (task.StreamTask, error) {
		return funcTask(func(ctx context.Context, env system.IncomingEnvelope, c task.Collector, coord task.Coordinator) error {
			if hook != nil {
				if err := hook(env, coord); err != nil {
					return err
				}
			}
			if s != nil {
				s.add(string(env.Message))
			}
			if out == "" {
				return nil
			}
			return c.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "mem", Stream: out}, Partition: env.SSP.Partition, Message: env.Message})
		}), nil
	}}
}

func ssp(stream string, p int32) system.SystemStreamPartition { return system.NewSSP("mem", stream, p) }

func itoa(i int) string { return strconv.Itoa(i) }

var errBoom = errors.New("boom")
