package inmem_test

import (
	"context"
	"fmt"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

func Example() {
	store := inmem.NewStore()
	store.CreateStream("events", 1)
	store.Append("events", 0, []byte("k"), []byte("first"))
	store.Append("events", 0, []byte("k"), []byte("second"))

	sys, _ := store.Factory()("mem", config.Config{}, nil)
	md, _ := sys.Admin().Partitions(context.Background(), "events")
	fmt.Printf("%+v\n", md[system.NewSSP("mem", "events", 0)])

	cons, _ := sys.NewConsumer()
	cons.Register(system.NewSSP("mem", "events", 0), "1")
	cons.Start(context.Background())
	envs, _ := cons.Poll(context.Background())
	fmt.Println(envs[0].Offset, string(envs[0].Message))
	// Output:
	// {Oldest:0 Newest:1 Upcoming:2}
	// 1 second
}
