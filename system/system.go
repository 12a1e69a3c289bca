// Package system is the extension API for message systems: the names of streams and
// partitions, the envelopes that carry messages, and the consumer, producer and admin
// interfaces a system (Kafka, the in-memory system, ...) implements for Sluice.
//
// Offsets are opaque strings to everything but a system's Admin, which alone compares
// them and computes the offset after one. A checkpoint records, for every
// system-stream-partition, the offset of the next message to read.
//
// The container drives a system in this order: New (validates configuration, starts
// nothing), Start (connects), Admin for metadata, one Consumer per container with a
// Register call for every partition before its Start, one Producer per task, and finally
// Close on everything in reverse order.
package system

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/config"
)

// SystemStream names a stream (a topic) within a system.
type SystemStream struct {
	System string
	Stream string
}

// String returns "system.stream".
func (s SystemStream) String() string { return s.System + "." + s.Stream }

// ParseSystemStream splits "system.stream" at the first dot. Stream names may contain
// dots; system names may not.
func ParseSystemStream(s string) (SystemStream, error) {
	sys, stream, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok || sys == "" || stream == "" {
		return SystemStream{}, fmt.Errorf("%q is not of the form system.stream", s)
	}
	return SystemStream{System: sys, Stream: stream}, nil
}

// SystemStreamPartition names one partition of one stream: the unit of ordering.
type SystemStreamPartition struct {
	SystemStream
	Partition int32
}

// NewSSP is shorthand for a SystemStreamPartition literal.
func NewSSP(sys, stream string, partition int32) SystemStreamPartition {
	return SystemStreamPartition{SystemStream{sys, stream}, partition}
}

// String returns "system.stream#partition".
func (p SystemStreamPartition) String() string {
	return fmt.Sprintf("%s.%s#%d", p.System, p.Stream, p.Partition)
}

// Compare orders partitions by system, stream, then partition number.
func (p SystemStreamPartition) Compare(q SystemStreamPartition) int {
	if c := strings.Compare(p.System, q.System); c != 0 {
		return c
	}
	if c := strings.Compare(p.Stream, q.Stream); c != 0 {
		return c
	}
	switch {
	case p.Partition < q.Partition:
		return -1
	case p.Partition > q.Partition:
		return 1
	}
	return 0
}

// Header is one record header: a key and a value, as Kafka carries them. Keys need
// not be unique; their order is kept.
type Header struct {
	Key   string
	Value []byte
}

// IncomingEnvelope is one message read from a partition.
type IncomingEnvelope struct {
	SSP       SystemStreamPartition
	Offset    string
	Key       []byte
	Message   []byte
	Headers   []Header
	Timestamp time.Time
	// Control marks not a message but a transaction marker (the end of a Kafka
	// transaction) at Offset. Consumers may return them so that a reader's position
	// moves past markers; the container never hands them to tasks, and counts them as
	// processed.
	Control bool
}

// OutgoingEnvelope is one message a task sends. Partition selects the destination
// partition; PartitionByKey lets the system choose one from the key instead.
// Headers and Timestamp are sent as they are; a zero Timestamp lets the system stamp
// the message with the time it is sent. A task that forwards a message copies both
// from its IncomingEnvelope to keep the record whole.
type OutgoingEnvelope struct {
	Stream         SystemStream
	Partition      int32
	PartitionByKey bool
	Key            []byte
	Message        []byte
	Headers        []Header
	Timestamp      time.Time
}

// PartitionMetadata describes the offsets a partition holds.
type PartitionMetadata struct {
	// Oldest is the offset of the oldest message still retained.
	Oldest string
	// Newest is the offset of the last message present; empty when the partition is empty.
	Newest string
	// Upcoming is the offset the next message appended will get.
	Upcoming string
}

// Admin answers questions about a system's streams and interprets its offsets.
type Admin interface {
	// Partitions returns the metadata of every partition of each named stream. A stream
	// that does not exist is an error.
	Partitions(ctx context.Context, streams ...string) (map[SystemStreamPartition]PartitionMetadata, error)
	// CompareOffsets returns -1, 0 or 1 as a is before, equal to or after b.
	CompareOffsets(a, b string) (int, error)
	// OffsetAfter returns the offset of the message that follows offset.
	OffsetAfter(offset string) (string, error)
	// Distance returns how many messages lie from "from" up to (excluding) "to".
	Distance(from, to string) (int64, error)
}

// Consumer reads the partitions registered with it. The container calls Poll from one
// goroutine at a time.
type Consumer interface {
	// Register asks for partition ssp to be read from offset (the next message to
	// read). Every Register comes before Start.
	Register(ssp SystemStreamPartition, offset string) error
	// Start begins reading.
	Start(ctx context.Context) error
	// Poll blocks until messages are available, ctx is done (returning ctx.Err()), or the
	// consumer fails. The returned slice is owned by the caller. Messages of one
	// partition come in offset order, across calls too.
	Poll(ctx context.Context) ([]IncomingEnvelope, error)
	// Close stops reading and releases resources.
	Close() error
}

