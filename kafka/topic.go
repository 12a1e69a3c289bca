package kafka

import "fmt"

// ValidateTopicName checks name against Kafka's rules for topic names: 1 to 249
// characters of a-z, A-Z, 0-9, '.', '_' and '-', and not "." or "..".
func ValidateTopicName(name string) error {
	if err := validTopic(name); err != nil {
		return fmt.Errorf("%q is not a legal Kafka topic name: %w", name, err)
	}
	return nil
}

// ValidateStreamName reports whether stream is a topic name Kafka accepts (see
// ValidateTopicName), so the container can refuse a bad input or output name before
// anything runs.
func (s *System) ValidateStreamName(stream string) error { return ValidateTopicName(stream) }
