package jobmodel

import (
	"maps"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// streamNameValidator is implemented by systems that restrict stream names (Kafka's
// topic names), so that a bad name is a configuration error before anything runs.
type streamNameValidator interface {
	ValidateStreamName(stream string) error
}

// CheckStreams checks that every input, the dead-letter stream and every output in
// outs names a configured system, and a stream name that system accepts.
func CheckStreams(p *config.Problems, cfg config.Config, jc *job.Config, systems map[string]system.System, outs []system.SystemStream) {
	inputs, _ := cfg.Get(job.KeyInputs)
	for _, in := range jc.Inputs {
		if v, ok := systems[in.System].(streamNameValidator); ok {
			if err := v.ValidateStreamName(in.Stream); err != nil {
				p.Add(job.KeyInputs, inputs, "input %s: %v", in, err)
			}
		}
	}
	for _, ss := range jc.ReadStreams()[len(jc.Inputs):] { // broadcast-only streams
		if v, ok := systems[ss.System].(streamNameValidator); ok {
			if err := v.ValidateStreamName(ss.Stream); err != nil {
				p.Add(job.KeyBroadcastInputs, cfg.GetOr(job.KeyBroadcastInputs, ""), "%s: %v", ss, err)
			}
		}
	}
	if dl := jc.DeadLetter; dl != nil {
		if v, ok := systems[dl.System].(streamNameValidator); ok {
			if err := v.ValidateStreamName(dl.Stream); err != nil {
				p.Add(job.KeyDeadLetterStream, dl.String(), "%v", err)
			}
		}
	}
	for _, out := range outs {
		key, value := keyNaming(cfg, out)
		if key == "" {
			key, value = job.KeyTaskClass, jc.TaskClass
		}
		if _, ok := jc.SystemFactories[out.System]; !ok {
			p.Add(key, value, "output %s names system %q, which is not configured (no systems.%s.samza.factory; configured: %s)",
				out, out.System, out.System, strings.Join(slices.Sorted(maps.Keys(jc.SystemFactories)), ", "))
			continue
		}
		if v, ok := systems[out.System].(streamNameValidator); ok {
			if err := v.ValidateStreamName(out.Stream); err != nil {
				p.Add(key, value, "output %s: %v", out, err)
			}
		}
	}
}

// keyNaming returns the task.* key (else any key) whose value, or one item of whose
// comma-separated value, is ss, so an error about an output can name its key.
func keyNaming(cfg config.Config, ss system.SystemStream) (string, string) {
	var found []string
	for _, k := range cfg.Keys() {
		v, _ := cfg.Get(k)
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item == ss.String() {
				found = append(found, k)
				break
			}
		}
	}
	if len(found) == 0 {
		return "", ""
	}
	key := found[0]
	if i := slices.IndexFunc(found, func(k string) bool { return strings.HasPrefix(k, "task.") && k != job.KeyInputs }); i >= 0 {
		key = found[i]
	}
	v, _ := cfg.Get(key)
	return key, v
}