// Producer sends messages. One Producer is created per task, so Flush covers exactly
// the messages that task sent.
type Producer interface {
	// Send queues env for delivery. It may block for backpressure. An error is returned
	// for a message that can never be sent; delivery errors surface at Flush.
	Send(ctx context.Context, env OutgoingEnvelope) error
	// Flush waits until every message sent so far is acknowledged durably, and returns
	// the first delivery error of this producer. Once a delivery failed, every later
	// Flush returns an error too: a lost message must never be covered by a checkpoint.
	Flush(ctx context.Context) error
	// Close flushes nothing; call Flush first to keep what was sent.
	Close() error
}

// FailureNotifier is implemented by producers that learn of a failed delivery while
// it happens (asynchronously), not only at the next Flush. The container uses it to stop
// a job within moments of a lost output instead of at its next commit.
type FailureNotifier interface {
	// NotifyFailure registers fn to be called once, from any goroutine, with the first
	// delivery failure of the producer (at once if one happened already). fn must not
	// block. Flush keeps returning the failure as before.
	NotifyFailure(fn func(error))
}

// CheckpointListener is implemented by consumers that want to hear about checkpoints.
// OnCheckpoint is called after each checkpoint of a task has been written, with that
// task's offsets (the next offsets to read) of the partitions this consumer reads. It is
// not atomic with the checkpoint: a crash between the two leaves the checkpoint written
// and the call not made. An error is logged and counted; it does not undo the checkpoint.
type CheckpointListener interface {
	OnCheckpoint(offsets map[SystemStreamPartition]string) error
}

// Pauser is implemented by consumers that can stop fetching some of their partitions
// for a while. When a task falls behind, the container pauses that task's partitions,
// so that the consumer's other partitions keep flowing to their tasks while the slow
// task's buffer stays bounded, and resumes them once the task has worked through its
// buffer. Poll may still return messages of a partition that was paused while they
// were on their way, but must never skip or repeat one: after Resume, reading carries
// on exactly after the last message Poll returned. Pause and Resume may be called from
// any goroutine, also while Poll is blocked (Resume must wake it if messages are
// available). A consumer that does not implement Pauser makes the container wait for
// the slow task before it polls again.
type Pauser interface {
	Pause(ssps ...SystemStreamPartition)
	Resume(ssps ...SystemStreamPartition)
}

// PartitionChanger is implemented by consumers that can start and stop reading
// partitions after Start, so that a container can add and remove tasks while it runs.
// Its methods may be called from any goroutine, also while Poll is blocked (AddPartitions
// wakes it when the added partitions have messages). A Poll that is running while
// RemovePartitions runs may still return messages it took before the removal; it then
// counts as having returned before RemovePartitions: a Poll begun after
// RemovePartitions returned never does. A partition read again after its removal is
// not paused (Pauser), whatever it was before. An added partition whose offset no longer
// exists is treated as a registered one would be. system/systemtest checks all
// of this.
type PartitionChanger interface {
	// AddPartitions starts reading each partition from its offset (the next message
	// to read). It may be called before or after Start; a partition already read
	// is an error.
	AddPartitions(offsets map[SystemStreamPartition]string) error
	// RemovePartitions stops reading ssps. Once it returns, Poll returns no message of
	// them, not even one fetched before (messages Poll already returned are the
	// caller's). Removing a partition that is not read is not an error. A removed
	// partition may be added again later, at any offset.
	RemovePartitions(ssps ...SystemStreamPartition) error
}

// Recycler is implemented by consumers that can reuse the slices Poll returns. Once
// every message of a slice has been processed (tasks get copies of the envelopes),
// the container hands the slice back with Recycle and reads nothing of it afterwards;
// a later Poll may return it again, overwritten. The strings and byte slices the
// envelopes pointed to are not reused.
type Recycler interface {
	Recycle(envs []IncomingEnvelope)
}

// ResetCounter is implemented by systems whose consumers move past offsets that no
// longer exist while running (retention deleted them), so the container can count those
// moves with its own start-time ones.
type ResetCounter interface {
	// OutOfRangeResets returns how many times a consumer moved, and how many messages
	// those moves skipped.
	OutOfRangeResets() (resets, skipped int64)
}

// System is one configured message system in one container.
type System interface {
	// Start connects. It is called once, before anything else is used.
	Start(ctx context.Context) error
	Admin() Admin
	NewConsumer() (Consumer, error)
	NewProducer() (Producer, error)
	Close() error
}

// Factory builds a system named name from the job's whole configuration (its own keys
// are under systems.<name>.). It validates configuration and connects to nothing;
// every configuration problem is reported in the returned error, each naming its key.
// The logger is the container's; a system adds its own name to what it logs.
type Factory func(name string, cfg config.Config, logger *slog.Logger) (System, error)
