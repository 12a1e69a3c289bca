package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-streams/sluice/system"
)

// OffsetForTime returns the offset of the first message of ssp whose timestamp is at
// or after t, or the partition's upcoming offset (the high watermark) when there is
// none: Kafka's ListOffsets by timestamp. A time before 1970 counts as 1970. It is
// what `sluice checkpoint-tool --reset-to=<time>` uses (checkpointtool.OffsetForTimer).
func (a *Admin) OffsetForTime(ctx context.Context, ssp system.SystemStreamPartition, t time.Time) (string, error) {
	if err := a.s.started(); err != nil {
		return "", err
	}
	if ssp.System != a.s.name {
		return "", fmt.Errorf("kafka system %q: %s is not one of its partitions", a.s.name, ssp)
	}
	ms := max(t.UnixMilli(), 0) // negative timestamps are ListOffsets' special requests
	var listed kadm.ListedOffsets
	err := metadataRetry(a.s.clock).Do(ctx, func(ctx context.Context) error {
		var err error
		if listed, err = a.s.adm.ListOffsetsAfterMilli(ctx, ms, ssp.Stream); err != nil {
			return err
		}
		return listedErr(listed, []string{ssp.Stream})
	})
	if err != nil {
		var missing *missingTopicError
		if errors.As(err, &missing) {
			return "", fmt.Errorf("kafka system %q: %w", a.s.name, missing)
		}
		return "", fmt.Errorf("kafka system %q: offset of %s at %s: %w", a.s.name, ssp, t.Format(time.RFC3339Nano), err)
	}
	o, ok := listed.Lookup(ssp.Stream, ssp.Partition)
	if !ok {
		return "", fmt.Errorf("kafka system %q: topic %q has no partition %d", a.s.name, ssp.Stream, ssp.Partition)
	}
	if o.Offset < 0 {
		return "", fmt.Errorf("kafka system %q: the broker gave no offset for %s at %s", a.s.name, ssp, t.Format(time.RFC3339Nano))
	}
	return formatOffset(o.Offset), nil
}
