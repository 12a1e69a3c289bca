package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

type drop struct{}

func (drop) Process(context.Context, system.IncomingEnvelope, task.Collector, task.Coordinator) error {
	return nil
}

// A user's program adds its own task, and a system of its own (here an in-memory one
// standing in for a NATS or Kinesis system, accepted under a Samza class name too),
// to the built-in ones and gets every sluice command for them. Here the job's
// configuration names a system nobody configured, so `run` reports the problem and
// exits 2 without running anything.
func ExampleMain() {
	path := filepath.Join(os.TempDir(), "sluice-example-job.properties")
	os.WriteFile(path, []byte("job.name=example\ntask.class=drop\ntask.inputs=kafka.events\n"+
		"systems.mine.samza.factory=com.example.samza.MySystemFactory\n"), 0o644)
	defer os.Remove(path)

	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "--config-path=" + path}, &stdout, &stderr,
		cli.WithTasks(map[string]task.Definition{
			"drop": {New: func(string, config.Config) (task.StreamTask, error) { return drop{}, nil }},
		}),
		cli.WithSystem("mine", inmem.NewStore().Factory(), "com.example.samza.MySystemFactory"),
	)
	fmt.Println("exit code", code)
	fmt.Printf("%s\n", bytes.SplitN(stderr.Bytes(), []byte("\n"), 3)[1])
	// Output:
	// exit code 2
	//   task.inputs=kafka.events: input kafka.events names system "kafka", which has no systems.kafka.samza.factory
}
