package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

// metadataAttempts bounds the retries of metadata and offset listings that fail with
// a retriable error (leader moving, topic just created): about 1.5 s in all (see
// metadataRetry).
const metadataAttempts = 5

// Admin answers questions about a Kafka system's topics. Kafka offsets are
// non-negative decimal numbers written plainly (package decimal, which does the
// arithmetic of CompareOffsets, OffsetAfter and Distance); Oldest is the log start
// offset, Upcoming the high watermark and Newest the high watermark minus one ("" for
// an empty partition).
type Admin struct {
	decimal.Offsets
	s *System
}

var _ system.Admin = (*Admin)(nil)

// Partitions returns the offsets of every partition of each stream. A stream that does
// not exist is an error naming it.
func (a *Admin) Partitions(ctx context.Context, streams ...string) (map[system.SystemStreamPartition]system.PartitionMetadata, error) {
	if err := a.s.started(); err != nil {
		return nil, err
	}
	out := make(map[system.SystemStreamPartition]system.PartitionMetadata)
	streams = slices.Compact(slices.Sorted(slices.Values(streams)))
	if len(streams) == 0 {
		return out, nil // kadm would list every topic
	}
	starts, ends, err := listOffsetsOn(ctx, a.s.clock, a.s.adm, streams...)
	if err != nil {
		return nil, fmt.Errorf("kafka system %q: %w", a.s.name, err)
	}
	for _, stream := range streams {
		for p, so := range starts[stream] {
			eo, ok := ends.Lookup(stream, p)
			if !ok {
				return nil, fmt.Errorf("kafka system %q: no end offset for %s partition %d", a.s.name, stream, p)
			}
			out[system.NewSSP(a.s.name, stream, p)] = metadata(so.Offset, eo.Offset)
		}
	}
	return out, nil
}

// metadata describes a partition holding [start, end).
func metadata(start, end int64) system.PartitionMetadata {
	end = max(end, start)
	md := system.PartitionMetadata{Oldest: formatOffset(start), Upcoming: formatOffset(end)}
	if end > start {
		md.Newest = formatOffset(end - 1)
	}
	return md
}

// listOffsets is listOffsetsOn the real clock.
func listOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (starts, ends kadm.ListedOffsets, err error) {
	return listOffsetsOn(ctx, nil, adm, topics...)
}

// listOffsetsOn lists the start and end offsets of every partition of topics, retrying
// retriable errors under metadataRetry on clock. A missing topic is an error naming it.
func listOffsetsOn(ctx context.Context, clock backoff.Clock, adm *kadm.Client, topics ...string) (starts, ends kadm.ListedOffsets, err error) {
	err = metadataRetry(clock).Do(ctx, func(ctx context.Context) error {
		var err error
		if starts, err = adm.ListStartOffsets(ctx, topics...); err != nil {
			return err
		}
		if err := listedErr(starts, topics); err != nil {
			return err
		}
		if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
			return err
		}
		return listedErr(ends, topics)
	})
	if err != nil {
		var missing *missingTopicError
		if errors.As(err, &missing) {
			return nil, nil, missing
		}
		return nil, nil, fmt.Errorf("listing offsets of %v: %w", topics, err)
	}
	return starts, ends, nil
}

// missingTopicError names a topic that does not exist.
type missingTopicError struct {
	topic string
	err   error
}

func (e *missingTopicError) Error() string {
	return fmt.Sprintf("topic %q does not exist (create it, or check the stream name)", e.topic)
}

func (e *missingTopicError) Unwrap() error { return e.err }

func listedErr(l kadm.ListedOffsets, topics []string) error {
	for _, t := range topics {
		ps, ok := l[t]
		if !ok {
			return &missingTopicError{topic: t, err: kerr.UnknownTopicOrPartition}
		}
		for p, o := range ps {
			switch {
			case o.Err == nil:
			case p < 0 && errors.Is(o.Err, kerr.UnknownTopicOrPartition):
				return &missingTopicError{topic: t, err: o.Err}
			default:
				return fmt.Errorf("topic %q partition %d: %w", t, p, o.Err)
			}
		}
	}
	return nil
}

// ParseOffset parses a Kafka offset: a non-negative decimal number written plainly,
// without a sign or leading zeros, as Kafka and Sluice write offsets. The error names s.
func ParseOffset(s string) (int64, error) {
	n, err := decimal.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("kafka: %w", err)
	}
	return n, nil
}

func formatOffset(n int64) string { return decimal.Format(n) }
