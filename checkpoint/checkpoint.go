// Package checkpoint defines a task's checkpoint, the Manager interface that stores
// checkpoints, the optional interfaces managers implement (listing, deleting,
// all-or-nothing rewrites, and the run and rewrite locks that keep two processes from
// running one container and the checkpoint tool from rewriting under a running job),
// and the errors managers return.
//
// A checkpoint maps each system-stream-partition a task reads to the offset of the next
// message to read (Kafka's committed-offset convention; Samza itself stores the last
// processed offset, so an imported Samza checkpoint is one behind ours).
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/system"
)

// Checkpoint is one task's position in each of its partitions.
type Checkpoint struct {
	// Offsets holds, per partition, the offset of the next message to read.
	Offsets map[system.SystemStreamPartition]string
	// Source names where a checkpoint returned by Manager.Read is stored (a file, or a
	// topic, partition and offset), for errors about its offsets: a manager stores
	// offsets without interpreting them, so an offset the system does not accept is
	// found only when it is used. Empty when unknown; Write ignores it.
	Source string
	// Written is when a checkpoint returned by Manager.Read was written, as its
	// document says (see Document.Timestamp); zero when unknown. Write ignores it.
	Written time.Time
}

// New returns a checkpoint with a copy of offsets.
func New(offsets map[system.SystemStreamPartition]string) Checkpoint {
	return Checkpoint{Offsets: maps.Clone(offsets)}
}

// Equal reports whether two checkpoints hold the same offsets (whatever their Source).
func (c Checkpoint) Equal(o Checkpoint) bool { return maps.Equal(c.Offsets, o.Offsets) }

// Partitions returns the checkpoint's partitions in order.
func (c Checkpoint) Partitions() []system.SystemStreamPartition {
	ssps := slices.Collect(maps.Keys(c.Offsets))
	slices.SortFunc(ssps, system.SystemStreamPartition.Compare)
	return ssps
}

// Manager stores checkpoints. Implementations must be safe for concurrent use by the
// tasks of a container.
type Manager interface {
	// Start prepares the store (creates it if missing, validates its layout) and reads
	// the latest checkpoints. Nothing else is called before Start.
	Start(ctx context.Context) error
	// Read returns the latest checkpoint of task, or ErrNoCheckpoint if it has none. A
	// stored checkpoint that cannot be decoded is an error wrapping ErrCorrupt, never
	// ErrNoCheckpoint.
	Read(ctx context.Context, task string) (Checkpoint, error)
	// Write stores cp as task's latest checkpoint, durably, before returning.
	Write(ctx context.Context, task string, cp Checkpoint) error
	// Close releases resources.
	Close() error
}

// Lister is implemented by managers that can list every task they hold a checkpoint for.
type Lister interface {
	Tasks(ctx context.Context) ([]string, error)
}

// Deleter is implemented by managers that can remove a task's checkpoint, so that the
// task reads as never checkpointed and starts from its default offsets. The checkpoint
// tool uses it to undo a write to a task that had no checkpoint.
type Deleter interface {
	// Delete removes task's checkpoint, durably, before returning: Read then returns
	// ErrNoCheckpoint and Lister.Tasks leaves task out, in this manager and in managers
	// started later over the same store. Deleting a task that has no checkpoint is not
	// an error.
	Delete(ctx context.Context, task string) error
}

// RewriteLocker is implemented by managers that can keep every container of the job
// from starting while the checkpoints are rewritten (by the checkpoint tool): the
// counterpart of the run lock containers hold while they run.
type RewriteLocker interface {
	// LockForRewrite returns once no container of the job is running and none can
	// start (its run lock fails) until the returned Closer is closed. It fails with an
	// error wrapping ErrJobRunning when a container is running, and with one wrapping
	// ErrRewriting when another rewrite holds the lock; then nothing is held.
	LockForRewrite(ctx context.Context) (io.Closer, error)
}

