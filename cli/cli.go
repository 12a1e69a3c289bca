// Package cli is the sluice command line as a library: Main runs the sluice commands
// (run, checkpoint-tool, broker, quickstart, topic, version), so a user's own program
// gets the same commands for its own tasks, systems and checkpoint managers, next to
// the built-in ones:
//
//	func main() {
//		os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr,
//			cli.WithTasks(map[string]task.Definition{"my-task": {New: newMyTask}}),
//			cli.WithSystem("nats", newNATSSystem, "com.example.samza.NatsSystemFactory"),
//		))
//	}
//
// `run` runs a job with them; `checkpoint-tool` reads and rewrites the checkpoints of
// such a job (it needs the job's systems and checkpoint manager, not its task).
// examples/custom-system is a complete program with a system of its own.
//
// Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

const usage = `usage: sluice <command> [flags]

commands:
  run              run a job's container:  sluice run --config-path=PATH [--container-id=N] [--exit-when-caught-up] [--strict]
                   [--http-listen=127.0.0.1:9464] [--log-format=text|json] [--log-level=info]
  checkpoint-tool  print or rewrite a job's checkpoints:  sluice checkpoint-tool --config-path=PATH
                   [--new-offsets=PATH [--replace] | --reset-to=oldest|upcoming|TIME [--streams=S,...]] [--dry-run] [--force] [--strict]
  status           is the job running, how far behind is each task, when did it checkpoint:  sluice status --config-path=PATH [--json]
  broker           serve an embedded Kafka-protocol broker for development:  sluice broker --listen=127.0.0.1:9092 --data-dir=DIR
  quickstart       run the example page-view job on an embedded broker, with nothing installed:  sluice quickstart [--keep-broker]
  topic            create, fill, read and list topics:  sluice topic create|produce|consume|list --topic=T ...
  version          print the version of sluice and of the Go it was built with

Run 'sluice <command> -h' for a command's flags.
`

// Main runs one sluice command and returns its exit code. Commands read nothing but
// args, except `sluice topic produce`, which reads the process's standard input
// unless given --file. opts add the program's own tasks, systems and checkpoint
// managers to the built-in ones (see Option); a problem with them (a name given
// twice, say) is reported before any command runs, with exit code 2.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	reg := newRegistry(opts)
	if err := reg.err(); err != nil {
		fmt.Fprintln(stderr, "sluice: the program's cli options have problems; nothing was run:")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return ExitUsage
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	ctx, stop := stopOnSignal(ctx, stderr)
	defer stop()
	defer startProfiles(stderr)()
	env := &env{reg: reg, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "run":
		return env.run(ctx, args[1:])
	case "checkpoint-tool":
		return env.checkpointTool(ctx, args[1:])
	case "status":
		return env.status(ctx, args[1:])
	case "broker":
		return env.broker(ctx, args[1:])
	case "quickstart":
		return env.quickstart(ctx, args[1:])
	case "topic":
		return env.topic(ctx, args[1:])
	case "version", "-version", "--version":
		return env.version(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

type env struct {
	reg            *registry
	stdin          io.Reader
	stdout, stderr io.Writer
	logFormat      string // --log-format
}

// flags returns a flag set that reports errors to stderr, with a --log-level flag.
func (e *env) flags(name, synopsis string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: sluice %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&e.logFormat, "log-format", "text", "log format: text (key=value) or json (one object a line)")
	return fs, level
}

// parse parses flags; a non-nil exit code means stop with it.
func (e *env) parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, true
		}
		return ExitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sluice %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return ExitUsage, true
	}
	return 0, false
}

func (e *env) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level=%s: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch e.logFormat {
	case "", "text":
		return slog.New(slog.NewTextHandler(e.stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, ho)), nil
	}
	return nil, fmt.Errorf("--log-format=%s: want text or json", e.logFormat)
}

// strictFlag adds --strict to fs.
func strictFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("strict", false, "make every configuration warning (unknown key, unsupported Samza key, key given twice) an error, as job.config.strict=true does")
}

// warn prints the container's configuration warnings, one a line.
func (e *env) warn(warnings []*config.Error) {
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "sluice: warning: %s\n", w)
	}
}

// configErr prints a configuration error, one problem per line, and returns ExitUsage.
func (e *env) configErr(what string, err error) int {
	fmt.Fprintf(e.stderr, "sluice: %s:\n", what)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(e.stderr, "  %s\n", line)
	}
	return ExitUsage
}

func (e *env) run(ctx context.Context, args []string) int {
	fs, level := e.flags("run", "--config-path=PATH [--container-id=N] [--exit-when-caught-up] [--strict]")
	path := fs.String("config-path", "", "the job's .properties file: a path or a file:// URL (required)")
	id := fs.Int("container-id", 0, "this container's index, 0..job.container.count-1; with job.coordinator.factory=kafka optional, a stable id that makes it a static member of the job's group")
	caughtUp := fs.Bool("exit-when-caught-up", false, "stop, with a final commit, once every input partition reached the end offset it had at start")
	strict := strictFlag(fs)
	httpListen := fs.String("http-listen", "", "serve /metrics, /healthz, /readyz and /status at this `address` (such as 127.0.0.1:9464; off unless set, as is "+KeyHTTPListen+")")
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	if *path == "" {
		fmt.Fprintln(e.stderr, "sluice run: --config-path is required")
		fs.Usage()
		return ExitUsage
	}
	log, err := e.logger(*level)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice run:", err)
		return ExitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return e.configErr("cannot load the configuration", err)
	}
	opts := e.reg.containerOptions(log, *strict)
	opts.ContainerID, opts.ExitWhenCaughtUp = *id, *caughtUp
	fs.Visit(func(f *flag.Flag) { opts.ContainerIDSet = opts.ContainerIDSet || f.Name == "container-id" })
	ep, epErr := newEndpoint(cfg, *httpListen)
	if ep != nil {
		ep.instrument(&opts, e.reg.kafkaReplaced)
	}
	c, err := container.New(cfg, opts)
	if err := errors.Join(err, epErr); err != nil {
		return e.configErr("the configuration in "+*path+" has problems; nothing was run", err)
	}
	e.warn(c.Warnings())
	if ep != nil {
		stop, err := ep.serve(ctx, c, containerLabel(opts, c.Job().Coordinator == job.KafkaCoordinator), log)
		if err != nil {
			fmt.Fprintln(e.stderr, "sluice run:", err)
			return ExitFailure // the address is taken or cannot be bound: not the file's fault
		}
		defer stop()
	}
	if err := c.Run(ctx); err != nil {
		log.Error("job failed", "error", err)
		return ExitFailure
	}
	return ExitOK
}
