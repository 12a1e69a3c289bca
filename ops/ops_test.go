package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
	"github.com/sluice-streams/sluice/ops"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

type funcTask func(env system.IncomingEnvelope) error

func (f funcTask) Process(_ context.Context, env system.IncomingEnvelope, _ task.Collector, _ task.Coordinator) error {
	return f(env)
}

// job is a running container with its endpoint over a kfake cluster.
type testJob struct {
	t       *testing.T
	cluster *kfake.Cluster
	cl      *kgo.Client
	c       *container.Container
	srv     *ops.Server
	done    chan error
	cancel  context.CancelFunc
}

func produce(t *testing.T, cl *kgo.Client, topic string, p int32, n int) {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "m%d", i)}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func startJob(t *testing.T, process func(system.IncomingEnvelope) error, o ops.Options, extra map[string]string) *testJob {
	t.Helper()
	cluster := kafkatest.NewCluster(t, kfake.SeedTopics(2, "in"))
	seeds := kafkatest.Seeds(cluster)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	produce(t, cl, "in", 0, 100)
	produce(t, cl, "in", 1, 100)
	keys := map[string]string{
		"job.name":                                 "opsjob",
		"systems.kafka.samza.factory":              "kafka",
		"systems.kafka.consumer.bootstrap.servers": seeds,
		"systems.kafka.samza.offset.default":       "oldest",
		"task.inputs":                              "kafka.in",
		"task.class":                               "t",
		"task.commit.ms":                           "100",
		"task.checkpoint.factory":                  "kafka",
		"task.checkpoint.system":                   "kafka",
		"task.checkpoint.replication.factor":       "1",
		"task.checkpoint.write.timeout.ms":         "2000",
		job.KeyShutdownMs:                          "3000",
		"systems.kafka.consumer.fetch.max.wait.ms": "100",
	}
	for k, v := range extra {
		keys[k] = v
	}
	m := ops.NewMetrics(o)
	opts := container.Options{
		Tasks:   map[string]task.Definition{"t": {New: func(string, config.Config) (task.StreamTask, error) { return funcTask(process), nil }}},
		Systems: map[string]system.Factory{"kafka": kafka.NewFactory(m.KafkaOption())},
		Checkpoints: map[string]container.CheckpointFactory{"kafka": func(jc *job.Config, systems map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
			return kafka.NewCheckpointManager(systems[jc.CheckpointSystem].(*kafka.System), jc.Raw, log)
		}},
		Events:         m.Events(),
		StatusInterval: -1,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	c, err := container.New(config.New(keys), opts)
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(c)
	srv, err := ops.Listen("127.0.0.1:0", c, m, ops.JobInfo{Job: "opsjob", JobID: "1", Container: "0"}, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &testJob{t: t, cluster: cluster, cl: cl, c: c, srv: srv, done: make(chan error, 1), cancel: cancel}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	go func() { j.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-j.done:
			if err != nil {
				t.Logf("the container stopped with: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the container did not stop")
		}
		wg.Wait()
	})
	return j
}

func (j *testJob) get(path string) (int, string) {
	j.t.Helper()
	resp, err := http.Get("http://" + j.srv.Addr() + path)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns the metrics, parsed with Prometheus's own text parser.
func (j *testJob) scrape() map[string]*dto.MetricFamily {
	j.t.Helper()
	code, body := j.get("/metrics")
	if code != http.StatusOK {
		j.t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		j.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of family name with the given labels.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func part(p int) map[string]string {
	return map[string]string{"task": fmt.Sprintf("Partition %d", p), "system": "kafka", "stream": "in", "partition": fmt.Sprint(p)}
}

// waitFor polls cond every 50 ms for up to 15 s.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

func TestMetricsShowLagOffsetsAndCommits(t *testing.T) {
	j := startJob(t, func(system.IncomingEnvelope) error { return nil }, ops.Options{}, nil)
	caughtUp := func(want float64) func() (bool, string) {
		return func() (bool, string) {
			f := j.scrape()
			var state []string
			ok := true
			for p := range 2 {
				lag, okl := value(f, "sluice_task_messages_behind_high_watermark", part(p))
				next, okn := value(f, "sluice_task_processed_offset", part(p))
				cp, okc := value(f, "sluice_task_checkpointed_offset", part(p))
				hwm, _ := value(f, "sluice_task_high_watermark", part(p))
				want := want
				if p == 1 {
					want = 100
				}
				state = append(state, fmt.Sprintf("p%d lag=%v next=%v checkpointed=%v hwm=%v", p, lag, next, cp, hwm))
				ok = ok && okl && okn && okc && lag == 0 && next == want && cp == want && hwm == want
			}
			return ok, strings.Join(state, "; ")
		}
	}
	waitFor(t, "both partitions caught up and checkpointed at 100", caughtUp(100))
	// The high watermark comes with the fetches: more messages show up as lag, and
	// the lag falls to 0 again.
	produce(t, j.cl, "in", 0, 50)
	waitFor(t, "partition 0 caught up at 150", caughtUp(150))

	f := j.scrape()
	commits1, _ := value(f, "sluice_task_commit_calls_total", map[string]string{"task": "Partition 0"})
	processed, _ := value(f, "sluice_task_messages_processed_total", part(0))
	if processed != 150 {
		t.Errorf("messages processed of partition 0 = %v, want 150", processed)
	}
	if n, _ := value(f, "sluice_commit_duration_seconds", nil); n < commits1 {
		t.Errorf("commit duration histogram has %v samples, want at least the %v commits", n, commits1)
	}
	if n, ok := value(f, "sluice_container_startup_seconds", nil); !ok || n <= 0 {
		t.Errorf("container start-up time = %v, %v; want a positive value", n, ok)
	}
	if _, ok := f["sluice_kafka_connects_total"]; !ok {
		t.Errorf("no franz-go client metrics (sluice_kafka_connects_total) among %d families", len(f))
	}
	// Commits go on with task.commit.ms (100 ms), skipped when nothing changed.
	waitFor(t, "more commits", func() (bool, string) {
		f := j.scrape()
		c, _ := value(f, "sluice_task_commit_calls_total", map[string]string{"task": "Partition 0"})
		s, _ := value(f, "sluice_task_commits_skipped_total", map[string]string{"task": "Partition 0"})
		return c >= commits1+3 && s >= 3, fmt.Sprintf("commits %v (were %v), skipped %v", c, commits1, s)
	})

	code, body := j.get("/status")
	var st ops.StatusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	if !st.Running || !st.Ready || st.LagTotal != 0 || len(st.Tasks) != 2 || st.Tasks[0].Partitions[0].Checkpointed != "150" ||
		st.Tasks[0].LastCheckpoint == nil || *st.Tasks[0].CheckpointAgeSeconds > 5 {
		t.Errorf("/status = %s", body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := j.get(path); code != http.StatusOK {
			t.Errorf("%s = %d %s, want 200", path, code, body)
		}
	}
}

func TestReadinessWithAStuckTaskAndABrokerDown(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	j := startJob(t, func(env system.IncomingEnvelope) error {
		if env.SSP.Partition == 1 && env.Offset == "10" {
			<-release
		}
		return nil
	}, ops.Options{StallAfter: 300 * time.Millisecond, ContactAfter: time.Second}, nil)
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	waitFor(t, "/readyz to name the stuck task", func() (bool, string) {
		code, body := j.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "task Partition 1 is behind and has processed nothing"), fmt.Sprint(code, " ", body)
	})
	if code, body := j.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a stuck task = %d %s, want 200: the process and its control loop are alive", code, body)
	}
	once.Do(func() { close(release) })
	waitFor(t, "/readyz once the task moves again", func() (bool, string) {
		code, body := j.get("/readyz")
		return code == http.StatusOK, fmt.Sprint(code, " ", body)
	})

	j.cluster.Close()
	waitFor(t, "/readyz to say the brokers do not answer", func() (bool, string) {
		code, body := j.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "the consumer of system kafka has had no answer from its brokers"), fmt.Sprint(code, " ", body)
	})
	if code, body := j.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the broker down = %d %s, want 200", code, body)
	}
}

func TestDropPartitionLabels(t *testing.T) {
	j := startJob(t, func(system.IncomingEnvelope) error { return nil }, ops.Options{DropPartitionLabels: true}, nil)
	waitFor(t, "the stream's lag at 0 after 200 messages", func() (bool, string) {
		f := j.scrape()
		lag, ok := value(f, "sluice_task_messages_behind_high_watermark", map[string]string{"system": "kafka", "stream": "in"})
		n, _ := value(f, "sluice_task_messages_processed_total", map[string]string{"system": "kafka", "stream": "in"})
		return ok && lag == 0 && n == 200, fmt.Sprintf("lag %v %v, processed %v", lag, ok, n)
	})
	for name, fam := range j.scrape() {
		for _, m := range fam.Metric {
			for _, l := range m.Label {
				if l.GetName() == "partition" || l.GetName() == "task" {
					t.Errorf("%s has label %s=%s with partition labels dropped", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// testWriter logs the container's warnings and errors through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
