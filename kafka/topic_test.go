package kafka

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/config"
)

var legalTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func TestValidateStreamNameFollowsKafkasTopicRule(t *testing.T) {
	s, err := New("kafka", config.New(map[string]string{"systems.kafka.consumer.bootstrap.servers": "127.0.0.1:1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PageViewEvent", "page.views_v2-x", strings.Repeat("a", 249), "..."} {
		if err := s.ValidateStreamName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for name, want := range map[string]string{
		"bad topic!":             `"bad topic!" is not a legal Kafka topic name: character ' ' is not allowed`,
		"":                       "empty",
		".":                      "reserved",
		"..":                     "reserved",
		strings.Repeat("a", 250): "250 characters, more than Kafka's 249",
		"tópic":                  "character 'ó' is not allowed",
	} {
		if err := s.ValidateStreamName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", name, err, want)
		}
	}
}

// FuzzValidateTopicName checks ValidateTopicName against Kafka's rule written as a
// regular expression.
func FuzzValidateTopicName(f *testing.F) {
	for _, s := range []string{"PageViewEvent", "bad topic!", ".", "..", "...", "", "a.b_c-D9", strings.Repeat("x", 250), "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := legalTopic.MatchString(name) && name != "." && name != ".."
		if err := ValidateTopicName(name); (err == nil) != want {
			t.Fatalf("ValidateTopicName(%q) = %v, want legal = %v", name, err, want)
		}
	})
}
