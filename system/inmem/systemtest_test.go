package inmem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/system/systemtest"
)

// backend is the systemtest.Backend of a Store.
type backend struct{ s *inmem.Store }

func (b backend) CreateStream(_ context.Context, stream string, n int) error {
	return b.s.CreateStream(stream, n)
}

func (b backend) Append(_ context.Context, stream string, p int32, msgs ...systemtest.Message) ([]string, error) {
	var offs []string
	for _, m := range msgs {
		off, err := b.s.AppendMessage(stream, p, inmem.Message{Key: m.Key, Value: m.Value, Headers: m.Headers, Time: m.Timestamp})
		if err != nil {
			return nil, err
		}
		offs = append(offs, off)
	}
	return offs, nil
}

func (b backend) Read(ctx context.Context, stream string, p int32) ([]systemtest.Message, error) {
	ms, oldest, err := b.s.Retained(stream, p)
	if err != nil {
		return nil, err
	}
	out := make([]systemtest.Message, len(ms))
	for i, m := range ms {
		out[i] = systemtest.Message{Offset: decimal.Format(oldest + int64(i)), Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: m.Time}
	}
	return out, nil
}

func (b backend) DeleteBefore(_ context.Context, stream string, p int32, offset string) error {
	n, err := decimal.Parse(offset)
	if err != nil {
		return err
	}
	return b.s.Truncate(stream, p, n)
}

func (b backend) Grow(_ context.Context, stream string, n int) error {
	return b.s.AddPartitions(stream, n)
}

func (b backend) FailDeliveries(*testing.T) func() {
	b.s.FailProduce(errors.New("injected delivery failure"))
	return func() { b.s.FailProduce(nil) }
}

func TestConformance(t *testing.T) {
	systemtest.Run(t, systemtest.Harness{
		Name: "mem",
		Open: func(t *testing.T, keys map[string]string) (system.System, systemtest.Backend) {
			s := inmem.NewStore()
			sys, err := s.Factory()("mem", config.New(keys), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := sys.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			return sys, backend{s}
		},
	})
}
