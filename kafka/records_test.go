package kafka

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// TestRecordsKeepHeadersAndTimestamps: what a consumer reads carries the record's
// headers and timestamp, and what a producer sends carries the envelope's, so a task
// that forwards an envelope keeps the record whole.
func TestRecordsKeepHeadersAndTimestamps(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"), kfake.SeedTopics(1, "out"))
	s, _ := startSystem(t, seeds, map[string]string{"systems.kafka.producer.linger.ms": "0"})
	cl, _ := rawClient(t, seeds)
	ctx := t.Context()
	ts := time.UnixMilli(1_700_000_000_123)
	in := []*kgo.Record{
		{Topic: "in", Value: []byte("plain"), Timestamp: ts},
		{Topic: "in", Value: []byte("with"), Timestamp: ts.Add(time.Second), Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "empty"}}},
		{Topic: "in", Value: []byte("one"), Timestamp: ts.Add(2 * time.Second), Headers: []kgo.RecordHeader{{Key: "b", Value: []byte("x")}}},
	}
	if err := cl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons, _ := s.NewConsumer()
	defer cons.Close()
	if err := cons.Register(system.NewSSP("kafka", "in", 0), "0"); err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(ctx); err != nil {
		t.Fatal(err)
	}
	envs := pollUntil(t, cons, 3)
	p, _ := s.NewProducer()
	defer p.Close()
	for i, env := range envs {
		if !env.Timestamp.Equal(in[i].Timestamp) {
			t.Errorf("message %d: timestamp %v, want %v", i, env.Timestamp, in[i].Timestamp)
		}
		if !sameHeaders(env.Headers, in[i].Headers) {
			t.Errorf("message %d: headers %v, want %v", i, env.Headers, in[i].Headers)
		}
		out := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Key: env.Key, Message: env.Message, Headers: env.Headers, Timestamp: env.Timestamp}
		if err := p.Send(ctx, out); err != nil {
			t.Fatal(err)
		}
	}
	// A zero timestamp is stamped with the send time.
	before := time.Now().Add(-time.Second)
	if err := p.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Message: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rd, _ := rawClient(t, seeds, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < 4 {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	for i, r := range got[:3] {
		if !bytes.Equal(r.Value, in[i].Value) || !r.Timestamp.Equal(in[i].Timestamp) || !slices.EqualFunc(r.Headers, in[i].Headers, sameHeader) {
			t.Errorf("output %d = %q %v %v, want %q %v %v", i, r.Value, r.Timestamp, r.Headers, in[i].Value, in[i].Timestamp, in[i].Headers)
		}
	}
	if now := got[3].Timestamp; now.Before(before) || now.After(time.Now().Add(time.Second)) {
		t.Errorf("a message sent with no timestamp got %v, want about now", now)
	}
}

func sameHeader(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }

func sameHeaders(got []system.Header, want []kgo.RecordHeader) bool {
	return slices.EqualFunc(got, want, func(g system.Header, w kgo.RecordHeader) bool {
		return g.Key == w.Key && bytes.Equal(g.Value, w.Value)
	})
}

// TestDeliveryFailuresAreNotifiedAndExplained: a message that can never be delivered is
// reported to the NotifyFailure callback as it fails, with an error that says what to
// change instead of the client's internals, and Flush keeps returning it.
func TestDeliveryFailuresAreNotifiedAndExplained(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(2, "out"))
	for _, tc := range []struct {
		name string
		env  system.OutgoingEnvelope
		keys map[string]string
		want []string
	}{
		{
			name: "partition beyond the topic",
			env:  system.OutgoingEnvelope{Partition: 3, Message: []byte("x")},
			want: []string{"partition 3 of topic \"out\", which has 2 partitions (0..1)"},
		},
		{
			name: "message too large",
			env:  system.OutgoingEnvelope{Message: bytes.Repeat([]byte("x"), 4096)},
			keys: map[string]string{"systems.kafka.producer.max.request.size": "2048"},
			want: []string{"a message of 4096 bytes", "systems.kafka.producer.max.request.size", "2048 bytes"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := map[string]string{"systems.kafka.producer.linger.ms": "0"}
			for k, v := range tc.keys {
				keys[k] = v
			}
			s, _ := startSystem(t, seeds, keys)
			p, _ := s.NewProducer()
			defer p.Close()
			notified := make(chan error, 2)
			p.(system.FailureNotifier).NotifyFailure(func(err error) { notified <- err })
			env := tc.env
			env.Stream = system.SystemStream{System: "kafka", Stream: "out"}
			if err := p.Send(t.Context(), env); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-notified:
			case <-time.After(10 * time.Second):
				t.Fatal("no failure was notified")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("notified error %q does not say %q", err, w)
				}
			}
			if ferr := p.Flush(t.Context()); !errors.Is(ferr, err) && (ferr == nil || ferr.Error() != err.Error()) {
				t.Errorf("Flush = %v, want the notified failure %v", ferr, err)
			}
			// A callback registered after the failure hears of it at once.
			late := make(chan error, 1)
			p.(system.FailureNotifier).NotifyFailure(func(err error) { late <- err })
			select {
			case <-late:
			default:
				t.Error("a callback registered after the failure was not called")
			}
		})
	}
}

// TestRecycledEnvelopeSlicesCarryNewMessages: a slice handed back with Recycle is
// cleared and may come back from a later Poll, holding that Poll's messages; copies of
// envelopes taken before are unaffected.
func TestRecycledEnvelopeSlicesCarryNewMessages(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	s, _ := startSystem(t, seeds, nil)
	cl, _ := rawClient(t, seeds)
	produceN(t, cl, "in", 0, 50, "a")
	cons, _ := s.NewConsumer()
	defer cons.Close()
	if err := cons.Register(system.NewSSP("kafka", "in", 0), "0"); err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := pollUntil(t, cons, 50)
	kept := first[49] // a copy, as a task gets
	cons.(system.Recycler).Recycle(first)
	produceN(t, cl, "in", 0, 50, "b")
	second := pollUntil(t, cons, 50)
	for i, env := range second {
		if want := "b-" + itoa(i); string(env.Message) != want || env.Offset != itoa(50+i) {
			t.Fatalf("after a recycle, message %d = %q at %s, want %q at %d", i, env.Message, env.Offset, want, 50+i)
		}
	}
	if string(kept.Message) != "a-49" || kept.Offset != "49" {
		t.Errorf("a copy taken before the recycle changed: %q at %s", kept.Message, kept.Offset)
	}
}
