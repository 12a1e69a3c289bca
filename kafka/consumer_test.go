package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

func TestConsumerReadsRegisteredPartitionsFromExactOffsets(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(3, "events"), kfake.SeedTopics(2, "clicks"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	for p := range int32(3) {
		produceN(t, cl, "events", p, 50, "e"+itoa(int(p)))
	}
	produceN(t, cl, "clicks", 1, 20, "c1")
	produceN(t, cl, "clicks", 0, 20, "c0")

	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := map[system.SystemStreamPartition]int{
		system.NewSSP("kafka", "events", 0): 0,
		system.NewSSP("kafka", "events", 2): 17,
		system.NewSSP("kafka", "clicks", 1): 19,
	}
	for ssp, off := range start {
		if err := c.Register(ssp, itoa(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := 50 + 33 + 1
	envs := pollUntil(t, c, want)
	// Nothing more arrives from unregistered partitions.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	more, err := c.Poll(ctx)
	cancel()
	if len(more) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("extra Poll = %d envelopes, %v; want none and the deadline", len(more), err)
	}
	if len(envs) != want {
		t.Fatalf("got %d envelopes, want %d", len(envs), want)
	}
	next := map[system.SystemStreamPartition]int{}
	for ssp, off := range start {
		next[ssp] = off
	}
	for _, e := range envs {
		n, ok := next[e.SSP]
		if !ok {
			t.Fatalf("envelope from unregistered %s", e.SSP)
		}
		prefix := map[string]string{"events": "e", "clicks": "c"}[e.SSP.Stream] + itoa(int(e.SSP.Partition))
		if e.Offset != itoa(n) || string(e.Message) != prefix+"-"+itoa(n) {
			t.Fatalf("%s: got offset %s %q, want offset %d %q", e.SSP, e.Offset, e.Message, n, prefix+"-"+itoa(n))
		}
		if e.Timestamp.IsZero() {
			t.Fatalf("%s offset %s has no timestamp", e.SSP, e.Offset)
		}
		next[e.SSP] = n + 1
	}
}

func TestConsumerRegisterValidation(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "events"))
	s, _ := startSystem(t, seeds, nil)
	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Register(system.NewSSP("other", "events", 0), "0"); err == nil {
		t.Error("Register of another system succeeded")
	}
	if err := c.Register(system.NewSSP("kafka", "events", 0), "-3"); err == nil || !strings.Contains(err.Error(), `"-3"`) {
		t.Errorf("Register at -3 = %v", err)
	}
	if _, err := c.Poll(t.Context()); err == nil {
		t.Error("Poll before Start succeeded")
	}
	// Registering twice keeps the earlier offset.
	ssp := system.NewSSP("kafka", "events", 0)
	cl, _ := rawClient(t, seeds)
	produceN(t, cl, "events", 0, 10, "v")
	if err := c.Register(ssp, "6"); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ssp, "4"); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ssp, "8"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if envs := pollUntil(t, c, 6); envs[0].Offset != "4" {
		t.Errorf("first offset %s, want 4", envs[0].Offset)
	}
	if err := c.Register(ssp, "0"); err == nil {
		t.Error("Register after Start succeeded")
	}
}

