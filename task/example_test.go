package task_test

import (
	"context"
	"fmt"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// counter counts messages and asks for a checkpoint every 1,000 of them.
type counter struct{ n int }

func (c *counter) Process(_ context.Context, _ system.IncomingEnvelope, _ task.Collector, coord task.Coordinator) error {
	c.n++
	if c.n%1000 == 0 {
		coord.Commit(task.CurrentTask)
	}
	return nil
}

func Example() {
	def := task.Definition{New: func(name string, _ config.Config) (task.StreamTask, error) {
		return &counter{}, nil
	}}
	t, _ := def.New("Partition 0", config.Config{})
	fmt.Printf("%T\n", t)
	// Output:
	// *task_test.counter
}
