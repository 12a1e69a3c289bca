package kafka

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// startOffsets returns the log start offset of each partition of topic.
func startOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	listed, err := adm.ListStartOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// awaitStart waits until every partition of topic starts at want.
func awaitStart(t *testing.T, adm *kadm.Client, topic string, want map[int32]int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := startOffsets(t, adm, topic)
		ok := true
		for p, o := range want {
			ok = ok && got[p] == o
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log start offsets of %s = %v, want %v", topic, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeleteCommittedMessagesBelowTheCheckpointBatched(t *testing.T) {
	c, seeds := cluster(t, kfake.SeedTopics(2, "in"))
	var deletes atomic.Int32
	c.ControlKey(kmsg.DeleteRecords.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		deletes.Add(1)
		c.KeepControl()
		return nil, nil, false
	})
	cl, adm := rawClient(t, seeds)
	produceN(t, cl, "in", 0, 100, "a")
	produceN(t, cl, "in", 1, 100, "b")
	s, logs := startSystem(t, seeds, map[string]string{
		"job.name": "j",
		"systems.kafka.samza.delete.committed.messages":             "true",
		"systems.kafka.samza.delete.committed.messages.interval.ms": "200",
	})
	cons, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	l := cons.(system.CheckpointListener)
	in0, in1 := system.NewSSP("kafka", "in", 0), system.NewSSP("kafka", "in", 1)
	// Three checkpoints within one interval: one request, at the highest offsets.
	for _, cp := range []map[system.SystemStreamPartition]string{{in0: "10"}, {in1: "20"}, {in0: "30"}} {
		if err := l.OnCheckpoint(cp); err != nil {
			t.Fatal(err)
		}
	}
	awaitStart(t, adm, "in", map[int32]int64{0: 30, 1: 20})
	if n := deletes.Load(); n != 1 {
		t.Errorf("%d DeleteRecords requests for three checkpoints within one interval, want 1", n)
	}
	contains(t, logs.String(), "deleted committed messages", "in#0<30", "in#1<20")
	// A checkpoint at or below what was deleted deletes nothing more.
	if err := l.OnCheckpoint(map[system.SystemStreamPartition]string{in0: "30"}); err != nil {
		t.Fatal(err)
	}
	if err := l.OnCheckpoint(map[system.SystemStreamPartition]string{in1: "60"}); err != nil {
		t.Fatal(err)
	}
	awaitStart(t, adm, "in", map[int32]int64{0: 30, 1: 60})
	if n := deletes.Load(); n != 2 {
		t.Errorf("%d DeleteRecords requests, want 2", n)
	}
	// The messages at and above the checkpoint are all still there.
	r, _ := rawClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"in": {0: kgo.NewOffset().AtStart()}}))
	var got []int64
	for len(got) < 70 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := r.PollFetches(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			break
		}
		fs.EachRecord(func(rec *kgo.Record) { got = append(got, rec.Offset) })
	}
	if len(got) != 70 || got[0] != 30 || got[69] != 99 {
		t.Errorf("partition 0 holds %d records (first %v), want offsets 30 to 99", len(got), got[:min(1, len(got))])
	}
}

func TestDeleteCommittedMessagesSparesTopicsOtherGroupsRead(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "shared", "named"))
	cl, adm := rawClient(t, seeds)
	produceN(t, cl, "shared", 0, 50, "s")
	produceN(t, cl, "named", 0, 50, "n")
	// Another application's consumer group has committed offsets of both topics.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "shared", Partition: 0, At: 5})
	offs.Add(kadm.Offset{Topic: "named", Partition: 0, At: 5})
	if _, err := adm.CommitOffsets(context.Background(), "billing", offs); err != nil {
		t.Fatal(err)
	}
	s, logs := startSystem(t, seeds, map[string]string{
		"job.name": "j",
		"systems.kafka.samza.delete.committed.messages":               "true",
		"systems.kafka.streams.named.samza.delete.committed.messages": "true",
		"systems.kafka.samza.delete.committed.messages.interval.ms":   "50",
	})
	cons, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	err = cons.(system.CheckpointListener).OnCheckpoint(map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "shared", 0): "40", system.NewSSP("kafka", "named", 0): "40"})
	if err != nil {
		t.Fatal(err)
	}
	// The topic named by its own key is deleted anyway; the other is spared.
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	awaitStart(t, adm, "named", map[int32]int64{0: 40})
	if got := startOffsets(t, adm, "shared")[0]; got != 0 {
		t.Errorf("shared starts at %d: deleted although group billing reads it", got)
	}
	t.Log(logs.String())
	contains(t, logs.String(), "other consumer groups read too", "topic=shared", "groups=billing", "systems.kafka.streams.shared.samza.delete.committed.messages")
}

func TestDeleteCommittedMessagesKeys(t *testing.T) {
	for _, tc := range []struct {
		kv   map[string]string
		want string
	}{
		{map[string]string{"systems.kafka.samza.delete.committed.messages": "yes"}, "systems.kafka.samza.delete.committed.messages"},
		{map[string]string{"systems.kafka.streams.a.b.samza.delete.committed.messages": "1x"}, "systems.kafka.streams.a.b.samza.delete.committed.messages"},
		{map[string]string{"systems.kafka.samza.delete.committed.messages.interval.ms": "0"}, "must be a positive number"},
	} {
		m := map[string]string{"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1"}
		for k, v := range tc.kv {
			m[k] = v
		}
		_, err := New("kafka", config.New(m), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %q", tc.kv, err, tc.want)
		}
	}
}

// TestDeleteCommittedMessagesCountsOtherSluiceJobsAsReaders: the checkpoint mirror of
// another job whose name ends like this one's (job "ba" against job "a") is another
// reader; this job's own mirror is not.
func TestDeleteCommittedMessagesCountsOtherSluiceJobsAsReaders(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	cl, adm := rawClient(t, seeds)
	produceN(t, cl, "in", 0, 50, "m")
	for _, g := range []string{"sluice-offsets-a-1", "sluice-offsets-ba-1"} {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "in", Partition: 0, At: 5})
		if _, err := adm.CommitOffsets(context.Background(), g, offs); err != nil {
			t.Fatal(err)
		}
	}
	s, logs := startSystem(t, seeds, map[string]string{
		"job.name": "a",
		"systems.kafka.samza.delete.committed.messages":             "true",
		"systems.kafka.samza.delete.committed.messages.interval.ms": "50",
	})
	cons, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.(system.CheckpointListener).OnCheckpoint(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 0): "40"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "other consumer groups read too") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the other job's group:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	contains(t, logs.String(), "groups=sluice-offsets-ba-1 ")
	if got := startOffsets(t, adm, "in")[0]; got != 0 {
		t.Errorf("in starts at %d: deleted although job ba reads it", got)
	}
}
