package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
	"github.com/sluice-streams/sluice/system"
)

// cluster starts a one-broker kfake cluster and returns it with its seeds.
func cluster(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c := kafkatest.NewCluster(t, opts...)
	return c, kafkatest.Seeds(c)
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}

// startSystem builds and starts a system "kafka" over seeds with extra keys.
func startSystem(t testing.TB, seeds string, extra map[string]string) (*System, *logBuffer) {
	t.Helper()
	m := map[string]string{"systems.kafka.consumer.bootstrap.servers": seeds}
	for k, v := range extra {
		m[k] = v
	}
	logger, logs := testLogger(t)
	s, err := New("kafka", config.New(m), logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// rawClient is a plain franz-go client over seeds.
func rawClient(t testing.TB, seeds string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(seeds, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// produceN writes values "<prefix>-<i>" to topic partition p.
func produceN(t testing.TB, cl *kgo.Client, topic string, p int32, n int, prefix string) {
	t.Helper()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte(prefix + "-" + itoa(i))}
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func itoa(i int) string { return formatOffset(int64(i)) }

// pollUntil polls c until it has n envelopes or the deadline passes.
func pollUntil(t testing.TB, c system.Consumer, n int) []system.IncomingEnvelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []system.IncomingEnvelope
	for len(all) < n {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll after %d of %d envelopes: %v", len(all), n, err)
		}
		all = append(all, envs...)
	}
	return all
}

func contains(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
