package inmem

import (
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

var _ system.HighWatermarker = (*Consumer)(nil)

// HighWatermarks implements system.HighWatermarker: the upcoming offset of every
// partition the consumer reads, as the store holds it now.
func (c *Consumer) HighWatermarks() map[system.SystemStreamPartition]string {
	c.mu.Lock()
	ssps := make([]system.SystemStreamPartition, 0, len(c.next))
	for ssp := range c.next {
		ssps = append(ssps, ssp)
	}
	c.mu.Unlock()
	s := c.sys.store
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[system.SystemStreamPartition]string, len(ssps))
	for _, ssp := range ssps {
		ps, ok := s.streams[ssp.Stream]
		if !ok || int(ssp.Partition) >= len(ps) {
			continue
		}
		p := ps[ssp.Partition]
		out[ssp] = decimal.Format(p.base + int64(len(p.msgs)))
	}
	return out
}
