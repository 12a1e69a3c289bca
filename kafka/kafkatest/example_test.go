package kafkatest_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/kafka/kafkatest"
)

// ExampleNewCluster shows a test body: start a cluster with a seeded topic, produce a
// record over TCP and read it back. The cluster closes when the test ends.
func ExampleNewCluster() {
	var t testing.TB // in a test: the test's *testing.T

	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "greetings"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.Seeds(c)), kgo.ConsumeTopics("greetings"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "greetings", Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetches := cl.PollFetches(ctx)
	fetches.EachRecord(func(r *kgo.Record) { t.Logf("%s at offset %d", r.Value, r.Offset) })
}

func TestNewCluster(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "greetings"))
	if got := c.ListenAddrs(); len(got) != 1 {
		t.Fatalf("ListenAddrs = %v, want one broker", got)
	}
	seeds := kafkatest.Seeds(c)
	if len(seeds) < len("127.0.0.1:1") || seeds[:10] != "127.0.0.1:" {
		t.Fatalf("Seeds = %q, want 127.0.0.1:<port>", seeds)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.ConsumeTopics("greetings"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := t.Context()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "greetings", Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if rs := fetches.Records(); len(rs) != 1 || string(rs[0].Value) != "hello" || rs[0].Offset != 0 {
		t.Fatalf("records = %v, want hello at offset 0", rs)
	}
}
