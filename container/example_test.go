package container_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// upper is a user's task: it upper-cases every message into the stream "shout".
type upper struct{}

func (upper) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	return out.Send(ctx, system.OutgoingEnvelope{
		Stream:    system.SystemStream{System: "mem", Stream: "shout"},
		Partition: env.SSP.Partition,
		Message:   bytes.ToUpper(env.Message),
	})
}

// A task runs through a real container over the in-memory system, as in a unit test.
func Example() {
	store := inmem.NewStore()
	store.CreateStream("words", 2)
	store.CreateStream("shout", 2)
	store.Append("words", 0, nil, []byte("hello"))
	store.Append("words", 1, nil, []byte("world"))

	cfg := config.New(map[string]string{
		"job.name":                         "shouter",
		"task.class":                       "upper",
		"task.inputs":                      "mem.words",
		"systems.mem.samza.factory":        "inmem",
		"systems.mem.samza.offset.default": "oldest",
	})
	c, err := container.New(cfg, container.Options{
		ExitWhenCaughtUp: true,
		Tasks: map[string]task.Definition{
			"upper": {New: func(string, config.Config) (task.StreamTask, error) { return upper{}, nil }},
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
	for p := range int32(2) {
		msgs, _ := store.Messages("shout", p)
		fmt.Printf("partition %d: %s\n", p, msgs[0].Value)
	}
	// Output:
	// partition 0: HELLO
	// partition 1: WORLD
}
