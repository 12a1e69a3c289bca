// Command custom-system is a program of its own built on Sluice: it plugs a message
// system of its own (the "lines" system: a stream is a directory of text files, one
// per partition, and a message is a line) and a task of its own ("upper") into the
// sluice commands with cli.Main's options, so that `run`, `checkpoint-tool` and the
// others work with them as with the built-in ones:
//
//	go run ./examples/custom-system run --config-path=examples/custom-system/shout.properties --exit-when-caught-up
//	go run ./examples/custom-system checkpoint-tool --config-path=examples/custom-system/shout.properties
//
// See "Plugging in your own system" in the README.
package main

import (
	"bytes"
	"context"
	"io"
	"os"

	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: the sluice commands, knowing the lines system (also by a
// Samza-style class name) and the upper task besides the built-in ones.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Main(ctx, args, stdout, stderr,
		cli.WithSystem("lines", newLinesSystem, "com.example.samza.LinesSystemFactory"),
		cli.WithTasks(map[string]task.Definition{"upper": upperTask}),
	)
}

// keyUpperOutput names the upper task's output stream, as system.stream.
const keyUpperOutput = "task.upper.output"

// upperTask sends every message, upper-cased, to the same partition of its output.
var upperTask = task.Definition{
	New: func(_ string, cfg config.Config) (task.StreamTask, error) {
		out, err := upperOutput(cfg)
		if err != nil {
			return nil, err
		}
		return upper{out}, nil
	},
	Keys: []string{keyUpperOutput},
	// Declared outputs are checked at start: a missing one stops the job before it
	// reads anything.
	Outputs: func(cfg config.Config) ([]system.SystemStream, error) {
		out, err := upperOutput(cfg)
		return []system.SystemStream{out}, err
	},
}

func upperOutput(cfg config.Config) (system.SystemStream, error) {
	v := cfg.GetOr(keyUpperOutput, "")
	ss, err := system.ParseSystemStream(v)
	if err != nil {
		return ss, &config.Error{Key: keyUpperOutput, Value: v, Msg: "is required: the output stream, as system.stream"}
	}
	return ss, nil
}

type upper struct{ out system.SystemStream }

func (u upper) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	return out.Send(ctx, system.OutgoingEnvelope{
		Stream:    u.out,
		Partition: env.SSP.Partition,
		Message:   bytes.ToUpper(env.Message),
	})
}
