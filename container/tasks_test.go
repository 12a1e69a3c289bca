package container_test

import (
	"context"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

func checkpointOf(s system.SystemStreamPartition, off string) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{s: off}}
}

type initTask struct {
	seen  *seen
	start string
}

func (it *initTask) Init(_ context.Context, tc task.Context) error {
	for _, p := range tc.Partitions() {
		if err := tc.SetStartingOffset(p, it.start); err != nil {
			return err
		}
	}
	return nil
}

func (it *initTask) Process(_ context.Context, env system.IncomingEnvelope, _ task.Collector, _ task.Coordinator) error {
	it.seen.add(string(env.Message))
	return nil
}

// windowTask sends one message per window and shuts down after the third.
type windowTask struct{ n int }

func (w *windowTask) Process(context.Context, system.IncomingEnvelope, task.Collector, task.Coordinator) error {
	return nil
}

func (w *windowTask) Window(ctx context.Context, out task.Collector, coord task.Coordinator) error {
	w.n++
	if err := out.Send(ctx, system.OutgoingEnvelope{Stream: system.SystemStream{System: "mem", Stream: "out"}, Message: []byte("w")}); err != nil {
		return err
	}
	if w.n == 3 {
		coord.Shutdown(task.CurrentTask)
	}
	return nil
}
