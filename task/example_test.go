package task_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// counter numbers the messages it reads into the stream "numbered" and asks for a
// checkpoint after every second one. At Init it skips the first message of every
// partition it reads, whatever its checkpoint says.
type counter struct{ n int }

func (c *counter) Init(_ context.Context, tc task.Context) error {
	for _, ssp := range tc.Partitions() {
		if err := tc.SetStartingOffset(ssp, "1"); err != nil {
			return err
		}
	}
	return nil
}

func (c *counter) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, coord task.Coordinator) error {
	c.n++
	if c.n%2 == 0 {
		coord.Commit(task.CurrentTask) // after this call returns
	}
	return out.Send(ctx, system.OutgoingEnvelope{
		Stream:    system.SystemStream{System: "mem", Stream: "numbered"},
		Partition: env.SSP.Partition,
		Message:   fmt.Appendf(nil, "%d:%s", c.n, env.Message),
	})
}

// A task is a StreamTask, optionally with Init, Window and Close; here one runs through
// a container over the in-memory system, as in a unit test of task logic.
func Example() {
	store := inmem.NewStore()
	store.CreateStream("letters", 1)
	store.CreateStream("numbered", 1)
	for _, l := range []string{"a", "b", "c", "d"} {
		store.Append("letters", 0, nil, []byte(l))
	}
	cfg := config.New(map[string]string{
		"job.name":                         "numbering",
		"task.class":                       "counter",
		"task.inputs":                      "mem.letters",
		"systems.mem.samza.factory":        "inmem",
		"systems.mem.samza.offset.default": "oldest",
	})
	c, err := container.New(cfg, container.Options{
		ExitWhenCaughtUp: true,
		Tasks: map[string]task.Definition{
			"counter": {New: func(name string, _ config.Config) (task.StreamTask, error) { return &counter{}, nil }},
		},
		Systems: map[string]system.Factory{"inmem": store.Factory()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	msgs, _ := store.Messages("numbered", 0)
	for _, m := range msgs {
		fmt.Println(string(m.Value))
	}
	fmt.Println("processed " + strconv.FormatInt(c.Stats().Processed, 10))
	// Output:
	// 1:b
	// 2:c
	// 3:d
	// processed 3
}
