// Package offset decides where each of a task's partitions starts, in this order:
//
//  1. the task's checkpoint, unless the stream has samza.reset.offset=true;
//  2. otherwise samza.offset.default of the stream, else of the system, else upcoming —
//     except for a partition that appeared after the job started reading its stream
//     (the job has checkpoints of other partitions of that stream, but none of this
//     one): everything in it was written after the job started, so it is read from its
//     oldest offset, whatever samza.offset.default says;
//  3. a task's own SetStartingOffset at init wins over both (applied by the container).
//
// A checkpointed offset the system no longer holds (deleted by retention, or beyond the
// end after a topic was recreated) is never skipped silently: the stream's
// consumer.auto.offset.reset policy moves it to the oldest or upcoming offset, with the
// gap logged, or fails the start.
//
// Resolve is synchronous and does no I/O beyond the Admin's offset arithmetic, so it is
// tested directly.
package offset

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// Reason says why a partition starts where it does.
type Reason string

// The reasons logged for every starting offset.
const (
	FromCheckpoint Reason = "checkpoint"
	FromReset      Reason = "reset"   // samza.reset.offset=true: the checkpoint was ignored
	FromDefault    Reason = "default" // no checkpoint: samza.offset.default
	FromOverride   Reason = "override"
	FromOutOfRange Reason = "out-of-range" // checkpoint no longer retained: auto.offset.reset
	// FromNewPartition: no checkpoint, but the job checkpointed other partitions of the
	// stream, so this one appeared later and is read from its oldest offset.
	FromNewPartition Reason = "new-partition"
)

// Start is where one partition starts, and why.
type Start struct {
	Offset string
	Reason Reason
	// Detail explains the reason in words, for the log.
	Detail string
	// Gap is, when Reason is FromOutOfRange, the number of messages skipped: those
	// between the checkpointed offset and the new start, which the task will never
	// read (deleted by retention, or jumped over by the upcoming policy). It is 0 when
	// the start moves back (a checkpoint beyond the end of the partition: nothing is
	// skipped, messages may be read again), and -1 when the system cannot tell.
	Gap int64
}

// ErrOutOfRange is wrapped by the error Resolve returns under the fail policy.
var ErrOutOfRange = errors.New("checkpointed offset is out of range")

// Admins gives the admin of each system.
type Admins func(sys string) (system.Admin, bool)

// Resolve computes the starting offset of each partition of a task. cp is the task's
// checkpoint (empty when it has none); checkpointed holds the streams of which the job
// has checkpointed at least one partition, in any task (nil when unknown: no partition
// is then taken for a new one); meta holds the current metadata of each partition.
// Checkpointed partitions that are not in ssps (streams no longer inputs) are dropped
// and logged.
func Resolve(jc *job.Config, taskName string, ssps []system.SystemStreamPartition, cp checkpoint.Checkpoint, checkpointed map[system.SystemStream]bool,
	meta map[system.SystemStreamPartition]system.PartitionMetadata, admins Admins, log *slog.Logger) (map[system.SystemStreamPartition]Start, error) {
	inputs := make(map[system.SystemStreamPartition]bool, len(ssps))
	for _, ssp := range ssps {
		inputs[ssp] = true
	}
	for _, ssp := range cp.Partitions() {
		if !inputs[ssp] {
			log.Info("dropping checkpointed offset of a partition that is no longer an input", "task", taskName, "partition", ssp.String(), "offset", cp.Offsets[ssp])
		}
	}

	starts := make(map[system.SystemStreamPartition]Start, len(ssps))
	var errs []error
	for _, ssp := range ssps {
		md, ok := meta[ssp]
		if !ok {
			errs = append(errs, fmt.Errorf("task %s: no metadata for partition %s", taskName, ssp))
			continue
		}
		admin, ok := admins(ssp.System)
		if !ok {
			errs = append(errs, fmt.Errorf("task %s: no admin for system %q", taskName, ssp.System))
			continue
		}
		s, err := resolveOne(jc, ssp, cp, checkpointed[ssp.SystemStream], md, admin)
		if err != nil {
			errs = append(errs, fmt.Errorf("task %s, partition %s: %w", taskName, ssp, err))
			continue
		}
		starts[ssp] = s
	}
	return starts, errors.Join(errs...)
}

