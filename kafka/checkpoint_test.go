package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/checkpointtest"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
)

// newManager returns an unstarted manager for job over seeds, closed at cleanup.
func newManager(t testing.TB, seeds, job string, extra map[string]string) (*CheckpointManager, *logBuffer) {
	t.Helper()
	m := map[string]string{
		"systems.kafka.producer.bootstrap.servers": seeds,
		"job.name": job,
	}
	for k, v := range extra {
		m[k] = v
	}
	cfg := config.New(m)
	logger, logs := testLogger(t)
	sys, err := New("kafka", cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := NewCheckpointManager(sys, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	return mgr, logs
}

func startManager(t testing.TB, seeds, job string, extra map[string]string) (*CheckpointManager, *logBuffer) {
	t.Helper()
	m, logs := newManager(t, seeds, job, extra)
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m, logs
}

func cp(kv ...any) checkpoint.Checkpoint {
	offsets := map[system.SystemStreamPartition]string{}
	for i := 0; i < len(kv); i += 2 {
		offsets[kv[i].(system.SystemStreamPartition)] = kv[i+1].(string)
	}
	return checkpoint.New(offsets)
}

var (
	sspA = system.NewSSP("kafka", "PageViewEvent", 0)
	sspB = system.NewSSP("kafka", "page.views.v2", 3)
)

func TestCheckpointConformance(t *testing.T) {
	_, seeds := cluster(t)
	n := 0
	checkpointtest.Run(t, func(t *testing.T) checkpointtest.Harness {
		n++
		job := fmt.Sprintf("conformance-%d", n)
		open := func() (checkpoint.Manager, error) {
			cfg := config.New(map[string]string{"systems.kafka.producer.bootstrap.servers": seeds, "job.name": job})
			sys, err := New("kafka", cfg, nil)
			if err != nil {
				return nil, err
			}
			return NewCheckpointManager(sys, cfg, nil)
		}
		return checkpointtest.Harness{
			Open: open,
			Corrupt: func(t *testing.T, task string) {
				cl, _ := rawClient(t, seeds)
				r := &kgo.Record{Topic: "__samza_checkpoint_" + job + "_1", Partition: 0, Key: []byte(task), Value: []byte("{not json")}
				if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			},
			Fence: func(t *testing.T, c checkpoint.Container) {
				m, err := open()
				if err != nil {
					t.Fatal(err)
				}
				fenceContainer(t, m.(*CheckpointManager), c)
			},
		}
	})
}

func TestCheckpointTopicCreation(t *testing.T) {
	_, seeds := cluster(t)
	m, logs := startManager(t, seeds, "my-job", nil)
	topic := "__samza_checkpoint_my-job_1"
	if m.Topic() != topic {
		t.Fatalf("Topic = %q", m.Topic())
	}
	_, adm := rawClient(t, seeds)
	td := describe(t, adm, topic)
	if len(td.Partitions) != 1 || len(td.Partitions[0].Replicas) != 1 {
		t.Errorf("topic %s: %d partitions, replicas %v; want 1 partition with 1 replica", topic, len(td.Partitions), td.Partitions[0].Replicas)
	}
	if got := topicConfig(t, adm, topic, "cleanup.policy"); got != "compact" {
		t.Errorf("cleanup.policy = %q, want compact", got)
	}
	contains(t, logs.String(), "capping", "replication_factor=3", "brokers=1", "using=1", "created the checkpoint topic")

	// A second manager (another container) accepts the topic as it is.
	m2, logs2 := startManager(t, seeds, "my-job", nil)
	if strings.Contains(logs2.String(), "level=WARN") {
		t.Errorf("second start warned: %s", logs2)
	}
	_ = m2
}

func TestCheckpointReplicationFactorNotCapped(t *testing.T) {
	_, seeds := cluster(t, kfake.NumBrokers(3))
	_, logs := startManager(t, seeds, "rf", map[string]string{"task.checkpoint.replication.factor": "2", "task.checkpoint.topic": "cp.rf"})
	_, adm := rawClient(t, seeds)
	if td := describe(t, adm, "cp.rf"); len(td.Partitions[0].Replicas) != 2 {
		t.Errorf("replicas %v, want 2", td.Partitions[0].Replicas)
	}
	if strings.Contains(logs.String(), "capping") {
		t.Errorf("capped with enough brokers: %s", logs)
	}
}

func describe(t *testing.T, adm *kadm.Client, topic string) kadm.TopicDetail {
	t.Helper()
	tds, err := adm.ListTopics(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	td := tds[topic]
	if td.Err != nil {
		t.Fatal(td.Err)
	}
	return td
}

func topicConfig(t *testing.T, adm *kadm.Client, topic, key string) string {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c.MaybeValue()
		}
	}
	return ""
}

func TestCheckpointMultiPartitionTopicRefused(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(4, "__samza_checkpoint_wide_7"))
	m, _ := newManager(t, seeds, "wide", map[string]string{"job.id": "7"})
	err := m.Start(t.Context())
	if err == nil {
		t.Fatal("Start accepted a topic with 4 partitions")
	}
	contains(t, err.Error(), "__samza_checkpoint_wide_7", "4 partitions", "exactly 1", "task.checkpoint.topic")
	if _, err := m.Read(t.Context(), "Partition 0"); err == nil {
		t.Error("Read after a failed Start succeeded")
	}
}

