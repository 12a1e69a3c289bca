package job

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/config"
)

// KeyStatus says what Sluice does with a key of the registry.
type KeyStatus int

const (
	// Read keys are read by Sluice.
	Read KeyStatus = iota
	// Ignored keys are Samza's and mean nothing in Sluice (how a JVM is launched, serdes
	// of a runtime that passes bytes, ...): they are ignored without a warning.
	Ignored
	// Unsupported keys are Samza's for features Sluice lacks; setting one is a warning,
	// because the job would not do what the key asks.
	Unsupported
)

// Key is one entry of the key registry.
type Key struct {
	// Pattern is the key. In it <system> and <name> stand for one dot-free segment,
	// <stream> for one or more segments (stream names may contain dots), and a final
	// ".*" for one or more segments of any kind.
	Pattern string
	Status  KeyStatus
	// Note says why an ignored or unsupported key has no effect.
	Note string
}

// registry lists every key Sluice reads and every Samza key it knowingly ignores or
// does not support. It is the one list CheckKeys and docs/configuration.md follow:
// a package that reads a new key adds a line here (grouped by the package that reads
// it), and a task declares its own keys in task.Definition.Keys instead.
var registry = []Key{
	// Package job.
	{Pattern: KeyJobName},
	{Pattern: KeyJobID},
	{Pattern: KeyAppName},
	{Pattern: KeyAppID},
	{Pattern: KeyContainerCount},
	{Pattern: KeyDefaultSystem},
	{Pattern: KeyCoordinatorFactory},
	{Pattern: KeyGrouperFactory},
	{Pattern: KeyConfigStrict},
	{Pattern: KeyInputs},
	{Pattern: KeyBroadcastInputs},
	{Pattern: KeyTaskClass},
	{Pattern: KeyCommitMs},
	{Pattern: KeyCommitOnShutdown},
	{Pattern: KeyWindowMs},
	{Pattern: KeyCheckpointFactory},
	{Pattern: KeyCheckpointPath},
	{Pattern: KeyCheckpointSystem},
	{Pattern: "systems.<system>.samza.factory"},
	{Pattern: "systems.<system>.samza.offset.default"},
	{Pattern: "systems.<system>.default.stream.samza.offset.default"},
	{Pattern: "systems.<system>.default.stream.samza.reset.offset"},
	{Pattern: "systems.<system>.streams.<stream>.samza.offset.default"},
	{Pattern: "systems.<system>.streams.<stream>.samza.reset.offset"},

	// Package container (the run loop).
	{Pattern: "job.partition.monitor.ms"},
	{Pattern: KeyShutdownMs},
	{Pattern: KeyGuarantee},
	{Pattern: "task.ignored.exceptions"},
	{Pattern: "task.dead.letter.stream"},

	// Package cli: the HTTP endpoint of `sluice run` (docs/operations.md).
	{Pattern: "job.http.listen"},
	{Pattern: "job.http.stall.ms"},
	{Pattern: "metrics.partition.labels"},

	// Package kafka: the checkpoint manager. The system's own keys,
	// systems.<system>.consumer.* and .producer.*, are checked by the system.
	{Pattern: "task.checkpoint.topic"},
	{Pattern: "task.checkpoint.replication.factor"},
	{Pattern: "task.checkpoint.write.timeout.ms"},
	{Pattern: "task.checkpoint.mirror.enabled"},
	{Pattern: "task.checkpoint.mirror.group"},

	// Samza keys with no meaning in Sluice.
	{Pattern: "job.factory.class", Status: Ignored, Note: "a Sluice container is a `sluice run` process"},
	{Pattern: KeyCoordinatorSystem},
	{Pattern: KeyCoordinatorReplicationFactor},
	{Pattern: KeyCoordinatorSessionTimeoutMs},
	{Pattern: KeyCoordinatorRebalanceTimeoutMs},
	{Pattern: "job.coordinator.segment.bytes", Status: Ignored, Note: "Sluice has no coordinator stream"},
	{Pattern: "job.config.loader.factory", Status: Ignored, Note: "Sluice reads the file given by --config-path"},
	{Pattern: "job.config.loader.properties.path", Status: Ignored, Note: "Sluice reads the file given by --config-path"},
	{Pattern: "job.checkpoint.validation.enabled", Status: Ignored, Note: "Sluice always validates checkpoints"},
	{Pattern: "job.container.thread.pool.size", Status: Ignored, Note: "every task runs on a goroutine of its own"},
	{Pattern: "job.container.single.thread.mode", Status: Ignored, Note: "every task runs on a goroutine of its own"},
	{Pattern: "job.container.commit.thread.pool.size", Status: Ignored, Note: "every task commits on its own goroutine"},
	{Pattern: "job.container.commit.thread.pool.max.size", Status: Ignored, Note: "every task commits on its own goroutine"},
	{Pattern: "job.changelog.system", Status: Ignored, Note: "Sluice has no state stores"},
	{Pattern: "job.logged.store.base.dir", Status: Ignored, Note: "Sluice has no state stores"},
	{Pattern: "job.non-logged.store.base.dir", Status: Ignored, Note: "Sluice has no state stores"},
	{Pattern: "job.host-affinity.enabled", Status: Ignored, Note: "a YARN setting"},
	{Pattern: "job.autosizing.*", Status: Ignored, Note: "a YARN setting"},
	{Pattern: "job.security.manager.factory", Status: Ignored, Note: "a YARN setting"},
	{Pattern: "job.jmx.enabled", Status: Ignored, Note: "Sluice has no JMX"},
	{Pattern: "job.diagnostics.enabled", Status: Ignored, Note: "Sluice logs status lines instead"},
	{Pattern: "app.class", Status: Ignored, Note: "the task is named by task.class"},
	{Pattern: "app.runner.class", Status: Ignored, Note: "a Sluice container is a `sluice run` process"},
	{Pattern: "app.main.class", Status: Ignored, Note: "a Sluice container is a `sluice run` process"},
	{Pattern: "app.main.args", Status: Ignored, Note: "a Sluice container is a `sluice run` process"},
	{Pattern: "app.mode", Status: Ignored, Note: "every Sluice job is a stream job"},
	{Pattern: "app.run.id", Status: Ignored, Note: "every Sluice job is a stream job"},
	{Pattern: "task.name.grouper.factory", Status: Ignored, Note: "tasks go to containers round-robin by partition number (job.container.count)"},
	{Pattern: "task.opts", Status: Ignored, Note: "Sluice runs no JVM"},
	{Pattern: "task.java.home", Status: Ignored, Note: "Sluice runs no JVM"},
	{Pattern: "task.execute", Status: Ignored, Note: "a Sluice container is a `sluice run` process"},
	{Pattern: "task.log4j.system", Status: Ignored, Note: "Sluice logs to stderr"},
	{Pattern: "task.chooser.class", Status: Ignored, Note: "each task takes its partitions' messages as they arrive"},
	{Pattern: "task.poll.interval.ms", Status: Ignored, Note: "the system's consumer settings govern polling"},
	{Pattern: "task.consumer.batch.size", Status: Ignored, Note: "the system's consumer settings govern polling"},
	{Pattern: "task.max.concurrency", Status: Ignored, Note: "a task processes one message at a time"},
	{Pattern: "task.callback.timeout.ms", Status: Ignored, Note: "tasks are called synchronously"},
	{Pattern: "task.async.commit", Status: Ignored, Note: "a commit waits for the task's current message"},
	{Pattern: "task.commit.max.delay.ms", Status: Ignored, Note: "a commit waits for the task's current message"},
	{Pattern: "task.commit.timeout.ms", Status: Ignored, Note: "task.checkpoint.write.timeout.ms bounds a Kafka checkpoint write"},
	{Pattern: "task.drop.producer.errors", Status: Ignored, Note: "Sluice never drops producer errors: a failed send fails the job, as with false"},
	{Pattern: "task.checkpoint.segment.bytes", Status: Ignored, Note: "the checkpoint topic is created with the broker's defaults and cleanup.policy=compact"},
	{Pattern: "task.checkpoint.max.message.bytes", Status: Ignored, Note: "the checkpoint topic is created with the broker's defaults and cleanup.policy=compact"},
	{Pattern: "task.checkpoint.read.versions", Status: Ignored, Note: "Sluice has its own checkpoint format (docs/checkpoint-format.md)"},
	{Pattern: "task.checkpoint.write.versions", Status: Ignored, Note: "Sluice has its own checkpoint format (docs/checkpoint-format.md)"},
	{Pattern: "task.live.checkpoint.max.age", Status: Ignored, Note: "Sluice has its own checkpoint format (docs/checkpoint-format.md)"},
	{Pattern: "task.transactional.state.*", Status: Ignored, Note: "Sluice has no state stores"},
	{Pattern: "systems.<system>.samza.key.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "systems.<system>.samza.msg.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "systems.<system>.default.stream.samza.key.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "systems.<system>.default.stream.samza.msg.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "systems.<system>.streams.<stream>.samza.key.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "systems.<system>.streams.<stream>.samza.msg.serde", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "serializers.registry.<name>.class", Status: Ignored, Note: "Sluice hands tasks keys and messages as bytes"},
	{Pattern: "metrics.reporters", Status: Ignored, Note: "Sluice has no metrics reporters: it serves Prometheus metrics over HTTP (job.http.listen, docs/operations.md)"},
	{Pattern: "metrics.reporter.<name>.*", Status: Ignored, Note: "Sluice has no metrics reporters: it serves Prometheus metrics over HTTP (job.http.listen, docs/operations.md)"},
	{Pattern: "metrics.timer.enabled", Status: Ignored, Note: "Sluice has no metrics reporters: it serves Prometheus metrics over HTTP (job.http.listen, docs/operations.md)"},
	{Pattern: "metrics.timer.debug.enabled", Status: Ignored, Note: "Sluice has no metrics reporters: it serves Prometheus metrics over HTTP (job.http.listen, docs/operations.md)"},
	{Pattern: "yarn.*", Status: Ignored, Note: "a YARN setting"},
	{Pattern: "cluster-manager.*", Status: Ignored, Note: "a YARN setting"},

	// Samza keys for features Sluice lacks.
	{Pattern: "job.coordinator.monitor-partition-change.frequency.ms", Status: Unsupported, Note: "set job.partition.monitor.ms instead"},
	{Pattern: "job.config.rewriters", Status: Unsupported, Note: "config rewriters are not supported: the file is used as written"},
	{Pattern: "job.config.rewriter.*", Status: Unsupported, Note: "config rewriters are not supported: the file is used as written"},
	{Pattern: "job.elasticity.factor", Status: Unsupported, Note: "Sluice runs one task per partition number"},
	{Pattern: "systems.<system>.samza.reset.offset", Status: Unsupported, Note: "Samza reads it per stream: set systems.<system>.default.stream.samza.reset.offset or systems.<system>.streams.<stream>.samza.reset.offset"},
	{Pattern: "systems.<system>.samza.delete.committed.messages"},
	{Pattern: "systems.<system>.default.stream.samza.delete.committed.messages"},
	{Pattern: "systems.<system>.streams.<stream>.samza.delete.committed.messages"},
	{Pattern: "systems.<system>.samza.delete.committed.messages.interval.ms"},
	{Pattern: "systems.<system>.default.stream.samza.bootstrap"},
	{Pattern: "systems.<system>.streams.<stream>.samza.bootstrap"},
	{Pattern: "systems.<system>.default.stream.samza.priority"},
	{Pattern: "systems.<system>.streams.<stream>.samza.priority"},
	{Pattern: "stores.*", Status: Unsupported, Note: "Sluice has no state stores"},
	{Pattern: "streams.*", Status: Unsupported, Note: "Samza's stream ids are not supported: name streams as system.stream and set their properties under systems.<system>.streams.<stream>."},
}

// checkedNamespaces are where a key that is in no registry is a warning: Sluice's and
// Samza's own. Keys elsewhere (systems.<system>.consumer.*, keys of the user's own
// code) are left to whoever reads them.
var checkedNamespaces = []string{
	"job.*",
	"task.*",
	"app.*",
	"metrics.*",
	"serializers.*",
	"systems.<system>.samza.*",
	"systems.<system>.default.stream.samza.*",
	"systems.<system>.streams.<stream>.samza.*",
}

// Keys returns the key registry: every key Sluice reads, and the Samza keys it
// ignores or does not support.
func Keys() []Key { return slices.Clone(registry) }

// KeyReport is what CheckKeys found.
type KeyReport struct {
	// Warnings are keys that do not do what they say: unknown keys (with the nearest
	// known key when one is close), Samza keys for features Sluice lacks, and keys
	// given more than once in the file.
	Warnings []*config.Error
	// Ignored are Samza keys that mean nothing in Sluice, each with the reason.
	Ignored []*config.Error
}

// CheckKeys checks every key of cfg against the registry, the keys the job's task
// reads (taskKeys, from task.Definition.Keys) and any other keys a program's own
// systems or checkpoint managers read (otherKeys); both are patterns as in Key.
//
// A key under job., task., app., metrics., serializers. or a system's samza.
// namespaces (systems.<system>.samza., .default.stream.samza. and
// .streams.<stream>.samza.) that none of them knows is a warning. A task.* key is the
// exception when the task declares no keys: it is taken to be the task's own unless it
// is close to a known key, and then it is a warning that suggests that key.
func CheckKeys(cfg config.Config, taskKeys, otherKeys []string) KeyReport {
	var r KeyReport
	own := slices.Concat(taskKeys, otherKeys)
	for _, key := range cfg.Keys() {
		v, _ := cfg.Get(key)
		if isSecret(key) {
			v = "(hidden)"
		}
		if lines := cfg.Lines(key); len(lines) > 1 {
			r.Warnings = append(r.Warnings, &config.Error{Key: key, Value: v, Where: cfg.File(),
				Msg: fmt.Sprintf("given on lines %s; the last one wins", joinLines(lines))})
		}
		where := cfg.Where(key)
		if k, ok := lookup(key); ok {
			switch k.Status {
			case Ignored:
				r.Ignored = append(r.Ignored, &config.Error{Key: key, Value: v, Where: where, Msg: "a Samza key Sluice ignores: " + k.Note})
			case Unsupported:
				r.Warnings = append(r.Warnings, &config.Error{Key: key, Value: v, Where: where, Msg: "not supported by Sluice, so it has no effect: " + k.Note})
			}
			continue
		}
		if slices.ContainsFunc(own, func(p string) bool { return match(p, key) }) {
			continue
		}
		if !slices.ContainsFunc(checkedNamespaces, func(p string) bool { return match(p, key) }) {
			continue
		}
		near, close := nearest(key, own)
		if strings.HasPrefix(key, "task.") && len(taskKeys) == 0 && !close {
			continue // the task's own, as far as anyone can tell
		}
		msg := "unknown key, ignored"
		if close {
			msg += "; did you mean " + near + "?"
		}
		r.Warnings = append(r.Warnings, &config.Error{Key: key, Value: v, Where: where, Msg: msg})
	}
	return r
}

// lookup returns the registry entry of key: an exact entry before a ".*" one.
func lookup(key string) (Key, bool) {
	for _, wild := range []bool{false, true} {
		for _, k := range registry {
			if strings.HasSuffix(k.Pattern, ".*") == wild && match(k.Pattern, key) {
				return k, true
			}
		}
	}
	return Key{}, false
}

func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"password", "secret", "token", "credential", "jaas"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// joinLines writes 3, 7 and 9 as "3, 7 and 9".
func joinLines(lines []int) string {
	s := make([]string, len(lines))
	for i, l := range lines {
		s[i] = fmt.Sprint(l)
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// match reports whether key fits pattern (see Key.Pattern).
func match(pattern, key string) bool {
	p, k := strings.Split(pattern, "."), strings.Split(key, ".")
	// fits[i][j]: p[i:] matches k[j:]; filled from the end, so a pattern with several
	// <stream> segments costs len(p)·len(k)² steps, not exponentially many.
	fits := make([][]bool, len(p)+1)
	for i := range fits {
		fits[i] = make([]bool, len(k)+1)
	}
	fits[len(p)][len(k)] = true
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(k); j >= 0; j-- {
			switch seg := p[i]; {
			case seg == "*":
				fits[i][j] = i == len(p)-1 && j < len(k) && !slices.Contains(k[j:], "")
			case seg == "<stream>":
				for n := j + 1; n <= len(k) && k[n-1] != ""; n++ {
					if fits[i+1][n] {
						fits[i][j] = true
						break
					}
				}
			case j == len(k):
			case isPlaceholder(seg):
				fits[i][j] = k[j] != "" && fits[i+1][j+1]
			default:
				fits[i][j] = seg == k[j] && fits[i+1][j+1]
			}
		}
	}
	return fits[0][0]
}

func isPlaceholder(seg string) bool {
	return len(seg) > 2 && seg[0] == '<' && seg[len(seg)-1] == '>'
}

// nearest returns the known key closest to key and whether it is close enough to be
// a likely typo of it. Patterns are filled in with key's own segments, so
// systems.kafka.samza.ofset.default is compared with systems.kafka.samza.offset.default.
func nearest(key string, own []string) (string, bool) {
	if len(key) > maxSuggestLen {
		return "", false
	}
	best, bestD := "", -1
	consider := func(pattern string) {
		cand, ok := instantiate(pattern, key)
		if !ok || cand == key || len(cand) > maxSuggestLen {
			return
		}
		d := distance(key, cand)
		if bestD < 0 || d < bestD || d == bestD && cand < best {
			best, bestD = cand, d
		}
	}
	for _, k := range registry {
		if k.Status != Unsupported {
			consider(k.Pattern)
		}
	}
	for _, p := range own {
		consider(p)
	}
	return best, bestD >= 0 && bestD <= maxTypo(key)
}

// maxSuggestLen bounds the keys nearest looks at: no known key is this long.
const maxSuggestLen = 200

// maxTypo is how many edits a key may be from a known one to count as its typo.
func maxTypo(key string) int {
	switch n := len(key); {
	case n < 10:
		return 1
	case n < 24:
		return 2
	}
	return 3
}

// instantiate fills pattern's placeholders with key's segments at the same places; a
// pattern ending in ".*" is no key and gives false.
func instantiate(pattern, key string) (string, bool) {
	p, k := strings.Split(pattern, "."), strings.Split(key, ".")
	out := make([]string, 0, len(p))
	i := 0
	for j, seg := range p {
		switch {
		case seg == "*":
			return "", false
		case seg == "<stream>":
			// The stream is what lies between the segments before it and the literal
			// segments after it.
			n := len(k) - i - (len(p) - j - 1)
			if n < 1 {
				n = 1
			}
			if i+n > len(k) {
				return "", false
			}
			out = append(out, k[i:i+n]...)
			i += n
		case isPlaceholder(seg):
			if i >= len(k) {
				return "", false
			}
			out = append(out, k[i])
			i++
		default:
			out = append(out, seg)
			i++
		}
	}
	return strings.Join(out, "."), true
}

// distance is the optimal string alignment distance between a and b: insertions,
// deletions, substitutions and transpositions of adjacent characters each count one.
func distance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows: two back (for transpositions), previous and current.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}
