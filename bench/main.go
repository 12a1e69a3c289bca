package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes of Main.
const (
	ExitOK         = 0 // every measurement made, every target holds
	ExitFailure    = 1 // a measurement could not be made
	ExitUsage      = 2
	ExitTargetMiss = 3 // every measurement made, some target does not hold
)

// Main is the sluice-bench command. With no hidden mode as its first argument it
// parses the flags, runs the benchmark with the bench binary itself as the helper,
// prints the table on stdout and progress on stderr. The hidden modes are
// `raw-copy`, `read-checkpoints` (the franz-go baselines and the checkpoint read) and
// `sluice` (the sluice command with the bench's extra tasks).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if code, ok := helper(ctx, args, stdout, stderr); ok {
		return code
	}
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sluice-bench [flags]\n\nMeasures Sluice against plain franz-go on the embedded broker; see docs/PERFORMANCE.md.\nThe table goes to stdout, progress to stderr. Exit code 3: a target does not hold.\n\nflags:\n")
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "tiny sizes for a smoke test (the figures mean nothing)")
	d := Defaults()
	messages := fs.Int("messages", d.Messages, "passthrough input messages")
	size := fs.Int("message-bytes", d.MessageBytes, "bytes per message")
	partitions := fs.Int("partitions", d.Partitions, "passthrough input partitions")
	repeats := fs.Int("repeats", d.Repeats, "runs of each variant (alternating; medians reported)")
	cpTasks := fs.Int("checkpoint-tasks", d.CheckpointTasks, "tasks in the checkpoint topic")
	cpRecords := fs.Int("checkpoint-records", d.CheckpointRecords, "records in the checkpoint topic")
	recParts := fs.Int("recovery-partitions", d.RecoveryPartitions, "partitions of the recovery job")
	restarts := fs.Int("recovery-restarts", d.RecoveryRestarts, "SIGKILL restarts timed")
	backlog := fs.Int("memory-backlog", d.MemoryBacklog, "backlog at which the memory run ends")
	memRate := fs.Int("memory-rate", d.MemoryRate, "input messages per second of the memory run")
	e2eMessages := fs.Int("end-to-end-messages", d.EndToEndMessages, "input messages of the end-to-end and group throughput copies")
	latRate := fs.Int("latency-rate", d.LatencyRate, "input messages per second while exactly-once latency is measured")
	groupRate := fs.Int("group-rate", d.GroupRate, "input messages per second of the group scale-out and failover rounds")
	session := fs.Duration("group-session-timeout", d.GroupSessionTimeout, "job.coordinator.session.timeout.ms of the group section")
	only := fs.String("only", "", "comma-separated sections to run: "+strings.Join(Sections(), ","))
	sluiceBin := fs.String("sluice", "", "a built sluice binary (default: go build ./cmd/sluice)")
	compare := fs.String("compare", "", "another sluice binary (e.g. an older build) to run as one more variant, commits every 1s, in the same rounds (throughput and end-to-end)")
	workDir := fs.String("work-dir", "", "directory for the broker's data and process logs (default: a temporary one, removed)")
	profileDir := fs.String("profile-dir", "", "write CPU and allocation profiles of extra, untimed passthrough runs here")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice-bench: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	o := d
	if *quick {
		o = Quick()
	}
	// Flags given explicitly win over -quick.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "messages":
			o.Messages = *messages
		case "message-bytes":
			o.MessageBytes = *size
		case "partitions":
			o.Partitions = *partitions
		case "repeats":
			o.Repeats = *repeats
		case "checkpoint-tasks":
			o.CheckpointTasks = *cpTasks
		case "checkpoint-records":
			o.CheckpointRecords = *cpRecords
		case "recovery-partitions":
			o.RecoveryPartitions = *recParts
		case "recovery-restarts":
			o.RecoveryRestarts = *restarts
		case "memory-backlog":
			o.MemoryBacklog = *backlog
		case "memory-rate":
			o.MemoryRate = *memRate
		case "end-to-end-messages":
			o.EndToEndMessages = *e2eMessages
		case "latency-rate":
			o.LatencyRate = *latRate
		case "group-rate":
			o.GroupRate = *groupRate
		case "group-session-timeout":
			o.GroupSessionTimeout = *session
		}
	})
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	o.SluiceBin, o.WorkDir, o.KeepWorkDir, o.ProfileDir = *sluiceBin, *workDir, *workDir != "", *profileDir
	o.CompareBin = *compare
	o.Progress = stderr
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "sluice-bench:", err)
		return ExitUsage
	}
	t, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "sluice-bench:", err)
		return ExitFailure
	}
	if _, err := t.WriteTo(stdout); err != nil {
		fmt.Fprintln(stderr, "sluice-bench:", err)
		return ExitFailure
	}
	if len(t.Failed()) > 0 {
		return ExitTargetMiss
	}
	return ExitOK
}