func resolveOne(jc *job.Config, ssp system.SystemStreamPartition, cp checkpoint.Checkpoint, streamCheckpointed bool, md system.PartitionMetadata, admin system.Admin) (Start, error) {
	off, checkpointed := cp.Offsets[ssp]
	reset := jc.ResetOffset(ssp.SystemStream)
	if checkpointed && reset {
		s, err := defaultStart(jc, ssp, md)
		s.Reason = FromReset
		s.Detail = fmt.Sprintf("samza.reset.offset=true ignores checkpoint %s; %s", off, strings.TrimPrefix(s.Detail, "no checkpoint; "))
		return s, err
	}
	// A broadcast partition is no new partition when a task is new: it starts at the
	// default, as for a stream never read.
	if !checkpointed && streamCheckpointed && !reset && !jc.IsBroadcast(ssp) {
		t, _ := jc.OffsetDefault(ssp.SystemStream)
		return Start{Offset: md.Oldest, Reason: FromNewPartition,
			Detail: fmt.Sprintf("no checkpoint, but the job has checkpoints of other partitions of %s: this partition appeared after the job started reading the stream (or its checkpoint was removed), "+
				"so it is read from its oldest offset (samza.offset.default=%s applies only to streams the job has never checkpointed)", ssp.SystemStream, t)}, nil
	}
	if !checkpointed {
		return defaultStart(jc, ssp, md)
	}
	return checkRange(jc, ssp, cp, off, md, admin)
}

// checkRange accepts a checkpointed offset inside [oldest, upcoming] and applies the
// out-of-range policy otherwise. An offset the system does not accept is an error
// naming where the checkpoint is stored (cp.Source).
func checkRange(jc *job.Config, ssp system.SystemStreamPartition, cp checkpoint.Checkpoint, off string, md system.PartitionMetadata, admin system.Admin) (Start, error) {
	where, err := Locate(admin, off, md)
	switch {
	case err != nil && cp.Source != "":
		return Start{}, fmt.Errorf("checkpointed offset %q in %s: %w", off, cp.Source, err)
	case err != nil:
		return Start{}, fmt.Errorf("checkpointed offset %q: %w", off, err)
	case where == Retained:
		return Start{Offset: off, Reason: FromCheckpoint, Detail: "checkpointed offset"}, nil
	}
	what := fmt.Sprintf("checkpointed offset %s is before the oldest retained offset %s", off, md.Oldest)
	if where == Beyond {
		what = fmt.Sprintf("checkpointed offset %s is beyond the end of the partition (next offset %s)", off, md.Upcoming)
	}
	policy := jc.AutoOffsetReset(ssp.SystemStream)
	switch policy {
	case system.ResetFail:
		return Start{}, fmt.Errorf("%w: %s; consumer.auto.offset.reset=fail stops the job (set it to oldest or upcoming, or rewrite the checkpoint with sluice checkpoint-tool)", ErrOutOfRange, what)
	case system.ResetUpcoming:
		return Start{Offset: md.Upcoming, Reason: FromOutOfRange, Gap: skipped(admin, off, md.Upcoming),
			Detail: fmt.Sprintf("%s; consumer.auto.offset.reset=upcoming moves to %s", what, md.Upcoming)}, nil
	default:
		return Start{Offset: md.Oldest, Reason: FromOutOfRange, Gap: skipped(admin, off, md.Oldest),
			Detail: fmt.Sprintf("%s; consumer.auto.offset.reset=oldest moves to %s", what, md.Oldest)}, nil
	}
}

// Place is where an offset lies against the messages a partition retains.
type Place int

const (
	// Retained: from the oldest retained offset up to the upcoming one (the next to be
	// appended), both included.
	Retained Place = iota
	// Before: before the oldest retained offset (retention deleted it).
	Before
	// Beyond: after the upcoming offset.
	Beyond
)

// Locate says where off lies in the partition of md, by the system's admin: the
// retained-range check that starting offsets and the checkpoint tool share. An offset
// the admin cannot compare is an error.
func Locate(admin system.Admin, off string, md system.PartitionMetadata) (Place, error) {
	below, err := admin.CompareOffsets(off, md.Oldest)
	if err != nil {
		return 0, err
	}
	above, err := admin.CompareOffsets(off, md.Upcoming)
	switch {
	case err != nil:
		return 0, err
	case below < 0:
		return Before, nil
	case above > 0:
		return Beyond, nil
	}
	return Retained, nil
}

// skipped is how many messages a start moved from offset from to offset to never
// reads: those from from up to (excluding) to; 0 when to is not after from (moving
// back skips nothing); -1 when unknown.
func skipped(admin system.Admin, from, to string) int64 {
	d, err := admin.Distance(from, to)
	if err != nil {
		return -1
	}
	return max(d, 0)
}

func defaultStart(jc *job.Config, ssp system.SystemStreamPartition, md system.PartitionMetadata) (Start, error) {
	t, key := jc.OffsetDefault(ssp.SystemStream)
	s := Start{Reason: FromDefault, Detail: fmt.Sprintf("no checkpoint; samza.offset.default=%s (%s)", t, key)}
	switch t {
	case job.Oldest:
		s.Offset = md.Oldest
	case job.Newest:
		s.Offset = md.Newest
		if s.Offset == "" {
			s.Offset = md.Upcoming
			s.Detail += "; the partition is empty, so upcoming"
		}
	default:
		s.Offset = md.Upcoming
	}
	if s.Offset == "" {
		return Start{}, fmt.Errorf("the system reported no %s offset", t)
	}
	return s, nil
}
