package inmem

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

// AppendAt adds a message with timestamp t, instead of the current time, and returns
// its offset. It lets tests place messages in time for OffsetForTime.
func (s *Store) AppendAt(stream string, p int32, key, value []byte, t time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	part, err := s.part(stream, p)
	if err != nil {
		return "", err
	}
	part.msgs = append(part.msgs, Message{Key: slices.Clone(key), Value: slices.Clone(value), Time: t})
	close(s.changed)
	s.changed = make(chan struct{})
	return decimal.Format(part.base + int64(len(part.msgs)) - 1), nil
}

// OffsetForTime returns the offset of the first retained message of ssp whose
// timestamp is at or after t, or the upcoming offset when there is none. It is what
// `sluice checkpoint-tool --reset-to=<time>` uses.
func (a admin) OffsetForTime(_ context.Context, ssp system.SystemStreamPartition, t time.Time) (string, error) {
	if ssp.System != a.y.name {
		return "", fmt.Errorf("inmem: system %q has no partition %s", a.y.name, ssp)
	}
	s := a.y.store
	s.mu.Lock()
	defer s.mu.Unlock()
	part, err := s.part(ssp.Stream, ssp.Partition)
	if err != nil {
		return "", err
	}
	for i, m := range part.msgs {
		if !m.Time.Before(t) {
			return decimal.Format(part.base + int64(i)), nil
		}
	}
	return decimal.Format(part.base + int64(len(part.msgs))), nil
}
