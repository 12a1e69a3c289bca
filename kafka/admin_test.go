package kafka

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
)

func TestAdminPartitions(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(3, "events"), kfake.SeedTopics(1, "empty"))
	s, _ := startSystem(t, seeds, nil)
	cl, adm := rawClient(t, seeds)
	produceN(t, cl, "events", 0, 5, "a")
	produceN(t, cl, "events", 1, 2, "b")
	ctx := t.Context()

	got, err := s.Admin().Partitions(ctx, "events", "empty")
	if err != nil {
		t.Fatal(err)
	}
	want := map[system.SystemStreamPartition]system.PartitionMetadata{
		system.NewSSP("kafka", "events", 0): {Oldest: "0", Newest: "4", Upcoming: "5"},
		system.NewSSP("kafka", "events", 1): {Oldest: "0", Newest: "1", Upcoming: "2"},
		system.NewSSP("kafka", "events", 2): {Oldest: "0", Newest: "", Upcoming: "0"},
		system.NewSSP("kafka", "empty", 0):  {Oldest: "0", Newest: "", Upcoming: "0"},
	}
	assertMetadata(t, got, want)

	// Delete records: the log start moves; deleting everything leaves an empty
	// partition whose offsets still count up.
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "events", Partition: 0, At: 3})
	del.Add(kadm.Offset{Topic: "events", Partition: 1, At: 2})
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	got, err = s.Admin().Partitions(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	want = map[system.SystemStreamPartition]system.PartitionMetadata{
		system.NewSSP("kafka", "events", 0): {Oldest: "3", Newest: "4", Upcoming: "5"},
		system.NewSSP("kafka", "events", 1): {Oldest: "2", Newest: "", Upcoming: "2"},
		system.NewSSP("kafka", "events", 2): {Oldest: "0", Newest: "", Upcoming: "0"},
	}
	assertMetadata(t, got, want)

	if got, err := s.Admin().Partitions(ctx); err != nil || len(got) != 0 {
		t.Errorf("Partitions() = %v, %v; want nothing", got, err)
	}
}

func assertMetadata(t *testing.T, got, want map[system.SystemStreamPartition]system.PartitionMetadata) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d partitions, want %d: %v", len(got), len(want), got)
	}
	for ssp, w := range want {
		if g, ok := got[ssp]; !ok || g != w {
			t.Errorf("%s: got %+v, want %+v", ssp, g, w)
		}
	}
}

func TestAdminMissingTopic(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "present"))
	s, _ := startSystem(t, seeds, nil)
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	s.clock = clock
	_, err := s.Admin().Partitions(t.Context(), "present", "absent")
	if err == nil || !strings.Contains(err.Error(), `"absent"`) || strings.Contains(err.Error(), `"present"`) {
		t.Fatalf("Partitions with a missing topic = %v, want an error naming absent only", err)
	}
	// A topic just created may take a moment to appear: the lookup was retried.
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(clock.Waits(), want) {
		t.Errorf("waits = %v, want %v (5 attempts)", clock.Waits(), want)
	}
}

func TestAdminNotStarted(t *testing.T) {
	s, err := New("kafka", config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admin().Partitions(t.Context(), "x"); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("Partitions before Start = %v", err)
	}
	if _, err := s.NewConsumer(); err == nil {
		t.Fatal("NewConsumer before Start succeeded")
	}
	if _, err := s.NewProducer(); err == nil {
		t.Fatal("NewProducer before Start succeeded")
	}
}

