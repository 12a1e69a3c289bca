package kafka

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/systemtest"
)

// kafkaBackend is the systemtest.Backend of a kfake cluster, reached over TCP with a
// plain franz-go client.
type kafkaBackend struct {
	c     *kfake.Cluster
	seeds string
	cl    *kgo.Client
	adm   *kadm.Client
}

func (b *kafkaBackend) CreateStream(ctx context.Context, stream string, n int) error {
	resp, err := b.adm.CreateTopic(ctx, int32(n), 1, nil, stream)
	if err != nil {
		return err
	}
	return resp.Err
}

func (b *kafkaBackend) Append(ctx context.Context, stream string, p int32, msgs ...systemtest.Message) ([]string, error) {
	rs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		r := &kgo.Record{Topic: stream, Partition: p, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		rs[i] = r
	}
	if err := b.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return nil, err
	}
	offs := make([]string, len(rs))
	for i, r := range rs {
		offs[i] = formatOffset(r.Offset)
	}
	return offs, nil
}

func (b *kafkaBackend) Read(ctx context.Context, stream string, p int32) ([]systemtest.Message, error) {
	starts, ends, err := listOffsets(ctx, b.adm, stream)
	if err != nil {
		return nil, err
	}
	so, _ := starts.Lookup(stream, p)
	eo, _ := ends.Lookup(stream, p)
	if eo.Offset <= so.Offset {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{stream: {p: kgo.NewOffset().At(so.Offset)}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []systemtest.Message
	for len(out) == 0 || out[len(out)-1].Offset != formatOffset(eo.Offset-1) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			m := systemtest.Message{Offset: formatOffset(r.Offset), Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, system.Header{Key: h.Key, Value: h.Value})
			}
			out = append(out, m)
		})
	}
	return out, nil
}

func (b *kafkaBackend) DeleteBefore(ctx context.Context, stream string, p int32, offset string) error {
	n, err := ParseOffset(offset)
	if err != nil {
		return err
	}
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: stream, Partition: p, At: n})
	resp, err := b.adm.DeleteRecords(ctx, del)
	if err != nil {
		return err
	}
	return resp.Error()
}

func (b *kafkaBackend) Grow(ctx context.Context, stream string, n int) error {
	resp, err := b.adm.UpdatePartitions(ctx, n, stream)
	if err != nil {
		return err
	}
	if err := resp.Error(); err != nil {
		return err
	}
	// A new client, whose first metadata has the new partitions: the old one would
	// refuse to produce to them until its metadata is refreshed.
	cl, err := newBackendClient(b.seeds)
	if err != nil {
		return err
	}
	b.cl.Close()
	b.cl, b.adm = cl, kadm.NewClient(cl)
	return nil
}

func newBackendClient(seeds string) (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// FailDeliveries answers every produce request with a non-retriable error until
// restore. The suite's backend client produces before and after, never during.
func (b *kafkaBackend) FailDeliveries(t *testing.T) func() {
	var off atomic.Bool
	b.c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if off.Load() {
			b.c.DropControl()
			return nil, nil, false
		}
		b.c.KeepControl()
		return produceErrorResponse(req, kerr.InvalidRecord), nil, true
	})
	return func() { off.Store(true) }
}

// produceErrorResponse answers a produce request with err for every partition.
func produceErrorResponse(req kmsg.Request, err *kerr.Error) kmsg.Response {
	pr := req.(*kmsg.ProduceRequest)
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range pr.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = err.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func TestConformance(t *testing.T) {
	systemtest.Run(t, systemtest.Harness{
		Name: "kafka",
		Open: func(t *testing.T, keys map[string]string) (system.System, systemtest.Backend) {
			c, seeds := cluster(t)
			s, _ := startSystem(t, seeds, keys)
			cl, err := newBackendClient(seeds)
			if err != nil {
				t.Fatal(err)
			}
			b := &kafkaBackend{c: c, seeds: seeds, cl: cl, adm: kadm.NewClient(cl)}
			t.Cleanup(func() { b.cl.Close() })
			return s, b
		},
	})
}
