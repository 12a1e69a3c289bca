package kafka

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// TestConsumerHighWatermarksAndContactComeWithFetches checks that the consumer learns
// each partition's high watermark from its fetch responses, and when it last heard
// from a broker, without a request of its own.
func TestConsumerHighWatermarksAndContactComeWithFetches(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(2, "events"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	produceN(t, cl, "events", 0, 30, "a")
	produceN(t, cl, "events", 1, 7, "b")
	cons, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	c := cons.(*Consumer)
	if len(c.HighWatermarks()) != 0 || !c.LastContact().IsZero() {
		t.Fatalf("before Start: watermarks %v, contact %v; want none", c.HighWatermarks(), c.LastContact())
	}
	p0, p1 := system.NewSSP("kafka", "events", 0), system.NewSSP("kafka", "events", 1)
	for _, ssp := range []system.SystemStreamPartition{p0, p1} {
		if err := c.Register(ssp, "0"); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, c, 37)
	hwm := c.HighWatermarks()
	if hwm[p0] != "30" || hwm[p1] != "7" {
		t.Fatalf("HighWatermarks = %v, want %s=30 %s=7", hwm, p0, p1)
	}
	if at := c.LastContact(); at.Before(before) {
		t.Fatalf("LastContact = %v, before the consumer started (%v)", at, before)
	}
	produceN(t, cl, "events", 0, 5, "c")
	pollUntil(t, c, 5)
	if got := c.HighWatermarks()[p0]; got != "35" {
		t.Fatalf("after 5 more: high watermark of %s = %s, want 35", p0, got)
	}
}

// TestConsumerMirrorsCheckpointsToConsumerGroup checks the mirror: a checkpoint's
// offsets become the committed offsets of the job's mirror group, as any Kafka tool
// reads them, and a later (even lower) checkpoint replaces them.
func TestConsumerMirrorsCheckpointsToConsumerGroup(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(2, "events"))
	s, _ := startSystem(t, seeds, map[string]string{"job.name": "pageviews", "job.id": "2"})
	cl, adm := rawClient(t, seeds)
	produceN(t, cl, "events", 0, 10, "a")
	cons, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	c := cons.(*Consumer)
	if got, want := c.MirrorGroup(), "sluice-offsets-pageviews-2"; got != want {
		t.Fatalf("MirrorGroup = %q, want %q", got, want)
	}
	p0, p1 := system.NewSSP("kafka", "events", 0), system.NewSSP("kafka", "events", 1)
	for _, ssp := range []system.SystemStreamPartition{p0, p1} {
		if err := c.Register(ssp, "0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitGroupOffsets := func(want map[int32]int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var got map[int32]int64
		for time.Now().Before(deadline) {
			resp, err := adm.FetchOffsets(t.Context(), c.MirrorGroup())
			got = map[int32]int64{}
			if err == nil {
				resp.Each(func(o kadm.OffsetResponse) { got[o.Partition] = o.At })
				if maps.Equal(got, want) {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("group offsets = %v, want %v", got, want)
	}
	if err := c.OnCheckpoint(map[system.SystemStreamPartition]string{p0: "10", p1: "0"}); err != nil {
		t.Fatal(err)
	}
	waitGroupOffsets(map[int32]int64{0: 10, 1: 0})
	if err := c.OnCheckpoint(map[system.SystemStreamPartition]string{p0: "4"}); err != nil {
		t.Fatal(err)
	}
	waitGroupOffsets(map[int32]int64{0: 4, 1: 0})
	if err := c.OnCheckpoint(map[system.SystemStreamPartition]string{p0: "x"}); err == nil || !strings.Contains(err.Error(), "events#0") {
		t.Fatalf("OnCheckpoint with a bad offset = %v, want an error naming the partition", err)
	}
	// What is pending at Close is committed.
	if err := c.OnCheckpoint(map[system.SystemStreamPartition]string{p0: "9", p1: "0"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitGroupOffsets(map[int32]int64{0: 9, 1: 0})
}

func TestMirrorKeys(t *testing.T) {
	for _, tc := range []struct {
		keys    map[string]string
		group   string
		problem string
	}{
		{keys: map[string]string{"job.name": "j"}, group: "sluice-offsets-j-1"},
		{keys: map[string]string{"job.name": "j", KeyMirrorEnabled: "false"}, group: ""},
		{keys: map[string]string{"job.name": "j", KeyMirrorGroup: "lag-of-j"}, group: "lag-of-j"},
		{keys: map[string]string{}, group: ""},
		{keys: map[string]string{"job.name": "j", KeyMirrorEnabled: "yes please"}, problem: KeyMirrorEnabled},
		{keys: map[string]string{"job.name": "j", KeyMirrorGroup: ""}, problem: KeyMirrorGroup},
	} {
		m := map[string]string{"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1"}
		for k, v := range tc.keys {
			m[k] = v
		}
		s, err := New("kafka", config.New(m), nil)
		if tc.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%v: New = %v, want a problem naming %s", tc.keys, err, tc.problem)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: New: %v", tc.keys, err)
			continue
		}
		if s.mirrorGroup != tc.group {
			t.Errorf("%v: mirror group %q, want %q", tc.keys, s.mirrorGroup, tc.group)
		}
	}
}
