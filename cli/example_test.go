package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

type drop struct{}

func (drop) Process(context.Context, system.IncomingEnvelope, task.Collector, task.Coordinator) error {
	return nil
}

// A user's program adds its own task to the built-in ones and gets every sluice
// command. Here the job's configuration names a system nobody configured, so `run`
// reports the problem and exits 2 without running anything.
func ExampleMain() {
	tasks := builtin.Tasks()
	tasks["drop"] = task.Definition{New: func(string, config.Config) (task.StreamTask, error) { return drop{}, nil }}

	path := filepath.Join(os.TempDir(), "sluice-example-job.properties")
	os.WriteFile(path, []byte("job.name=example\ntask.class=drop\ntask.inputs=kafka.events\n"), 0o644)
	defer os.Remove(path)

	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "--config-path=" + path}, tasks, &stdout, &stderr)
	fmt.Println("exit code", code)
	fmt.Printf("%s\n", bytes.SplitN(stderr.Bytes(), []byte("\n"), 3)[1])
	// Output:
	// exit code 2
	//   task.inputs=kafka.events: input kafka.events names system "kafka", which has no systems.kafka.samza.factory
}