// Container identifies one container of a job: the one started with --container-id
// ID, of a job with job.container.count Count. A Dynamic container is one of a job
// whose containers share its tasks through a group (job.coordinator.factory=kafka),
// started without --container-id: the group keeps two containers from running one
// task, so its run lock only marks the job as running (for the checkpoint tool), and
// ID and Count are not used.
type Container struct {
	ID      int
	Count   int
	Dynamic bool
}

// Validate reports an id outside 0..Count-1.
func (c Container) Validate() error {
	if c.Dynamic {
		return nil
	}
	if c.Count < 1 || c.ID < 0 || c.ID >= c.Count {
		return fmt.Errorf("checkpoint: container id %d is not one of 0..%d (job.container.count=%d)", c.ID, c.Count-1, c.Count)
	}
	return nil
}

// RunLocker is implemented by managers that can mark a container of the job as
// running, so that no second process runs the same container and the checkpoint tool
// does not rewrite the checkpoints under it (see RewriteLocker).
type RunLocker interface {
	// AcquireRunLock marks container c as running until the returned lock is closed
	// (or lost), and returns the checkpoints as they are then to later Reads. It fails
	// with an error wrapping ErrContainerRunning, naming the holder, while another
	// process holds the run lock of the same container; with one wrapping
	// ErrRewriting while a rewrite holds the job's rewrite lock; then nothing is held.
	// Containers with different ids hold their run locks together. A process that
	// dies, however it dies, releases its run lock (at once, or after a timeout the
	// manager documents), so that the container can be started again.
	AcquireRunLock(ctx context.Context, c Container) (RunLock, error)
}

// RunLock is a container's run lock (see RunLocker).
type RunLock interface {
	// Lost returns a channel that is closed when the lock is lost: another process
	// took the container over (fenced this one), so this one must stop processing at
	// once and fail; Err then says why. It is nil for managers that never lose a lock
	// while it is held (a nil channel never fires in a select).
	Lost() <-chan struct{}
	// Err returns nil while the lock is held, and after Lost is closed an error
	// wrapping ErrFenced that names the process that took the container over.
	Err() error
	// Peers returns, in order, the ids among 0..Count-1 of the job's containers that
	// hold their run lock now, this one included, so that a container can tell that
	// some of its peers are not running.
	Peers(ctx context.Context) ([]int, error)
	// Close releases the lock. Closing twice, or after the lock is lost, is harmless.
	Close() error
}

// Process describes the process that holds a run lock, in the errors that name it.
type Process struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"` // when it took the lock
}

// ThisProcess describes the calling process, taking a run lock now.
func ThisProcess() Process {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return Process{PID: os.Getpid(), Host: host, Since: time.Now()}
}

// String says "process <pid> on host <host> since <time>"; unknown parts are left out.
func (p Process) String() string {
	var b strings.Builder
	b.WriteString("process")
	if p.PID > 0 {
		fmt.Fprintf(&b, " %d", p.PID)
	}
	if p.Host != "" {
		fmt.Fprintf(&b, " on host %s", p.Host)
	}
	if !p.Since.IsZero() {
		fmt.Fprintf(&b, " since %s", p.Since.Format(time.RFC3339))
	}
	return b.String()
}

// TaskCheckpoint is one task's checkpoint among several written together.
type TaskCheckpoint struct {
	Task       string
	Checkpoint Checkpoint
}

// AtomicWriter is implemented by managers that can store the checkpoints of several
// tasks all or nothing (the checkpoint tool rewrites a job's checkpoints with it).
type AtomicWriter interface {
	// WriteAll stores every checkpoint of cps or none of them: readers, in this
	// process and in managers started later over the same store, see either the old
	// checkpoints of every task or the new ones of every task, also after the
	// process is killed part way (a manager may finish an interrupted WriteAll when
	// it starts). after, if not nil, is called once each task's checkpoint is stored,
	// with the number stored so far, while none of them is visible yet.
	//
	// A failed WriteAll returns an error wrapping ErrNothingWritten when every task
	// holds its old checkpoint, and ErrRewritePending when the new checkpoints are
	// committed and will all be visible once a manager over the store starts; with
	// neither, the outcome is unknown, but still all or nothing. An error wrapping
	// ErrAtomicUnavailable (and ErrNothingWritten) says that the store cannot write
	// all or nothing at all; the caller may write task by task instead.
	WriteAll(ctx context.Context, cps []TaskCheckpoint, after func(task string, n int)) error
}