func TestAdminOffsetArithmetic(t *testing.T) {
	a := &Admin{}
	for _, tt := range []struct {
		a, b string
		want int
	}{{"1", "2", -1}, {"10", "9", 1}, {"7", "7", 0}, {"0", "9223372036854775807", -1}} {
		if got, err := a.CompareOffsets(tt.a, tt.b); err != nil || got != tt.want {
			t.Errorf("CompareOffsets(%s, %s) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
	}
	if got, err := a.OffsetAfter("41"); err != nil || got != "42" {
		t.Errorf("OffsetAfter(41) = %q, %v", got, err)
	}
	if got, err := a.Distance("10", "25"); err != nil || got != 15 {
		t.Errorf("Distance(10, 25) = %d, %v", got, err)
	}
	if got, err := a.Distance("25", "10"); err != nil || got != -15 {
		t.Errorf("Distance(25, 10) = %d, %v", got, err)
	}
	for _, bad := range []string{"", "-1", "x", "1.5", "99999999999999999999", "+5", "007", " 7"} {
		if _, err := a.CompareOffsets(bad, "1"); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("CompareOffsets(%q) = %v, want an error naming it", bad, err)
		}
		if _, err := a.OffsetAfter(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("OffsetAfter(%q) = %v, want an error naming it", bad, err)
		}
		if _, err := a.Distance("1", bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Distance(1, %q) = %v, want an error naming it", bad, err)
		}
	}
	if _, err := a.OffsetAfter("9223372036854775807"); err == nil {
		t.Error("OffsetAfter(max) succeeded")
	}
	// The system's admin names the system kind; a number not written plainly is
	// told how to write it.
	sa := (&System{name: "kafka"}).Admin()
	if _, err := sa.CompareOffsets("007", "1"); err == nil || err.Error() != `kafka: offset "007" is not written plainly: write 7 (a whole number without a sign or leading zeros)` {
		t.Errorf("CompareOffsets(007) = %v", err)
	}
	if _, err := ParseOffset("+5"); err == nil || !strings.HasPrefix(err.Error(), "kafka: ") || !strings.Contains(err.Error(), "write 5") {
		t.Errorf("ParseOffset(+5) = %v", err)
	}
}

func TestStartUnreachable(t *testing.T) {
	s, err := New("kafka", config.New(map[string]string{"systems.kafka.producer.bootstrap.servers": "127.0.0.1:1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = s.Start(ctx)
	if err == nil {
		t.Fatal("Start against a closed port succeeded")
	}
	contains(t, err.Error(), "127.0.0.1:1", "systems.kafka.producer.bootstrap.servers")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("Start took %v", d)
	}
}

// TestNewStartsNothing: New validates only; no goroutines, no connections.
func TestNewStartsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := config.New(map[string]string{
		"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1",
		"systems.kafka.consumer.security.protocol": "SASL_PLAINTEXT",
		"systems.kafka.consumer.sasl.mechanism":    "SCRAM-SHA-256",
		"systems.kafka.consumer.sasl.username":     "u",
		"systems.kafka.consumer.sasl.password":     "p",
		"job.name":                                 "j",
	})
	s, err := New("kafka", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCheckpointManager(s, cfg, nil); err != nil {
		t.Fatal(err)
	}
	// Goroutines of earlier tests may still be ending: only more is a failure.
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before New, %d after", before, after)
	}
}

func TestSystemCloseClosesConsumers(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "events"))
	s, _ := startSystem(t, seeds, nil)
	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(system.NewSSP("kafka", "events", 0), "0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := c.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Poll after System.Close = %v", err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestAdminOffsetForTime covers admin_time.go: the first offset at or after a time.
func TestAdminOffsetForTime(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "timed"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		r := &kgo.Record{Topic: "timed", Partition: 0, Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	a := s.Admin().(*Admin)
	ssp := system.NewSSP("kafka", "timed", 0)
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{base.Add(-time.Hour), "0"},
		{base, "0"},
		{base.Add(90 * time.Second), "2"},
		{base.Add(4 * time.Minute), "4"},
		{base.Add(time.Hour), "5"},
	} {
		if got, err := a.OffsetForTime(t.Context(), ssp, tt.at); err != nil || got != tt.want {
			t.Errorf("OffsetForTime(%v) = %q, %v; want %s", tt.at, got, err, tt.want)
		}
	}
	if _, err := a.OffsetForTime(t.Context(), system.NewSSP("other", "timed", 0), base); err == nil {
		t.Error("OffsetForTime of another system succeeded")
	}
}
