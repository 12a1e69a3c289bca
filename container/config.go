package container

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// streamNameValidator is implemented by systems that restrict stream names (Kafka's
// topic names), so that a bad name is a configuration error before anything runs.
type streamNameValidator interface {
	ValidateStreamName(stream string) error
}

// checkStreams checks that every input and every output the task declares names a
// configured system, and a stream name that system accepts. It returns the declared
// outputs.
func checkStreams(p *config.Problems, cfg config.Config, jc *job.Config, def task.Definition, systems map[string]system.System) []system.SystemStream {
	inputs, _ := cfg.Get(job.KeyInputs)
	for _, in := range jc.Inputs {
		if v, ok := systems[in.System].(streamNameValidator); ok {
			if err := v.ValidateStreamName(in.Stream); err != nil {
				p.Add(job.KeyInputs, inputs, "input %s: %v", in, err)
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
	if def.Outputs == nil {
		return nil
	}
	var outs []system.SystemStream
	err := guard(jc.TaskClass, "declaring its outputs", func() (err error) {
		outs, err = def.Outputs(cfg)
		return err
	})
	if err != nil {
		p.AddErr(err)
		return nil
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
	return outs
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

// checkSystemAndStreamKeys warns of systems.* keys that can have no effect: those of a
// system that is not configured (no systems.<s>.samza.factory), and per-stream keys
// (systems.<s>.streams.<stream>.*) of a stream that is neither an input nor an output
// of the job, such as a misspelt stream name, which would otherwise leave the real
// stream at its defaults without a word.
func checkSystemAndStreamKeys(cfg config.Config, jc *job.Config, outputs []system.SystemStream) []*config.Error {
	streams := jc.ReadStreams() // inputs and broadcast inputs
	streams = append(streams, outputs...)
	if jc.DeadLetter != nil {
		streams = append(streams, *jc.DeadLetter)
	}
	var warns []*config.Error
	for _, key := range cfg.Keys() {
		rest, ok := strings.CutPrefix(key, "systems.")
		if !ok {
			continue
		}
		sys, sub, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		v, _ := cfg.Get(key)
		if _, ok := jc.SystemFactories[sys]; !ok {
			warns = append(warns, &config.Error{Key: key, Value: v, Where: cfg.Where(key),
				Msg: fmt.Sprintf("system %q is not configured (no systems.%s.samza.factory), so this key has no effect; configured systems: %s",
					sys, sys, strings.Join(slices.Sorted(maps.Keys(jc.SystemFactories)), ", "))})
			continue
		}
		named, ok := strings.CutPrefix(sub, "streams.")
		if !ok {
			continue
		}
		known := slices.ContainsFunc(streams, func(ss system.SystemStream) bool {
			return ss.System == sys && strings.HasPrefix(named, ss.Stream+".")
		})
		if known || jc.CheckpointSystem == sys && strings.HasPrefix(named, checkpointTopic(cfg, jc)+".") {
			continue
		}
		var names []string
		for _, ss := range streams {
			if ss.System == sys {
				names = append(names, ss.Stream)
			}
		}
		warns = append(warns, &config.Error{Key: key, Value: v, Where: cfg.Where(key),
			Msg: fmt.Sprintf("names a stream of system %s that is neither an input nor an output of the job, so it has no effect (the job's streams there: %s)",
				sys, strings.Join(names, ", "))})
	}
	return warns
}

// checkpointTopic is the Kafka checkpoint topic's name (see package kafka).
func checkpointTopic(cfg config.Config, jc *job.Config) string {
	return cfg.GetOr("task.checkpoint.topic", "__samza_checkpoint_"+jc.Name+"_"+jc.ID)
}
