package bench

import (
	"io"
	"time"
)

// Options sizes a benchmark run. Defaults returns the sizes docs/PERFORMANCE.md
// reports; Quick returns tiny ones for a smoke test.
type Options struct {
	// Messages is the number of input messages of the passthrough runs, spread
	// round-robin over Partitions partitions, each MessageBytes bytes long.
	Messages     int
	MessageBytes int
	Partitions   int
	// Repeats is how many times each passthrough variant, and each checkpoint
	// read, runs; the runs alternate and the table reports medians.
	Repeats int
	// CommitIntervals are the task.commit.ms values measured besides commits
	// disabled. The table's targets refer to 1 s and 100 ms.
	CommitIntervals []time.Duration

	// EndToEndMessages is the input of the end-to-end section (whole-process wall
	// time of sluice run against the raw franz-go program) and of the group
	// section's copies with 1, 2 and 4 containers.
	EndToEndMessages int

	// LatencyRate is the input rate (messages per second) while the exactly-once
	// section measures the latency from an input's producer to its output's
	// visibility to a read_committed reader, over LatencyWindow per run.
	LatencyRate   int
	LatencyWindow time.Duration

	// GroupRate is the input rate of the group section's scale-out and failover
	// rounds; each phase of a round (one container, two, one killed) runs for
	// GroupSteady. GroupSessionTimeout is job.coordinator.session.timeout.ms there.
	// GroupContainers are the container counts of its throughput copies.
	GroupRate           int
	GroupSteady         time.Duration
	GroupSessionTimeout time.Duration
	GroupContainers     []int

	// CheckpointTasks and CheckpointRecords size the checkpoint topic read at startup.
	CheckpointTasks   int
	CheckpointRecords int

	// RecoveryPartitions is the partition count of the recovery job's input;
	// RecoveryRestarts is how many SIGKILL-and-restart cycles are timed;
	// RecoveryRate is the input rate in messages per second while they run.
	RecoveryPartitions int
	RecoveryRestarts   int
	RecoveryRate       int

	// MemoryRate is the input rate (messages per second) of the memory run, whose
	// task is SlowFactor times slower than that. Its input starts with a tenth of
	// MemoryBacklog and the run ends when the backlog reaches MemoryBacklog.
	MemoryRate    int
	SlowFactor    int
	MemoryBacklog int

	// Only, when not empty, restricts the run to these sections (see Sections).
	Only []string

	// SluiceBin is a built sluice binary; empty builds ./cmd/sluice with go build.
	SluiceBin string
	// CompareBin, when set, is another sluice binary (an older build, say) that the
	// throughput section runs as one more variant, with commits every second, in the
	// same alternating rounds, so that two builds are compared side by side; the
	// end-to-end section does the same.
	CompareBin string
	// HelperBin is a binary whose Main handles this package's hidden modes
	// (raw-copy, read-checkpoints, sluice); HelperEnv is added to its environment.
	HelperBin string
	HelperEnv []string
	// WorkDir holds the broker's data, configurations and process logs; empty
	// means a temporary directory, removed at the end unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// ProfileDir, when set, receives CPU and allocation profiles of one extra
	// (untimed) Sluice passthrough run with commits every second and of one raw
	// franz-go run.
	ProfileDir string

	// Progress receives progress lines; nil discards them.
	Progress io.Writer
}

// Defaults returns the sizes of the issues: 5,000,000 messages of 100 bytes over 8
// partitions, five runs of each variant, 3,000,000 messages end to end, 1,000,000
// checkpoint records of 1,000 tasks, 64 partitions for recovery, and for memory an
// input of 100,000 messages a second to a task 100 times slower until the backlog
// reaches 3,000,000.
func Defaults() Options {
	return Options{
		Messages:            5_000_000,
		MessageBytes:        100,
		Partitions:          8,
		Repeats:             5,
		CommitIntervals:     []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond},
		EndToEndMessages:    3_000_000,
		LatencyRate:         1_000,
		LatencyWindow:       3 * time.Second,
		GroupRate:           20_000,
		GroupSteady:         1500 * time.Millisecond,
		GroupSessionTimeout: 2 * time.Second,
		GroupContainers:     []int{1, 2, 4},
		CheckpointTasks:     1000,
		CheckpointRecords:   1_000_000,
		RecoveryPartitions:  64,
		RecoveryRestarts:    5,
		RecoveryRate:        10_000,
		MemoryRate:          100_000,
		SlowFactor:          100,
		MemoryBacklog:       3_000_000,
	}
}

// Quick returns tiny sizes that exercise every measurement in seconds; its figures
// mean nothing.
func Quick() Options {
	o := Defaults()
	o.Messages = 20_000
	o.Repeats = 1
	o.EndToEndMessages = 20_000
	o.LatencyWindow = 500 * time.Millisecond
	o.GroupRate = 4_000
	o.GroupSteady = 500 * time.Millisecond
	o.GroupSessionTimeout = time.Second
	o.CheckpointTasks = 20
	o.CheckpointRecords = 2_000
	o.RecoveryPartitions = 8
	o.RecoveryRestarts = 1
	o.RecoveryRate = 2_000
	o.MemoryRate = 20_000
	o.MemoryBacklog = 20_000
	return o
}