func TestCheckpointNonCompactedTopicWarned(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "plain-topic"))
	m, logs := startManager(t, seeds, "j", map[string]string{"task.checkpoint.topic": "plain-topic"})
	contains(t, logs.String(), "level=WARN", "not compacted", "cleanup.policy=delete")
	// It works all the same.
	if err := m.Write(t.Context(), "Partition 0", cp(sspA, "5")); err != nil {
		t.Fatal(err)
	}
}

// rawWrite produces records to partition 0 of topic: values nil are tombstones.
func rawWrite(t testing.TB, seeds, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, _ := rawClient(t, seeds, kgo.MaxBufferedRecords(1<<20))
	for _, r := range recs {
		r.Topic, r.Partition = topic, 0
	}
	for len(recs) > 0 {
		n := min(len(recs), 100000)
		if err := cl.ProduceSync(context.Background(), recs[:n]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
}

func encode(t testing.TB, task string, c checkpoint.Checkpoint, id string) []byte {
	t.Helper()
	b, err := checkpoint.Encode(task, c, id, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckpointLastRecordPerTaskWins(t *testing.T) {
	_, seeds := cluster(t)
	const topic = "__samza_checkpoint_many_1"
	first, _ := startManager(t, seeds, "many", nil) // creates the topic
	first.Close()

	const tasks, rounds = 50, 40
	var recs []*kgo.Record
	for r := range rounds {
		for i := range tasks {
			task := fmt.Sprintf("Partition %d", i)
			recs = append(recs, &kgo.Record{Key: []byte(task), Value: encode(t, task, cp(sspA, itoa(r*1000+i), sspB, itoa(r)), itoa(r))})
		}
	}
	rawWrite(t, seeds, topic, recs...)
	m, logs := startManager(t, seeds, "many", nil)
	for i := range tasks {
		task := fmt.Sprintf("Partition %d", i)
		got, err := m.Read(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if want := cp(sspA, itoa((rounds-1)*1000+i), sspB, itoa(rounds-1)); !got.Equal(want) {
			t.Fatalf("%s: got %v, want %v", task, got.Offsets, want.Offsets)
		}
	}
	listed, err := m.Tasks(t.Context())
	if err != nil || len(listed) != tasks {
		t.Fatalf("Tasks = %d tasks, %v", len(listed), err)
	}
	contains(t, logs.String(), fmt.Sprintf("records=%d", tasks*rounds), fmt.Sprintf("tasks=%d", tasks))
}

func TestCheckpointTombstone(t *testing.T) {
	_, seeds := cluster(t)
	m, _ := startManager(t, seeds, "tomb", nil)
	ctx := t.Context()
	for _, task := range []string{"Partition 0", "Partition 1"} {
		if err := m.Write(ctx, task, cp(sspA, "10")); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	rawWrite(t, seeds, m.Topic(), &kgo.Record{Key: []byte("Partition 0")}) // a tombstone
	m2, _ := startManager(t, seeds, "tomb", nil)
	if _, err := m2.Read(ctx, "Partition 0"); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Errorf("Read of a tombstoned task = %v, want ErrNoCheckpoint", err)
	}
	if got, err := m2.Read(ctx, "Partition 1"); err != nil || !got.Equal(cp(sspA, "10")) {
		t.Errorf("Read(Partition 1) = %v, %v", got, err)
	}
	if tasks, _ := m2.Tasks(ctx); len(tasks) != 1 || tasks[0] != "Partition 1" {
		t.Errorf("Tasks = %v", tasks)
	}
	// Writing after a tombstone brings the task back.
	m2.Close()
	rawWrite(t, seeds, m.Topic(), &kgo.Record{Key: []byte("Partition 0"), Value: encode(t, "Partition 0", cp(sspA, "11"), "x")})
	m3, _ := startManager(t, seeds, "tomb", nil)
	if got, err := m3.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "11")) {
		t.Errorf("Read after re-write = %v, %v", got, err)
	}
}

func TestCheckpointCorruptRecords(t *testing.T) {
	_, seeds := cluster(t)
	m, _ := startManager(t, seeds, "bad", nil)
	ctx := t.Context()
	for _, task := range []string{"Partition 0", "Partition 1", "Partition 2", "Partition 3"} {
		if err := m.Write(ctx, task, cp(sspA, "1")); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	topic := m.Topic()
	// Offsets 4, 5, 6: garbage; a document for another task; an empty value.
	rawWrite(t, seeds, topic,
		&kgo.Record{Key: []byte("Partition 0"), Value: []byte("garbage")},
		&kgo.Record{Key: []byte("Partition 1"), Value: encode(t, "Partition 9", cp(sspA, "1"), "x")},
		&kgo.Record{Key: []byte("Partition 2"), Value: []byte{}},
	)
	m2, logs := startManager(t, seeds, "bad", nil)
	for task, off := range map[string]int{"Partition 0": 4, "Partition 1": 5, "Partition 2": 6} {
		_, err := m2.Read(ctx, task)
		var ce *checkpoint.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, checkpoint.ErrNoCheckpoint) {
			t.Errorf("Read(%s) = %v, want a *CorruptError", task, err)
			continue
		}
		if want := fmt.Sprintf("topic %s partition 0 offset %d", topic, off); ce.Where != want {
			t.Errorf("Read(%s): Where = %q, want %q", task, ce.Where, want)
		}
	}
	_, err := m2.Read(ctx, "Partition 1")
	contains(t, err.Error(), `"Partition 9"`, `"Partition 1"`)
	if got, err := m2.Read(ctx, "Partition 3"); err != nil || !got.Equal(cp(sspA, "1")) {
		t.Errorf("Read(Partition 3) = %v, %v", got, err)
	}
	contains(t, logs.String(), "corrupt=3")
	// Tasks lists corrupt tasks too, so that tools can show and replace them.
	if tasks, _ := m2.Tasks(ctx); len(tasks) != 4 {
		t.Errorf("Tasks = %v", tasks)
	}
	// Writing a good checkpoint replaces the corrupt one.
	if err := m2.Write(ctx, "Partition 0", cp(sspA, "2")); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "2")) {
		t.Errorf("Read after replacing = %v, %v", got, err)
	}
}

func TestCheckpointNilKeyIsCorruptTopic(t *testing.T) {
	_, seeds := cluster(t)
	m, _ := startManager(t, seeds, "nokey", nil)
	m.Close()
	rawWrite(t, seeds, m.Topic(), &kgo.Record{Value: []byte("{}")})
	m2, _ := newManager(t, seeds, "nokey", nil)
	err := m2.Start(t.Context())
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) || ce.Where != "topic "+m.Topic()+" partition 0 offset 0" {
		t.Fatalf("Start = %v, want a *CorruptError at offset 0", err)
	}
	contains(t, err.Error(), "no key")
}