// TestConsumerOutOfRange deletes records past a consumer's position while it is not
// polling, then polls: each reset policy does what it says. The consumer fetches one
// batch at a time, so it has at most a batch or two buffered when the records go.
func TestConsumerOutOfRange(t *testing.T) {
	for _, tt := range []struct {
		name   string
		extra  map[string]string
		policy system.ResetPolicy
	}{
		{"default-oldest", nil, system.ResetOldest},
		{"system-earliest", map[string]string{"systems.kafka.consumer.auto.offset.reset": "earliest"}, system.ResetOldest},
		{"system-upcoming", map[string]string{"systems.kafka.consumer.auto.offset.reset": "upcoming"}, system.ResetUpcoming},
		{"stream-latest", map[string]string{
			"systems.kafka.consumer.auto.offset.reset":                   "fail",
			"systems.kafka.streams.my.events.consumer.auto.offset.reset": "latest",
		}, system.ResetUpcoming},
		{"stream-none", map[string]string{"systems.kafka.streams.my.events.consumer.auto.offset.reset": "none"}, system.ResetFail},
		{"system-fail", map[string]string{"systems.kafka.consumer.auto.offset.reset": "fail"}, system.ResetFail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const topic = "my.events"
			_, seeds := cluster(t, kfake.SeedTopics(1, topic))
			extra := map[string]string{
				"systems.kafka.consumer.fetch.max.bytes":           "1",
				"systems.kafka.consumer.max.partition.fetch.bytes": "1",
			}
			for k, v := range tt.extra {
				extra[k] = v
			}
			s, logs := startSystem(t, seeds, extra)
			if got := s.ResetPolicy(topic); got != tt.policy {
				t.Fatalf("system.ResetPolicy = %v, want %v", got, tt.policy)
			}
			cl, adm := rawClient(t, seeds)
			for i := range 30 { // one batch per record
				produceN(t, cl, topic, 0, 1, "v"+itoa(i))
			}

			c, err := s.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ssp := system.NewSSP("kafka", topic, 0)
			if err := c.Register(ssp, "0"); err != nil {
				t.Fatal(err)
			}
			if err := c.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			seen := pollUntil(t, c, 1)
			// Retention deletes everything before offset 25 while the consumer
			// is not polling.
			del := kadm.Offsets{}
			del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 25})
			if _, err := adm.DeleteRecords(t.Context(), del); err != nil {
				t.Fatal(err)
			}
			target, lastTarget := int64(25), 29
			if tt.policy == system.ResetUpcoming {
				target, lastTarget = 30, 32
			}
			deadline := time.Now().Add(10 * time.Second)
			produced := false
			var pollErr error
			for seen[len(seen)-1].Offset != itoa(lastTarget) && time.Now().Before(deadline) {
				if tt.policy == system.ResetUpcoming && !produced && s.Stats().OutOfRangeResets == 1 {
					produceN(t, cl, topic, 0, 3, "x") // offsets 30-32: the only ones read after the reset
					produced = true
				}
				ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
				envs, err := c.Poll(ctx)
				cancel()
				seen = append(seen, envs...)
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					pollErr = err
					break
				}
			}
			// Offsets run 0, 1, ... up to what was buffered, then jump.
			before := 0
			for before < len(seen) && seen[before].Offset == itoa(before) && before < 25 {
				before++
			}
			if tt.policy == system.ResetFail {
				if pollErr == nil || before != len(seen) {
					t.Fatalf("Poll = %v after offsets %v; want an error and no jump", pollErr, offsets(seen))
				}
				contains(t, pollErr.Error(), "kafka.my.events#0", "offset "+itoa(before), "out of range", "auto.offset.reset")
				if _, again := c.Poll(t.Context()); again == nil || again.Error() != pollErr.Error() {
					t.Errorf("second Poll = %v, want the same error", again)
				}
				if st := s.Stats(); st.OutOfRangeResets != 0 {
					t.Errorf("Stats = %+v", st)
				}
				return
			}
			if pollErr != nil {
				t.Fatalf("Poll: %v", pollErr)
			}
			after := seen[before:]
			for i, e := range after {
				if e.Offset != itoa(int(target)+i) {
					t.Fatalf("offsets %v: want %d.. after %d", offsets(seen), target, before-1)
				}
			}
			skipped := target - int64(before)
			st := s.Stats()
			if st.OutOfRangeResets != 1 || st.MessagesSkipped != skipped {
				t.Errorf("Stats = %+v, want 1 reset skipping %d", st, skipped)
			}
			contains(t, logs.String(), "level=WARN", "ssp=kafka.my.events#0", "old_offset="+itoa(before),
				"new_offset="+itoa(int(target)), "skipped="+itoa(int(skipped)))
		})
	}
}

func offsets(envs []system.IncomingEnvelope) []string {
	var s []string
	for _, e := range envs {
		s = append(s, e.Offset)
	}
	return s
}

func TestConsumerCloseUnblocksPoll(t *testing.T) {
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
	done := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Poll after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not return after Close")
	}
}

func TestDecimalLen(t *testing.T) {
	for _, n := range []int64{0, 1, 9, 10, 11, 99, 100, 999, 1000, 123456789, 999999999999999999, 1000000000000000000, 9223372036854775807} {
		if got, want := decimalLen(n), len(itoa(int(n))); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", n, got, want)
		}
	}
	for n := int64(1); n < 1e18; n *= 10 {
		for _, m := range []int64{n - 1, n, n + 1} {
			if got, want := decimalLen(m), len(formatOffset(m)); got != want {
				t.Errorf("decimalLen(%d) = %d, want %d", m, got, want)
			}
		}
	}
}

func TestConsumerPauseAndResume(t *testing.T) {
	// Small fetches, so that partition 0 is paused half-way through its backlog.
	_, seeds := cluster(t, kfake.SeedTopics(2, "events"))
	s, _ := startSystem(t, seeds, map[string]string{"systems.kafka.consumer.max.partition.fetch.bytes": "1000"})
	cl, _ := rawClient(t, seeds)
	for range 40 { // 40 batches of 50 per partition
		for p := range int32(2) {
			produceN(t, cl, "events", p, 50, "e"+itoa(int(p)))
		}
	}
	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p0, p1 := system.NewSSP("kafka", "events", 0), system.NewSSP("kafka", "events", 1)
	for _, ssp := range []system.SystemStreamPartition{p0, p1} {
		if err := c.Register(ssp, "0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	next := map[system.SystemStreamPartition]int{}
	check := func(envs []system.IncomingEnvelope) {
		t.Helper()
		for _, e := range envs {
			if e.Offset != itoa(next[e.SSP]) {
				t.Fatalf("%s: offset %s, want %d (no skips, no repeats)", e.SSP, e.Offset, next[e.SSP])
			}
			next[e.SSP]++
		}
	}
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	for next[p0] == 0 {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check(envs)
	}
	c.(system.Pauser).Pause(p0)
	atPause := next[p0]
	for next[p1] < 2000 {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll with partition 0 paused, partition 1 at %d of 2000: %v", next[p1], err)
		}
		check(envs)
	}
	if next[p0] >= 2000 {
		t.Fatalf("partition 0 was read to its end (%d) while paused", next[p0])
	}
	// Nothing more of the paused partition arrives, even when there is more of it.
	produceN(t, cl, "events", 0, 50, "late")
	idle, cancelIdle := contextWithTimeout(t, 500*time.Millisecond)
	envs, err := c.Poll(idle)
	cancelIdle()
	if len(envs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Poll while paused = %d envelopes, %v; want none", len(envs), err)
	}
	t.Logf("partition 0 paused at %d; read %d of 2050 before Resume", atPause, next[p0])
	c.(system.Pauser).Resume(p0)
	for next[p0] < 2050 {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll after Resume, partition 0 at %d of 2050: %v", next[p0], err)
		}
		check(envs)
	}
}

