package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

// broker starts a throwaway one-broker kfake cluster on loopback (in tests, use
// kafkatest.NewCluster).
func broker(topics ...string) (*kfake.Cluster, error) {
	return kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(2, topics...),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }),
	)
}

// Example sends a message with a task's producer and reads it back with a consumer.
func Example() {
	c, err := broker("PageViewEvent")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	cfg := config.New(map[string]string{
		"systems.kafka.samza.factory":              "kafka",
		"systems.kafka.consumer.bootstrap.servers": strings.Join(c.ListenAddrs(), ","),
	})
	sys, err := kafka.New("kafka", cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Close()
	ctx := context.Background()
	if err := sys.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	p, _ := sys.NewProducer()
	stream := system.SystemStream{System: "kafka", Stream: "PageViewEvent"}
	_ = p.Send(ctx, system.OutgoingEnvelope{Stream: stream, Partition: 1, Key: []byte("user-7"), Message: []byte(`{"page":"/home"}`)})
	fmt.Println("flush:", p.Flush(ctx))

	md, _ := sys.Admin().Partitions(ctx, "PageViewEvent")
	fmt.Printf("partition 1: %+v\n", md[system.NewSSP("kafka", "PageViewEvent", 1)])

	cons, _ := sys.NewConsumer()
	defer cons.Close()
	_ = cons.Register(system.NewSSP("kafka", "PageViewEvent", 1), "0")
	_ = cons.Start(ctx)
	envs, err := cons.Poll(ctx)
	fmt.Println(len(envs), err)
	fmt.Printf("%s offset %s: %s\n", envs[0].SSP, envs[0].Offset, envs[0].Message)
	// Output:
	// flush: <nil>
	// partition 1: {Oldest:0 Newest:0 Upcoming:1}
	// 1 <nil>
	// kafka.PageViewEvent#1 offset 0: {"page":"/home"}
}

// ExampleNew shows configuration problems reported all at once, each naming its key.
func ExampleNew() {
	_, err := kafka.New("kafka", config.New(map[string]string{
		"systems.kafka.consumer.bootstrap.servers": "broker-1:9092",
		"systems.kafka.consumer.group.id":          "my-group",
		"systems.kafka.producer.acks":              "1",
	}), nil)
	fmt.Println(config.IsConfigError(err))
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Println(line[:strings.Index(line, ":")])
	}
	// Output:
	// true
	// systems.kafka.consumer.group.id=my-group
	// systems.kafka.producer.acks=1
}

// ExampleNewCheckpointManager writes a task's checkpoint to the checkpoint topic and
// reads it back with a second manager, as the next container start would.
func ExampleNewCheckpointManager() {
	c, err := broker()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	cfg := config.New(map[string]string{
		"job.name": "page-view-counter",
		"systems.kafka.producer.bootstrap.servers": strings.Join(c.ListenAddrs(), ","),
	})
	sys, err := kafka.New("kafka", cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	open := func() (*kafka.CheckpointManager, error) {
		m, err := kafka.NewCheckpointManager(sys, cfg, nil)
		if err != nil {
			return nil, err
		}
		return m, m.Start(ctx)
	}

	m, err := open()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("topic:", m.Topic())
	ssp := system.NewSSP("kafka", "PageViewEvent", 0)
	err = m.Write(ctx, "Partition 0", checkpoint.New(map[system.SystemStreamPartition]string{ssp: "1234"}))
	fmt.Println("write:", err, m.Close())

	if m, err = open(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	cp, err := m.Read(ctx, "Partition 0")
	fmt.Println("read:", cp.Offsets[ssp], err)
	_, err = m.Read(ctx, "Partition 1")
	fmt.Println("never written:", errors.Is(err, checkpoint.ErrNoCheckpoint))
	// Output:
	// topic: __samza_checkpoint_page-view-counter_1
	// write: <nil> <nil>
	// read: 1234 <nil>
	// never written: true
}
