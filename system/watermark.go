package system

// HighWatermarker is implemented by consumers that learn, as they read, how far each
// of their partitions reaches: the upcoming offset (the offset the next message
// appended will get, Kafka's high watermark) as the broker last reported it, with no
// request of its own (Kafka sends it with every fetch response). The container
// computes lag from it for status lines and metrics without a round trip to the
// broker. A partition the consumer has not heard of yet is missing from the map. It
// may be called from any goroutine.
type HighWatermarker interface {
	HighWatermarks() map[SystemStreamPartition]string
}
