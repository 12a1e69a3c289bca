package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

// TestTaskTransactionCommitIsBoundedWhenProducesFail: every produce is answered with a
// retriable error; Commit with a context that is never done (the container's periodic
// commit) must still fail within about delivery.timeout.ms.
func TestTaskTransactionCommitIsBoundedWhenProducesFail(t *testing.T) {
	c, seeds := cluster(t, kfake.SeedTopics(1, "out"))
	m, _ := startManager(t, seeds, "stuck", map[string]string{"systems.kafka.producer.delivery.timeout.ms": "1000"})
	if err := m.sys.Start(t.Context()); err != nil { // as the container does
		t.Fatal(err)
	}
	ctx := t.Context()
	tx, err := m.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return produceErrorResponse(req, kerr.NotEnoughReplicas), nil, true
	})
	if err := tx.Send(context.Background(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Message: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- tx.Commit(context.Background(), checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 0): "1"}))
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Commit succeeded while every produce failed")
		}
		t.Logf("Commit failed as it should: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Commit still blocked 15 s after the sends, with delivery.timeout.ms=1000: the checkpoint record is unbounded")
	}
}
