package container

import (
	"time"

	"github.com/sluice-streams/sluice/system"
)

// Events receives what happens in a running container, for status lines, metrics and
// tests, which listen here instead of reading the log. Every field is optional. The
// functions are called from the container's own goroutines (the control loop, or the
// goroutine of the task concerned), one event at a time per task; they must return
// quickly and must not call back into the container.
type Events struct {
	// TaskAdded is called when a task has been created, initialised and starts
	// receiving messages.
	TaskAdded func(TaskEvent)
	// TaskRemoved is called when a task has stopped while the container runs on: it
	// finished its current message and, unless Err is set, was committed.
	TaskRemoved func(TaskEvent)
	// CommitDone is called after each successful commit of a task.
	CommitDone func(CommitEvent)
	// CommitFailed is called when a commit of a task failed.
	CommitFailed func(CommitEvent)
	// PartitionsChanged is called when the partition monitor found inputs whose
	// partition count changed.
	PartitionsChanged func([]PartitionCountChange)
	// Processed is called, on the task's goroutine, after each run of messages of one
	// partition that the task processed (a batch: once per poll and partition, not per
	// message). Setting it makes the task time its batches.
	Processed func(ProcessEvent)
	// WindowDone is called after each call of a task's Window.
	WindowDone func(WindowEvent)
	// Started is called once, when start-up is over and the container begins to
	// process.
	Started func(StartEvent)
}

// ProcessEvent describes one batch a task processed.
type ProcessEvent struct {
	Task string
	SSP  system.SystemStreamPartition
	// Messages is how many messages of the batch were processed (a halted task stops
	// early).
	Messages int
	// Offset is the offset of the last message processed.
	Offset   string
	Duration time.Duration
}

// WindowEvent describes one call of a task's Window.
type WindowEvent struct {
	Task     string
	Duration time.Duration
	Err      error
}

// StartEvent describes a container's start-up.
type StartEvent struct {
	// At is when start-up was over.
	At time.Time
	// Duration is the time from Run to the first message it can process: starting
	// the systems and the checkpoint manager, reading checkpoints, creating and
	// initialising the tasks, starting the consumers.
	Duration time.Duration
	// CheckpointRead is the part of it spent reading the tasks' checkpoints.
	CheckpointRead time.Duration
	Tasks          int
}

// TaskEvent describes a task that was added or removed.
type TaskEvent struct {
	Task       string
	Partitions []system.SystemStreamPartition
	// Starts holds where each partition started (TaskAdded only).
	Starts map[system.SystemStreamPartition]string
	// Why says what made the container add or remove the task.
	Why string
	// Err is why a removed task could not be committed.
	Err error
}

// CommitEvent describes one commit of a task.
type CommitEvent struct {
	Task string
	// Why is periodic, requested, shutdown or removed.
	Why string
	// Offsets are the offsets committed (the next offset to read per partition).
	Offsets map[system.SystemStreamPartition]string
	// Written says whether a checkpoint was written; a commit whose offsets equal the
	// last checkpoint flushes outputs only.
	Written  bool
	Duration time.Duration
	Err      error
}

func (e *Events) taskAdded(ev TaskEvent) {
	if e != nil && e.TaskAdded != nil {
		e.TaskAdded(ev)
	}
}

func (e *Events) taskRemoved(ev TaskEvent) {
	if e != nil && e.TaskRemoved != nil {
		e.TaskRemoved(ev)
	}
}

func (e *Events) commitDone(ev CommitEvent) {
	if e != nil && e.CommitDone != nil {
		e.CommitDone(ev)
	}
}

func (e *Events) commitFailed(ev CommitEvent) {
	if e != nil && e.CommitFailed != nil {
		e.CommitFailed(ev)
	}
}

// timesBatches reports whether Processed is set: only then are batches timed.
func (e *Events) timesBatches() bool { return e != nil && e.Processed != nil }

func (e *Events) processed(ev ProcessEvent) {
	if e != nil && e.Processed != nil {
		e.Processed(ev)
	}
}

func (e *Events) windowDone(ev WindowEvent) {
	if e != nil && e.WindowDone != nil {
		e.WindowDone(ev)
	}
}

func (e *Events) started(ev StartEvent) {
	if e != nil && e.Started != nil {
		e.Started(ev)
	}
}

func (e *Events) partitionsChanged(ch []PartitionCountChange) {
	if e != nil && e.PartitionsChanged != nil {
		e.PartitionsChanged(ch)
	}
}
