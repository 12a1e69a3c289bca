package kafka

import (
	"errors"

	"github.com/sluice-streams/sluice/system"
)

var _ system.CheckpointListener = (*Consumer)(nil)

// OnCheckpoint implements system.CheckpointListener: the container calls it after each
// checkpoint of a task is written, with the task's offsets of this consumer's
// partitions. With samza.delete.committed.messages, the records below those offsets
// are deleted (batched, at most once per interval; see the deleter). Unless
// task.checkpoint.mirror.enabled=false, the offsets are mirrored to the job's
// consumer group too (see mirrorCheckpoint).
func (c *Consumer) OnCheckpoint(offsets map[system.SystemStreamPartition]string) error {
	err := c.mirrorCheckpoint(offsets)
	if c.s.del == nil {
		return err
	}
	return errors.Join(err, c.s.del.note(offsets))
}
