package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// Benchmarks comparing this package with plain franz-go against the same kfake
// broker. They are not run by go test without -bench; compare the Raw and Sluice
// variants of each, e.g.
//
//	go test ./kafka -run '^$' -bench 'Consume|Produce' -benchtime 3x
//	go test ./kafka -run '^$' -bench CheckpointStart -benchtime 1x
//
// (ns/op is per message, or per checkpoint record read.)

const benchPartitions = 4

func benchTopic(b *testing.B, n int) string {
	b.Helper()
	_, seeds := cluster(b, kfake.SeedTopics(benchPartitions, "bench"))
	cl, _ := rawClient(b, seeds, kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<20))
	value := []byte(strings.Repeat("v", 100))
	rs := make([]*kgo.Record, 0, n)
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: "bench", Partition: int32(i % benchPartitions), Value: value})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return seeds
}

func BenchmarkConsumeRaw(b *testing.B) {
	const n = 200_000
	seeds := benchTopic(b, n)
	b.ResetTimer()
	for range b.N {
		cl, _ := rawClient(b, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"bench": allAtStart()}))
		got := 0
		for got < n {
			fs := cl.PollFetches(context.Background())
			fs.EachRecord(func(r *kgo.Record) { got++ })
		}
		cl.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

func BenchmarkConsumeSluice(b *testing.B) {
	const n = 200_000
	seeds := benchTopic(b, n)
	s, _ := startSystem(b, seeds, nil)
	b.ResetTimer()
	for range b.N {
		c, _ := s.NewConsumer()
		for p := range int32(benchPartitions) {
			if err := c.Register(system.NewSSP("kafka", "bench", p), "0"); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < n {
			envs, err := c.Poll(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			got += len(envs)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

func allAtStart() map[int32]kgo.Offset {
	m := map[int32]kgo.Offset{}
	for p := range int32(benchPartitions) {
		m[p] = kgo.NewOffset().AtStart()
	}
	return m
}

const produceBatch = 10_000

func BenchmarkProduceRaw(b *testing.B) {
	_, seeds := cluster(b, kfake.SeedTopics(benchPartitions, "bench"))
	cl, _ := rawClient(b, seeds, kgo.RequiredAcks(kgo.AllISRAcks()))
	value := []byte(strings.Repeat("v", 100))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for i := range produceBatch {
			cl.Produce(ctx, &kgo.Record{Topic: "bench", Partition: int32(i % benchPartitions), Value: value}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*produceBatch), "ns/msg")
}

func BenchmarkProduceSluice(b *testing.B) {
	_, seeds := cluster(b, kfake.SeedTopics(benchPartitions, "bench"))
	s, _ := startSystem(b, seeds, nil)
	p, _ := s.NewProducer()
	value := []byte(strings.Repeat("v", 100))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for i := range produceBatch {
			env := system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "bench"}, Partition: int32(i % benchPartitions), Message: value}
			if err := p.Send(ctx, env); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*produceBatch), "ns/msg")
}

// checkpointTopic fills a checkpoint topic with n records over 1,000 tasks.
func checkpointTopic(b *testing.B, n int) (seeds, topic string) {
	b.Helper()
	_, seeds = cluster(b)
	m, _ := startManager(b, seeds, "bench", nil)
	m.Close()
	values := make([][]byte, 1000)
	for i := range values {
		task := fmt.Sprintf("Partition %d", i)
		values[i] = encode(b, task, cp(sspA, "123456", sspB, "654321"), "1700000000000-1")
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		task := fmt.Sprintf("Partition %d", i%1000)
		recs[i] = &kgo.Record{Key: []byte(task), Value: values[i%1000]}
	}
	rawWrite(b, seeds, m.Topic(), recs...)
	return seeds, m.Topic()
}

const checkpointRecords = 1_000_000

func BenchmarkCheckpointStartRaw(b *testing.B) {
	seeds, topic := checkpointTopic(b, checkpointRecords)
	b.ResetTimer()
	for range b.N {
		cl, _ := rawClient(b, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		got := 0
		for got < checkpointRecords {
			got += cl.PollFetches(context.Background()).NumRecords()
		}
		cl.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*checkpointRecords), "ns/record")
}

func BenchmarkCheckpointStartSluice(b *testing.B) {
	seeds, _ := checkpointTopic(b, checkpointRecords)
	b.ResetTimer()
	for range b.N {
		m, _ := startManager(b, seeds, "bench", nil)
		if _, err := m.Read(context.Background(), "Partition 999"); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*checkpointRecords), "ns/record")
}
func BenchmarkEnvelopes(b *testing.B) {
	s := &System{name: "kafka"}
	c := newConsumer(s)
	var fs kgo.Fetches
	ft := kgo.FetchTopic{Topic: "bench"}
	for p := range int32(4) {
		fp := kgo.FetchPartition{Partition: p}
		for i := range 2000 {
			fp.Records = append(fp.Records, &kgo.Record{Topic: "bench", Partition: p, Offset: int64(1_000_000 + i), Value: make([]byte, 100), Timestamp: time.Now()})
		}
		ft.Partitions = append(ft.Partitions, fp)
	}
	fs = append(fs, kgo.Fetch{Topics: []kgo.FetchTopic{ft}})
	b.ResetTimer()
	for range b.N {
		_ = c.envelopes(fs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8000), "ns/msg")
}