// TestCheckpointReadStopsAtStartEnd holds the manager's first fetch at the broker
// while another writer appends, so the fetch returns records past the end offset
// captured at start: they are not read.
func TestCheckpointReadStopsAtStartEnd(t *testing.T) {
	c, seeds := cluster(t)
	m, _ := startManager(t, seeds, "race", nil)
	ctx := t.Context()
	if err := m.Write(ctx, "Partition 0", cp(sspA, "100")); err != nil {
		t.Fatal(err)
	}
	m.Close()
	topic := m.Topic()

	held := make(chan struct{})
	appended := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() {
			close(held)
			c.SleepControl(func() { <-appended })
		})
		return nil, nil, false
	})
	go func() {
		<-held
		rawWrite(t, seeds, topic,
			&kgo.Record{Key: []byte("Partition 0"), Value: encode(t, "Partition 0", cp(sspA, "200"), "late")},
			&kgo.Record{Key: []byte("Partition 5"), Value: encode(t, "Partition 5", cp(sspA, "1"), "late")},
		)
		close(appended)
	}()
	m2, _ := startManager(t, seeds, "race", nil)
	select {
	case <-appended:
	default:
		t.Fatal("Start returned before the other writer appended")
	}
	if got, err := m2.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "100")) {
		t.Errorf("Read(Partition 0) = %v, %v; want the checkpoint present at start", got.Offsets, err)
	}
	if _, err := m2.Read(ctx, "Partition 5"); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Errorf("Read(Partition 5) = %v; want ErrNoCheckpoint (written after start)", err)
	}
}

