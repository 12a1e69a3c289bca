package kafka

import (
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

var _ system.HighWatermarker = (*Consumer)(nil)

// watermarks holds the high watermark of each partition a consumer read, as the last
// fetch response that carried the partition reported it. It is updated once per
// partition per poll, not per message.
type watermarks struct {
	mu  sync.Mutex
	hwm map[topicPartition]int64
}

// note records the high watermarks fetches carry.
func (w *watermarks) note(fetches kgo.Fetches) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range fetches {
		for j := range fetches[i].Topics {
			ft := &fetches[i].Topics[j]
			for k := range ft.Partitions {
				fp := &ft.Partitions[k]
				if fp.Err != nil || fp.HighWatermark < 0 {
					continue
				}
				if w.hwm == nil {
					w.hwm = map[topicPartition]int64{}
				}
				w.hwm[topicPartition{ft.Topic, fp.Partition}] = fp.HighWatermark
			}
		}
	}
}

// HighWatermarks implements system.HighWatermarker: the upcoming offset of each
// partition the consumer fetched, as the broker reported it in its last fetch
// response that carried the partition. It costs no request.
func (c *Consumer) HighWatermarks() map[system.SystemStreamPartition]string {
	c.marks.mu.Lock()
	defer c.marks.mu.Unlock()
	out := make(map[system.SystemStreamPartition]string, len(c.marks.hwm))
	for tp, n := range c.marks.hwm {
		out[system.NewSSP(c.s.name, tp.topic, tp.partition)] = strconv.FormatInt(n, 10)
	}
	return out
}