var (
	// ErrNoCheckpoint is returned by Read for a task that has never been checkpointed.
	ErrNoCheckpoint = errors.New("checkpoint: no checkpoint")
	// ErrCorrupt is wrapped by errors for stored checkpoints that cannot be decoded.
	ErrCorrupt = errors.New("checkpoint: corrupt")
	// ErrJobRunning is wrapped by errors of managers that can tell that a container of
	// the job is running, so that its checkpoints must not be rewritten.
	ErrJobRunning = errors.New("checkpoint: the job is running")
	// ErrRewriting is wrapped by the errors of run locks and rewrite locks taken while
	// another process (the checkpoint tool) holds the job's rewrite lock.
	ErrRewriting = errors.New("checkpoint: the checkpoint tool is rewriting the job's checkpoints")
	// ErrContainerRunning is wrapped by errors of RunLocker.AcquireRunLock while
	// another process holds the run lock of the same container.
	ErrContainerRunning = errors.New("checkpoint: another process runs this container")
	// ErrFenced is wrapped by RunLock.Err once another process took the container
	// over.
	ErrFenced = errors.New("checkpoint: fenced: another process took this container over")
	// ErrRetriesExhausted is wrapped by Write errors of managers that already retried
	// the write for as long as they are configured to; the container does not retry
	// such a write again.
	ErrRetriesExhausted = errors.New("checkpoint: retries exhausted")
	// ErrNothingWritten is wrapped by errors of AtomicWriter.WriteAll after which
	// every task holds its old checkpoint.
	ErrNothingWritten = errors.New("checkpoint: nothing was written")
	// ErrRewritePending is wrapped by errors of AtomicWriter.WriteAll that committed
	// the new checkpoints without storing all of them: the next manager to start over
	// the store finishes the write, and until then readers may see some old ones.
	ErrRewritePending = errors.New("checkpoint: the rewrite is committed but not finished; the next start finishes it")
	// ErrAtomicUnavailable is wrapped by errors of AtomicWriter.WriteAll when the
	// store cannot write several checkpoints all or nothing (for Kafka: a cluster
	// without transactions, or no permission for the transactional id).
	ErrAtomicUnavailable = errors.New("checkpoint: all-or-nothing writes are not available")
)

// CorruptError says which stored checkpoint could not be decoded, and why.
type CorruptError struct {
	// Where names the file, or the topic, partition and offset, of the bad checkpoint.
	Where string
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("checkpoint: %s is corrupt: %v", e.Where, e.Err)
}

// Unwrap returns both ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// TaskTransaction is the producer of one exactly-once task
// (task.processing.guarantee=exactly-once): the messages sent through it since the last
// Commit and the task's checkpoint become visible together, or not at all.
type TaskTransaction interface {
	system.Producer
	// Commit stores cp as the task's checkpoint together with the messages sent since
	// the last Commit, and begins the next transaction. An error means nothing of the
	// transaction became visible; one wrapping ErrFenced means another process owns
	// the task now and this one must stop running it.
	Commit(ctx context.Context, cp Checkpoint) error
	// Abort drops everything sent since the last Commit; the transaction can be used
	// again.
	Abort(ctx context.Context) error
}

// Transactor is implemented by managers that can commit a task's outputs and its
// checkpoint in one transaction.
type Transactor interface {
	// OpenTaskTransaction opens task's transactional producer. Opening it fences any
	// other process that had it, so call it before reading the task's checkpoint.
	OpenTaskTransaction(ctx context.Context, task string) (TaskTransaction, error)
}
