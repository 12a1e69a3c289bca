package system

import (
	"strings"

	"github.com/sluice-streams/sluice/config"
)

// ResetPolicy says what happens when the offset a consumer is to read next no longer
// exists (retention deleted it, or the checkpoint lies beyond the end of the
// partition): Samza's and Kafka's consumer.auto.offset.reset.
type ResetPolicy string

// The policies. ResetOldest is the default: nothing still retained is skipped.
const (
	// ResetOldest resumes at the oldest retained message (Kafka's earliest, smallest).
	ResetOldest ResetPolicy = "oldest"
	// ResetUpcoming resumes after the newest message (latest, largest).
	ResetUpcoming ResetPolicy = "upcoming"
	// ResetFail stops with an error naming the partition and offset (none).
	ResetFail ResetPolicy = "fail"
)

const resetSuffix = "consumer.auto.offset.reset"

// ResetPolicies are the consumer.auto.offset.reset settings of one system: the
// system's (systems.<s>.consumer.auto.offset.reset) and its streams'
// (systems.<s>.streams.<stream>.consumer.auto.offset.reset).
type ResetPolicies struct {
	system  ResetPolicy
	streams map[string]ResetPolicy
}

// ParseResetPolicy parses a consumer.auto.offset.reset value: oldest, earliest or
// smallest; upcoming, latest or largest; fail or none. Case is ignored.
func ParseResetPolicy(v string) (ResetPolicy, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "oldest", "earliest", "smallest":
		return ResetOldest, true
	case "upcoming", "latest", "largest":
		return ResetUpcoming, true
	case "fail", "none":
		return ResetFail, true
	}
	return "", false
}

// ReadResetPolicies reads the policies of system sys from cfg; a bad value is a
// problem naming its key (the same problem whoever reads it, so that the container
// reports it once).
func ReadResetPolicies(p *config.Problems, cfg config.Config, sys string) ResetPolicies {
	prefix := "systems." + sys + "."
	r := ResetPolicies{system: ResetOldest, streams: map[string]ResetPolicy{}}
	parse := func(key string) (ResetPolicy, bool) {
		v, _ := cfg.Get(key)
		policy, ok := ParseResetPolicy(v)
		if !ok {
			p.Add(key, v, "must be oldest, upcoming or fail (Kafka's earliest, latest and none are accepted too)")
		}
		return policy, ok
	}
	if cfg.Has(prefix + resetSuffix) {
		if policy, ok := parse(prefix + resetSuffix); ok {
			r.system = policy
		}
	}
	for stream, key := range StreamKeys(cfg, sys, resetSuffix) {
		if policy, ok := parse(key); ok {
			r.streams[stream] = policy
		}
	}
	return r
}

// StreamKeys returns the per-stream keys of system sys that end in suffix
// (systems.<sys>.streams.<stream>.<suffix>), by stream: stream names may hold dots.
func StreamKeys(cfg config.Config, sys, suffix string) map[string]string {
	prefix := "systems." + sys + ".streams."
	out := map[string]string{}
	for _, k := range cfg.Subset(prefix).Keys() {
		if stream, ok := strings.CutSuffix(k, "."+suffix); ok && stream != "" {
			out[stream] = prefix + k
		}
	}
	return out
}

// Of returns the policy of stream: its own, else the system's, else ResetOldest.
func (r ResetPolicies) Of(stream string) ResetPolicy {
	if policy, ok := r.streams[stream]; ok {
		return policy
	}
	if r.system == "" {
		return ResetOldest
	}
	return r.system
}
