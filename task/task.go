// Package task is what users of Sluice implement: a StreamTask that processes one
// message at a time, plus optional Init, Window and Close hooks.
//
// Sluice creates one instance of the task per input partition number ("Partition 3"
// receives partition 3 of every input stream) and calls it from one goroutine, so a
// task needs no locking of its own. Outputs go through the Collector; they are flushed
// and acknowledged before any checkpoint that covers the input that produced them, so
// a crash never loses a message (at-least-once): after a restart the task sees again
// at most the messages it processed since its last checkpoint.
//
// A task returns an error from Process to fail: the container stops, the failed
// message is never checkpointed, and the next start processes it again. A panic is
// contained and reported the same way.
package task

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// StreamTask processes messages, one at a time, in offset order per partition.
type StreamTask interface {
	Process(ctx context.Context, env system.IncomingEnvelope, out Collector, coord Coordinator) error
}

// InitableTask is implemented by tasks that need setting up before the first message.
type InitableTask interface {
	Init(ctx context.Context, tc Context) error
}

// WindowableTask is implemented by tasks that act on a timer: Window is called every
// task.window.ms, between messages.
type WindowableTask interface {
	Window(ctx context.Context, out Collector, coord Coordinator) error
}

// ClosableTask is implemented by tasks that release resources when the container stops.
type ClosableTask interface {
	Close() error
}

// Collector sends a task's output messages.
type Collector interface {
	Send(ctx context.Context, env system.OutgoingEnvelope) error
}

// Scope says which tasks a Commit or Shutdown request applies to.
type Scope int

const (
	// CurrentTask applies a request to the calling task only.
	CurrentTask Scope = iota
	// AllTasksInContainer applies a request to every task of the container.
	AllTasksInContainer
)

func (s Scope) String() string {
	switch s {
	case CurrentTask:
		return "current task"
	case AllTasksInContainer:
		return "all tasks in container"
	}
	return fmt.Sprintf("scope(%d)", int(s))
}

// Coordinator lets a task ask for a commit or a shutdown. Requests take effect after
// the current Process or Window call returns.
type Coordinator interface {
	// Commit asks for a checkpoint of the current task, or of every task of the container.
	Commit(scope Scope)
	// Shutdown with CurrentTask is a vote: the container stops cleanly once every task
	// has voted. With AllTasksInContainer it stops after the current message.
	Shutdown(scope Scope)
}

// Context is what a task sees at Init.
type Context interface {
	// TaskName is "Partition N".
	TaskName() string
	// Partitions lists the partitions this task reads.
	Partitions() []system.SystemStreamPartition
	// StartingOffset is where the task will start reading ssp, and why.
	StartingOffset(ssp system.SystemStreamPartition) (offset string, reason string)
	// SetStartingOffset overrides where the task starts reading ssp. It wins over the
	// checkpoint and the configured defaults.
	SetStartingOffset(ssp system.SystemStreamPartition, offset string) error
	// Config is the job's whole configuration.
	Config() config.Config
	// Logger logs with the task's name attached.
	Logger() *slog.Logger
}

// Factory creates one task instance. It is called once per task name.
type Factory func(taskName string, cfg config.Config) (StreamTask, error)

// ConfigCheck validates a task's own configuration keys before anything runs. Each
// problem should be a *config.Error naming its key.
type ConfigCheck func(cfg config.Config) error

// Definition names a task implementation for a job's task.class key.
type Definition struct {
	// New creates an instance for one task.
	New Factory
	// Check validates the task's own configuration keys up front. Optional.
	Check ConfigCheck
	// WindowDefault is used when task.window.ms is unset. Zero means no windowing.
	WindowDefault time.Duration
	// Keys lists the configuration keys the task reads, so that the container can warn
	// of the ones nobody reads: exact keys ("task.passthrough.output") or patterns, where
	// a final ".*" stands for any rest ("task.myapp.*"). Optional: a task that lists
	// none is taken to read any task.* key that is not close to one of Sluice's own
	// (task.comit.ms is still flagged as a typo of task.commit.ms).
	Keys []string
	// Outputs returns the streams the task sends to under cfg. Optional. The container
	// checks before anything runs that each names a configured system and a stream name
	// that system accepts. Errors should be *config.Error values naming the key.
	Outputs func(cfg config.Config) ([]system.SystemStream, error)
}
