package jobmodel

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

// CheckKeys reports the keys of cfg that have no effect (job.CheckKeys, with taskKeys
// and otherKeys known too), and the systems.* keys that can have none: of a system
// that is not configured, or of a stream that is neither an input nor one of outputs.
// With strict (or job.config.strict), each warning is a problem added to p instead.
func CheckKeys(p *config.Problems, cfg config.Config, jc *job.Config, taskKeys, otherKeys []string, outputs []system.SystemStream, strict bool) job.KeyReport {
	keys := job.CheckKeys(cfg, taskKeys, otherKeys)
	keys.Warnings = append(keys.Warnings, streamKeyWarnings(cfg, jc, outputs)...)
	if strict || jc.Strict {
		for _, w := range keys.Warnings {
			e := *w
			e.Msg += " (an error, as configuration checking is strict)"
			p.AddErr(&e)
		}
		keys.Warnings = nil
	}
	return keys
}

// streamKeyWarnings warns of systems.* keys that can have no effect: those of a
// system that is not configured (no systems.<s>.samza.factory), and per-stream keys
// (systems.<s>.streams.<stream>.*) of a stream that is neither an input nor an output
// of the job, such as a misspelt stream name, which would otherwise leave the real
// stream at its defaults without a word.
func streamKeyWarnings(cfg config.Config, jc *job.Config, outputs []system.SystemStream) []*config.Error {
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