func TestCheckpointReadAfterCompaction(t *testing.T) {
	c, seeds := cluster(t)
	m, _ := startManager(t, seeds, "compacted", nil)
	ctx := t.Context()
	for i := range 20 {
		for _, task := range []string{"Partition 0", "Partition 1"} {
			if err := m.Write(ctx, task, cp(sspA, itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.Close()
	rawWrite(t, seeds, m.Topic(), &kgo.Record{Key: []byte("Partition 1")})
	c.Compact()
	m2, _ := startManager(t, seeds, "compacted", nil)
	if got, err := m2.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "19")) {
		t.Errorf("Read(Partition 0) = %v, %v", got.Offsets, err)
	}
	if _, err := m2.Read(ctx, "Partition 1"); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Errorf("Read(Partition 1) = %v", err)
	}
}

func TestCheckpointWriteRetries(t *testing.T) {
	c, seeds := cluster(t)
	m, logs := startManager(t, seeds, "flaky", map[string]string{"task.checkpoint.write.timeout.ms": "1500"})
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	m.sys.clock = clock
	ctx := t.Context()

	// A few failures are retried through.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.PolicyViolation, Count: 2})
	if err := m.Write(ctx, "Partition 0", cp(sspA, "1")); err != nil {
		t.Fatalf("Write with two failures = %v", err)
	}
	if h.Hits() != 2 {
		t.Errorf("fault hit %d times, want 2", h.Hits())
	}
	contains(t, logs.String(), "write failed; retrying")
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v", clock.Waits(), want)
	}

	// Failing for good, Write gives up after the configured time, wrapping the
	// broker's error and saying it retried: 4 attempts, waiting 0.1, 0.2, 0.4 s and
	// the 0.8 s left of the budget (on the fake clock).
	clock = backoff.NewFakeClock(time.Unix(0, 0))
	m.sys.clock = clock
	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.PolicyViolation, Count: -1})
	err := m.Write(ctx, "Partition 0", cp(sspA, "2"))
	h.Remove()
	if !errors.Is(err, kerr.PolicyViolation) || !errors.Is(err, checkpoint.ErrRetriesExhausted) {
		t.Fatalf("Write = %v, want an error wrapping POLICY_VIOLATION and ErrRetriesExhausted", err)
	}
	contains(t, err.Error(), "Partition 0", m.Topic(), "gave up after 4 attempts in 1.5s", "task.checkpoint.write.timeout.ms=1500")
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(clock.Waits(), want) || h.Hits() != 4 {
		t.Errorf("Write failed %d times, waiting %v; want 4 times, waiting %v", h.Hits(), clock.Waits(), want)
	}
	// The failed write did not change what Read returns.
	if got, err := m.Read(ctx, "Partition 0"); err != nil || !got.Equal(cp(sspA, "1")) {
		t.Errorf("Read after a failed write = %v, %v", got.Offsets, err)
	}
	if err := m.Write(ctx, "Partition 0", cp(sspA, "3")); err != nil {
		t.Fatalf("Write after the fault = %v", err)
	}
}