// TestConsumerRemoveDropsRecordsTakenBefore removes a partition after Poll has taken a
// fetch holding its records and before it converts them (what happens when
// RemovePartitions runs on another goroutine at that moment): Poll drops them, and
// the other partition's records of the same fetch are returned.
func TestConsumerRemoveDropsRecordsTakenBefore(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(2, "events"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	for p := range int32(2) {
		produceN(t, cl, "events", p, 500, "e"+itoa(int(p)))
	}
	c := newConsumer(s)
	s.mu.Lock()
	s.opened[c] = struct{}{}
	s.mu.Unlock()
	defer c.Close()
	p0, p1 := system.NewSSP("kafka", "events", 0), system.NewSSP("kafka", "events", 1)
	for _, ssp := range []system.SystemStreamPartition{p0, p1} {
		if err := c.Register(ssp, "0"); err != nil {
			t.Fatal(err)
		}
	}
	dropped := 0
	c.afterFetch = func(fs kgo.Fetches) {
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Partition == 0 && len(p.Records) > 0 && dropped == 0 {
				dropped = len(p.Records)
				if err := c.RemovePartitions(p0); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	next := 0
	for next < 500 {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll with partition 1 at %d of 500: %v", next, err)
		}
		for _, e := range envs {
			if e.SSP != p1 {
				t.Fatalf("Poll returned %s offset %s, removed before Poll converted the fetch holding it", e.SSP, e.Offset)
			}
			if e.Offset != itoa(next) {
				t.Fatalf("%s: offset %s, want %d", e.SSP, e.Offset, next)
			}
			next++
		}
	}
	if dropped == 0 {
		t.Fatal("no fetch held records of partition 0")
	}
	t.Logf("dropped %d records of partition 0 taken before its removal", dropped)
	c.afterFetch = nil
	// Added again, it is read from where it is added.
	if err := c.AddPartitions(map[system.SystemStreamPartition]string{p0: "7"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	envs := pollUntil(t, c, 493)
	t.Logf("re-add took %v", time.Since(t0))
	for i, e := range envs {
		if e.SSP != p0 || e.Offset != itoa(7+i) {
			t.Fatalf("after adding %s at 7: envelope %d is %s offset %s", p0, i, e.SSP, e.Offset)
		}
	}
}

func TestConsumerAddRemoveValidation(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(2, "events"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	produceN(t, cl, "events", 0, 5, "e0")
	produceN(t, cl, "events", 1, 5, "e1")
	c, err := s.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	pc := c.(system.PartitionChanger)
	p0, p1 := system.NewSSP("kafka", "events", 0), system.NewSSP("kafka", "events", 1)
	for _, tt := range []struct {
		offsets map[system.SystemStreamPartition]string
		says    string
	}{
		{map[system.SystemStreamPartition]string{system.NewSSP("other", "events", 0): "0"}, "another system"},
		{map[system.SystemStreamPartition]string{system.NewSSP("kafka", "events", -1): "0"}, "negative partition"},
		{map[system.SystemStreamPartition]string{p0: "007"}, `"007"`},
	} {
		if err := pc.AddPartitions(tt.offsets); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("AddPartitions(%v) = %v; want an error saying %s", tt.offsets, err, tt.says)
		}
	}
	// Before Start: added, registered, one removed again; only p1 is read.
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p0: "0"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(p1, "2"); err != nil {
		t.Fatal(err)
	}
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p1: "0"}); err == nil || !strings.Contains(err.Error(), "read already") {
		t.Errorf("AddPartitions of a registered partition = %v", err)
	}
	if err := pc.RemovePartitions(p0, system.NewSSP("kafka", "nope", 3)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	envs := pollUntil(t, c, 3)
	for i, e := range envs {
		if e.SSP != p1 || e.Offset != itoa(2+i) {
			t.Fatalf("envelope %d: %s offset %s; want %s from offset 2", i, e.SSP, e.Offset, p1)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p0: "0"}); err == nil {
		t.Error("AddPartitions after Close succeeded")
	}
	if err := pc.RemovePartitions(p1); err != nil {
		t.Errorf("RemovePartitions after Close = %v", err)
	}
}
