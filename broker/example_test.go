package broker_test

import (
	"context"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/broker"
)

// Example starts a broker on a free port with a data directory, produces a record
// over TCP, and stops the broker; a broker started later on the same directory still
// has the record.
func Example() {
	dir, err := os.MkdirTemp("", "broker-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	b, err := broker.New(broker.Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Start(); err != nil {
		fmt.Println(err)
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		fmt.Println(err)
		return
	}
	err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: "greetings", Value: []byte("hello")}).FirstErr()
	cl.Close()
	fmt.Println("produced:", err)
	fmt.Println("closed:", b.Close())

	// The same directory, another run.
	b2, err := broker.New(broker.Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := b2.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer b2.Close()
	cl, err = kgo.NewClient(kgo.SeedBrokers(b2.Addr()), kgo.ConsumeTopics("greetings"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	cl.PollFetches(context.Background()).EachRecord(func(r *kgo.Record) {
		fmt.Printf("after restart: %s at offset %d\n", r.Value, r.Offset)
	})
	// Output:
	// produced: <nil>
	// closed: <nil>
	// after restart: hello at offset 0
}