func TestCheckpointManagerConfig(t *testing.T) {
	sys, err := New("kafka", config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		keys map[string]string
		want map[string]string
	}{
		{map[string]string{}, map[string]string{"job.name": "missing"}},
		{map[string]string{"job.name": "page views", "task.checkpoint.replication.factor": "0", "task.checkpoint.write.timeout.ms": "soon"},
			map[string]string{"job.name": `character ' '`, "task.checkpoint.replication.factor": "from 1 to 32767", "task.checkpoint.write.timeout.ms": "milliseconds"}},
		{map[string]string{"job.name": "ok", "job.id": "a/b"}, map[string]string{"job.id": "task.checkpoint.topic"}},
		{map[string]string{"job.name": strings.Repeat("x", 240)}, map[string]string{"job.name": "more than Kafka's 249"}},
		{map[string]string{"job.name": "bad name", "task.checkpoint.topic": "fine.topic"}, nil},
		{map[string]string{"job.name": "x", "task.checkpoint.topic": "no:colons", "task.checkpoint.write.timeout.ms": "-1"},
			map[string]string{"task.checkpoint.topic": "not a legal Kafka topic name", "task.checkpoint.write.timeout.ms": "positive"}},
	} {
		_, err := NewCheckpointManager(sys, config.New(tt.keys), nil)
		got := map[string]string{}
		for _, p := range problems(t, err) {
			got[p.Key] = p.Msg
		}
		if len(got) != len(tt.want) {
			t.Errorf("%v: got %v, want problems for %v", tt.keys, err, tt.want)
		}
		for k, msg := range tt.want {
			if !strings.Contains(got[k], msg) {
				t.Errorf("%v: problem for %s = %q, want %q", tt.keys, k, got[k], msg)
			}
		}
	}
}

func TestRunLock(t *testing.T) {
	_, seeds := cluster(t)
	m, _ := startManager(t, seeds, "locked", map[string]string{"job.id": "2"})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := m.CheckNotRunning(ctx); err != nil {
		t.Fatalf("CheckNotRunning with no containers = %v", err)
	}
	l1, err := m.AcquireRunLock(ctx, checkpoint.Container{ID: 0, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	m2, _ := startManager(t, seeds, "locked", map[string]string{"job.id": "2"})
	l2, err := m2.AcquireRunLock(ctx, checkpoint.Container{ID: 1, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()

	// A tool's manager, never started, sees the job running.
	tool, _ := newManager(t, seeds, "locked", map[string]string{"job.id": "2"})
	err = waitMembers(ctx, tool, 2)
	if !errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("CheckNotRunning = %v, want ErrJobRunning", err)
	}
	contains(t, err.Error(), "sluice-job-locked-2", "2 member(s)", "session times out (10s)")
	// Another job id is not affected.
	other, _ := newManager(t, seeds, "locked", nil)
	if err := other.CheckNotRunning(ctx); err != nil {
		t.Errorf("CheckNotRunning for job id 1 = %v", err)
	}

	l1.Close()
	if err := waitMembers(ctx, tool, 1); !errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("CheckNotRunning with one container left = %v", err)
	}
	l2.Close()
	if err := waitMembers(ctx, tool, 0); err != nil {
		t.Fatalf("CheckNotRunning after both left = %v", err)
	}
}

// waitMembers polls CheckNotRunning until the group has n members (rebalances take
// a moment) and returns its last answer.
func waitMembers(ctx context.Context, m *CheckpointManager, n int) error {
	want := fmt.Sprintf("%d member(s)", n)
	for {
		err := m.CheckNotRunning(ctx)
		if (n == 0 && err == nil) || (err != nil && strings.Contains(err.Error(), want)) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRefreshSeesCheckpointsWrittenSinceStart: Read answers from what the manager read
// at Start; Refresh catches up with what another writer (a task's previous owner)
// wrote since.
func TestRefreshSeesCheckpointsWrittenSinceStart(t *testing.T) {
	_, seeds := cluster(t)
	reader, _ := startManager(t, seeds, "refresh", nil)
	writer, _ := startManager(t, seeds, "refresh", nil)
	ctx := t.Context()
	cp := checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 3): "42"})
	if err := writer.Write(ctx, "Partition 3", cp); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Read(ctx, "Partition 3"); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Fatalf("Read before Refresh = %v, want no checkpoint (the snapshot of Start)", err)
	}
	if err := reader.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := reader.Read(ctx, "Partition 3")
	if err != nil || !got.Equal(cp) {
		t.Fatalf("Read after Refresh = %v, %v; want %v", got, err, cp.Offsets)
	}
}
