// Package job turns a job's raw configuration into typed, validated settings: the job's
// identity, its inputs, commit and window intervals, checkpoint manager selection and
// the per-stream offset settings (samza.offset.default, samza.reset.offset), with
// Samza's key names and defaults.
//
// Parse reports every problem at once, each as a *config.Error naming the key and value.
// Keys lists every key Sluice reads and every Samza key it ignores or does not support,
// and CheckKeys turns the keys of a configuration that would have no effect into
// warnings.
package job

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// Keys and defaults, as Samza names them.
const (
	KeyJobName           = "job.name"
	KeyJobID             = "job.id"
	KeyContainerCount    = "job.container.count"
	KeyDefaultSystem     = "job.default.system"
	KeyInputs            = "task.inputs"
	KeyBroadcastInputs   = "task.broadcast.inputs"
	KeyTaskClass         = "task.class"
	KeyCommitMs          = "task.commit.ms"
	KeyCommitOnShutdown  = "task.commit.on.shutdown"
	KeyWindowMs          = "task.window.ms"
	KeyCheckpointFactory = "task.checkpoint.factory"
	KeyCheckpointPath    = "task.checkpoint.path"
	KeyCheckpointSystem  = "task.checkpoint.system"
	KeyAppName           = "app.name"
	KeyAppID             = "app.id"
	// KeyCoordinatorFactory must be static (or unset): containers share a job by
	// job.container.count and --container-id.
	KeyCoordinatorFactory = "job.coordinator.factory"
	// KeyGrouperFactory must be Samza's GroupByPartitionFactory (or unset): task
	// "Partition N" reads partition N of every input.
	KeyGrouperFactory = "job.systemstreampartition.grouper.factory"
	// KeyConfigStrict makes every configuration warning an error, as --strict does.
	KeyConfigStrict       = "job.config.strict"
	KeyPartitionMonitorMs = "job.partition.monitor.ms"
	KeyIgnoredExceptions  = "task.ignored.exceptions"
	KeyDeadLetterStream   = "task.dead.letter.stream"
	KeyShutdownMs         = "task.shutdown.ms"
	KeyGuarantee          = "task.processing.guarantee"
	DefaultJobID          = "1"
	DefaultCommitInterval = 60 * time.Second
	// DefaultExactlyOnceCommitInterval is task.commit.ms under exactly-once: outputs
	// become visible at commits, so they come often (Kafka Streams' default too).
	DefaultExactlyOnceCommitInterval = 100 * time.Millisecond
	// DefaultPartitionMonitorInterval is how often a running container looks for
	// input partitions added since it started.
	DefaultPartitionMonitorInterval = 5 * time.Second
	// DefaultShutdownTimeout bounds a stop: in-flight messages and the final commit.
	DefaultShutdownTimeout = 30 * time.Second
	// StaticCoordinator and KafkaCoordinator are the values of job.coordinator.factory.
	StaticCoordinator = "static"
	KafkaCoordinator  = "kafka"
	// Keys of the kafka coordinator.
	KeyCoordinatorSystem             = "job.coordinator.system"
	KeyCoordinatorSessionTimeoutMs   = "job.coordinator.session.timeout.ms"
	KeyCoordinatorRebalanceTimeoutMs = "job.coordinator.rebalance.timeout.ms"
	KeyCoordinatorReplicationFactor  = "job.coordinator.replication.factor"
	// Defaults of the kafka coordinator, chosen for fast failover.
	DefaultCoordinatorSessionTimeout   = 10 * time.Second
	DefaultCoordinatorRebalanceTimeout = 30 * time.Second
	// GroupByPartition is the only job.systemstreampartition.grouper.factory.
	GroupByPartition = "org.apache.samza.container.grouper.stream.GroupByPartitionFactory"
)

// OffsetType is where a partition without a usable checkpoint starts.
type OffsetType string

// The offset types of samza.offset.default.
const (
	Oldest   OffsetType = "oldest"
	Upcoming OffsetType = "upcoming"
	Newest   OffsetType = "newest"
)

// Factory aliases: Samza's Java class names map to Sluice's short names.
var systemAliases = map[string]string{
	"org.apache.samza.system.kafka.KafkaSystemFactory":                    "kafka",
	"org.apache.samza.system.inmemory.InMemorySystemFactory":              "inmem",
	"org.apache.samza.checkpoint.kafka.KafkaCheckpointManagerFactory":     "kafka",
	"org.apache.samza.checkpoint.file.FileSystemCheckpointManagerFactory": "filesystem",
}

// FactoryName normalises a factory value: Samza's Java class names become short names.
func FactoryName(v string) string {
	v = strings.TrimSpace(v)
	if short, ok := systemAliases[v]; ok {
		return short
	}
	return v
}

// Aliases are a program's other names for the factories it registers, such as the
// Java class names a job ported from Samza gives in systems.<s>.samza.factory and
// task.checkpoint.factory. Each maps an alias to the name the factory is registered
// under. Samza's class names for Sluice's own factories (FactoryName) need none.
type Aliases struct {
	// Systems is for systems.<s>.samza.factory values.
	Systems map[string]string
	// Checkpoints is for task.checkpoint.factory values.
	Checkpoints map[string]string
}

// resolve returns the name v stands for: the program's alias first, then Samza's.
func resolve(table map[string]string, v string) string {
	v = strings.TrimSpace(v)
	if name, ok := table[v]; ok {
		return name
	}
	return FactoryName(v)
}

// Config is a job's typed configuration.
type Config struct {
	// Raw is the whole configuration, for systems and tasks to read their own keys.
	Raw config.Config

	Name           string
	ID             string
	ContainerCount int
	DefaultSystem  string
	Inputs         []system.SystemStream
	// Broadcast is task.broadcast.inputs: partitions every task reads, each at its own
	// offset (sorted). They are not grouped into tasks with the other partitions.
	Broadcast   []system.SystemStreamPartition
	isBroadcast map[system.SystemStreamPartition]bool
	// resets are the consumer.auto.offset.reset policies of each system.
	resets    map[string]system.ResetPolicies
	TaskClass string
	// CommitInterval is task.commit.ms; zero or negative disables periodic commits.
	CommitInterval   time.Duration
	CommitOnShutdown bool
	// IgnoredErrors is task.ignored.exceptions: the errors (see task.Ignored) whose
	// messages are skipped instead of stopping the job; nil skips none.
	IgnoredErrors []string
	// DeadLetter is task.dead.letter.stream: where skipped messages are sent, if set.
	DeadLetter *system.SystemStream
	// ExactlyOnce is task.processing.guarantee=exactly-once: each commit puts a task's
	// outputs and its checkpoint in one Kafka transaction.
	ExactlyOnce bool
	// Coordinator is job.coordinator.factory: StaticCoordinator or KafkaCoordinator.
	Coordinator string
	// CoordinatorSystem is the Kafka system of the kafka coordinator's group
	// (job.coordinator.system, else the checkpoint system, else job.default.system).
	CoordinatorSystem string
	// CoordinatorSessionTimeout and CoordinatorRebalanceTimeout are the group's.
	CoordinatorSessionTimeout, CoordinatorRebalanceTimeout time.Duration
	// CoordinatorReplicationFactor is the task topic's, when created.
	CoordinatorReplicationFactor int
	// ShutdownTimeout is task.shutdown.ms: how long a stop (or the removal of a task)
	// waits for in-flight messages and the final commit.
	ShutdownTimeout time.Duration
	// PartitionMonitorInterval is job.partition.monitor.ms: how often a running
	// container compares the partition counts of its inputs with those it started with.
	PartitionMonitorInterval time.Duration
	// WindowInterval is task.window.ms; zero means not set (the task's own default
	// applies), negative means windowing is off (Samza's default, -1).
	WindowInterval time.Duration

	// CheckpointFactory is the short name of the checkpoint manager, or "" for none.
	CheckpointFactory string
	CheckpointPath    string
	// CheckpointSystem is task.checkpoint.system, else job.default.system.
	CheckpointSystem string

	// SystemFactories maps each configured system to the short name of its factory.
	SystemFactories map[string]string

	// Strict is job.config.strict: configuration warnings are errors.
	Strict bool
}

// Parse validates cfg and returns the typed configuration and every problem found. The
// Config is returned even with problems, so callers can go on checking other keys and
// report everything at once; use it only when the error is nil.
func Parse(cfg config.Config) (*Config, error) { return ParseWithAliases(cfg, Aliases{}) }

// ParseWithAliases is Parse for a program with its own names for factories: factory
// values are resolved through aliases (then Samza's class names) before they are
// checked, so SystemFactories and CheckpointFactory hold registered names.
func ParseWithAliases(cfg config.Config, aliases Aliases) (*Config, error) {
	var p config.Problems
	c := &Config{Raw: cfg, SystemFactories: map[string]string{}}

	c.Name = cfg.GetOr(KeyJobName, cfg.GetOr(KeyAppName, ""))
	if c.Name == "" {
		p.Add(KeyJobName, "", "is required (the job's name, used in checkpoint names)")
	}
	c.ID = cfg.GetOr(KeyJobID, cfg.GetOr(KeyAppID, DefaultJobID))
	switch v := strings.ToLower(cfg.GetOr(KeyCoordinatorFactory, StaticCoordinator)); v {
	case StaticCoordinator, KafkaCoordinator:
		c.Coordinator = v
	default:
		p.Add(KeyCoordinatorFactory, cfg.GetOr(KeyCoordinatorFactory, ""), "must be %s (containers share the job by %s and --container-id) or %s (they share its tasks through a Kafka consumer group); Samza's ZooKeeper and passthrough coordinators are not supported",
			StaticCoordinator, KeyContainerCount, KafkaCoordinator)
	}
	if v := cfg.GetOr(KeyGrouperFactory, GroupByPartition); v != GroupByPartition {
		p.Add(KeyGrouperFactory, v, "only %s is supported: task \"Partition N\" reads partition N of every input", GroupByPartition)
	}
	var err error
	c.Strict, err = cfg.Bool(KeyConfigStrict, false)
	p.AddErr(err)

	n, err := cfg.Int(KeyContainerCount, 1)
	p.AddErr(err)
	if err == nil && n < 1 {
		p.Add(KeyContainerCount, fmt.Sprint(n), "must be at least 1")
	}
	c.ContainerCount = int(n)
	c.DefaultSystem = cfg.GetOr(KeyDefaultSystem, "")

	for _, key := range cfg.Keys() {
		rest, ok := strings.CutPrefix(key, "systems.")
		if !ok {
			continue
		}
		name, sub, ok := strings.Cut(rest, ".")
		if !ok || sub != "samza.factory" {
			continue
		}
		v := cfg.GetOr(key, "")
		if v == "" {
			p.Add(key, "", "is blank; name a system factory (kafka or inmem)")
			continue
		}
		c.SystemFactories[name] = resolve(aliases.Systems, v)
	}
	c.resets = map[string]system.ResetPolicies{}
	for name := range c.SystemFactories {
		c.resets[name] = system.ReadResetPolicies(&p, cfg, name)
	}

	inputs, _ := cfg.Get(KeyInputs)
	if strings.TrimSpace(inputs) == "" {
		p.Add(KeyInputs, "", "is required: a comma-separated list of system.stream")
	}
	seen := map[system.SystemStream]bool{}
	for _, item := range strings.Split(inputs, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		ss, err := system.ParseSystemStream(item)
		if err != nil {
			p.Add(KeyInputs, inputs, "input %s", err)
			continue
		}
		if _, ok := c.SystemFactories[ss.System]; !ok {
			p.Add(KeyInputs, inputs, "input %s names system %q, which has no systems.%s.samza.factory", ss, ss.System, ss.System)
		}
		if !seen[ss] {
			seen[ss] = true
			c.Inputs = append(c.Inputs, ss)
		}
	}

	c.parseBroadcast(&p)

	c.TaskClass = cfg.GetOr(KeyTaskClass, "")
	if c.TaskClass == "" {
		p.Add(KeyTaskClass, "", "is required: the name of the task to run")
	}

	switch v := strings.ToLower(strings.ReplaceAll(cfg.GetOr(KeyGuarantee, "at-least-once"), "_", "-")); v {
	case "at-least-once":
	case "exactly-once", "exactly-once-v2":
		c.ExactlyOnce = true
	default:
		p.Add(KeyGuarantee, cfg.GetOr(KeyGuarantee, ""), "must be at-least-once or exactly-once (Kafka Streams' exactly_once and exactly_once_v2 are accepted too)")
	}
	commitDefault := DefaultCommitInterval
	if c.ExactlyOnce {
		commitDefault = DefaultExactlyOnceCommitInterval
	}
	c.CommitInterval, err = cfg.Millis(KeyCommitMs, commitDefault)
	p.AddErr(err)
	c.CommitOnShutdown, err = cfg.Bool(KeyCommitOnShutdown, true)
	p.AddErr(err)
	for _, e := range strings.Split(cfg.GetOr(KeyIgnoredExceptions, ""), ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.IgnoredErrors = append(c.IgnoredErrors, e)
		}
	}
	if v := cfg.GetOr(KeyDeadLetterStream, ""); v != "" {
		ss, err := system.ParseSystemStream(v)
		switch _, defined := c.SystemFactories[ss.System]; {
		case err != nil:
			p.Add(KeyDeadLetterStream, v, "%s", err)
		case !defined:
			p.Add(KeyDeadLetterStream, v, "names system %q, which has no systems.%s.samza.factory", ss.System, ss.System)
		case len(c.IgnoredErrors) == 0:
			p.Add(KeyDeadLetterStream, v, "receives the messages skipped under %s, which is not set: set it too (e.g. to * or skippable)", KeyIgnoredExceptions)
		default:
			c.DeadLetter = &ss
		}
	}
	c.ShutdownTimeout, err = cfg.Millis(KeyShutdownMs, DefaultShutdownTimeout)
	p.AddErr(err)
	if err == nil && c.ShutdownTimeout <= 0 {
		p.Add(KeyShutdownMs, cfg.GetOr(KeyShutdownMs, ""), "must be positive: how long a stop waits for in-flight messages and the final commit")
	}
	c.PartitionMonitorInterval, err = cfg.Millis(KeyPartitionMonitorMs, DefaultPartitionMonitorInterval)
	p.AddErr(err)
	if err == nil && c.PartitionMonitorInterval <= 0 {
		p.Add(KeyPartitionMonitorMs, cfg.GetOr(KeyPartitionMonitorMs, ""), "must be positive: partitions added to an input while the job runs must be noticed")
	}
	c.WindowInterval, err = cfg.Millis(KeyWindowMs, 0)
	p.AddErr(err)
	if err == nil && c.WindowInterval == 0 && cfg.Has(KeyWindowMs) {
		c.WindowInterval = -1 // 0 turns windowing off, as a negative value (Samza's -1) does
	}

	if v := cfg.GetOr(KeyCheckpointFactory, ""); v != "" {
		c.CheckpointFactory = resolve(aliases.Checkpoints, v)
		switch c.CheckpointFactory {
		case "filesystem":
			c.CheckpointPath = cfg.GetOr(KeyCheckpointPath, "")
			if c.CheckpointPath == "" {
				p.Add(KeyCheckpointPath, "", "is required by the filesystem checkpoint manager: a directory")
			}
		case "kafka":
			c.CheckpointSystem = cfg.GetOr(KeyCheckpointSystem, c.DefaultSystem)
			switch f, ok := c.SystemFactories[c.CheckpointSystem]; {
			case c.CheckpointSystem == "":
				p.Add(KeyCheckpointSystem, "", "is required by the kafka checkpoint manager (or set %s)", KeyDefaultSystem)
			case !ok:
				p.Add(KeyCheckpointSystem, c.CheckpointSystem, "names a system with no systems.%s.samza.factory", c.CheckpointSystem)
			case f != "kafka":
				p.Add(KeyCheckpointSystem, c.CheckpointSystem, "the kafka checkpoint manager needs a kafka system, not %s", f)
			}
		}
	}

	c.parseCoordinator(&p)
	c.checkExactlyOnce(&p)
	c.validateOffsetKeys(&p)
	c.checkDeleteCommitted(&p)
	return c, p.Err()
}

// validateOffsetKeys checks every samza.offset.default, samza.reset.offset and
// consumer.auto.offset.reset key of every system and stream, set or not used.
func (c *Config) validateOffsetKeys(p *config.Problems) {
	for _, key := range c.Raw.Keys() {
		if !strings.HasPrefix(key, "systems.") {
			continue
		}
		v := c.Raw.GetOr(key, "")
		switch {
		case strings.HasSuffix(key, ".samza.offset.default"):
			if _, ok := parseOffsetType(v); !ok {
				p.Add(key, v, "must be oldest, upcoming or newest")
			}
		case strings.HasSuffix(key, ".samza.bootstrap"):
			if _, err := c.Raw.Bool(key, false); err != nil {
				p.AddErr(err)
			}
		case strings.HasSuffix(key, ".samza.priority"):
			if _, err := c.Raw.Int(key, 0); err != nil {
				p.AddErr(err)
			}
		case strings.HasSuffix(key, ".samza.reset.offset"):
			if _, err := c.Raw.Bool(key, false); err != nil {
				p.AddErr(err)
			}
		}
	}
}

func parseOffsetType(v string) (OffsetType, bool) {
	switch t := OffsetType(strings.ToLower(strings.TrimSpace(v))); t {
	case Oldest, Upcoming, Newest:
		return t, true
	}
	return "", false
}

func streamKey(ss system.SystemStream, suffix string) string {
	return "systems." + ss.System + ".streams." + ss.Stream + "." + suffix
}

// OffsetDefault is where a partition of ss without a checkpoint starts: the stream's
// samza.offset.default, else the system's (default.stream. form first), else upcoming.
func (c *Config) OffsetDefault(ss system.SystemStream) (OffsetType, string) {
	for _, key := range []string{
		streamKey(ss, "samza.offset.default"),
		"systems." + ss.System + ".default.stream.samza.offset.default",
		"systems." + ss.System + ".samza.offset.default",
	} {
		if t, ok := parseOffsetType(c.Raw.GetOr(key, "")); ok {
			return t, key
		}
	}
	return Upcoming, "built-in default"
}

// ResetOffset reports whether ss ignores its checkpoint (samza.reset.offset=true).
func (c *Config) ResetOffset(ss system.SystemStream) bool {
	for _, key := range []string{
		streamKey(ss, "samza.reset.offset"),
		"systems." + ss.System + ".default.stream.samza.reset.offset",
	} {
		if c.Raw.Has(key) {
			v, _ := c.Raw.Bool(key, false)
			return v
		}
	}
	return false
}

// AutoOffsetReset is the policy for a checkpointed offset of ss that no longer exists.
func (c *Config) AutoOffsetReset(ss system.SystemStream) system.ResetPolicy {
	return c.resets[ss.System].Of(ss.Stream)
}

// InputStreams returns the input streams of system sys.
func (c *Config) InputStreams(sys string) []string {
	var out []string
	for _, in := range c.Inputs {
		if in.System == sys {
			out = append(out, in.Stream)
		}
	}
	return out
}

// TaskName is the name of the task for partition n ("Partition n").
func TaskName(partition int32) string { return fmt.Sprintf("Partition %d", partition) }

// TaskPartition returns the partition number of a task named by TaskName.
func TaskPartition(name string) (int32, bool) {
	n, ok := strings.CutPrefix(name, "Partition ")
	if !ok {
		return 0, false
	}
	p, err := strconv.ParseInt(n, 10, 32)
	return int32(p), err == nil && p >= 0
}

// CompareTaskNames orders task names naturally: "Partition 2" before "Partition 10",
// other names by their text.
func CompareTaskNames(a, b string) int {
	pa, oka := TaskPartition(a)
	pb, okb := TaskPartition(b)
	if oka && okb && pa != pb {
		return cmp.Compare(pa, pb)
	}
	return strings.Compare(a, b)
}

// parseCoordinator reads the kafka coordinator's keys.
func (c *Config) parseCoordinator(p *config.Problems) {
	cfg := c.Raw
	var err error
	c.CoordinatorSessionTimeout, err = cfg.Millis(KeyCoordinatorSessionTimeoutMs, DefaultCoordinatorSessionTimeout)
	p.AddErr(err)
	c.CoordinatorRebalanceTimeout, err = cfg.Millis(KeyCoordinatorRebalanceTimeoutMs, DefaultCoordinatorRebalanceTimeout)
	p.AddErr(err)
	rf, err := cfg.Int(KeyCoordinatorReplicationFactor, 3)
	p.AddErr(err)
	c.CoordinatorReplicationFactor = int(rf)
	if c.Coordinator != KafkaCoordinator {
		return
	}
	if c.CoordinatorSessionTimeout <= 0 {
		p.Add(KeyCoordinatorSessionTimeoutMs, cfg.GetOr(KeyCoordinatorSessionTimeoutMs, ""), "must be positive")
	}
	if c.CoordinatorRebalanceTimeout <= 0 {
		p.Add(KeyCoordinatorRebalanceTimeoutMs, cfg.GetOr(KeyCoordinatorRebalanceTimeoutMs, ""), "must be positive")
	}
	if rf < 1 || rf > 32767 {
		p.Add(KeyCoordinatorReplicationFactor, fmt.Sprint(rf), "must be 1..32767")
	}
	c.CoordinatorSystem = cfg.GetOr(KeyCoordinatorSystem, "")
	key := KeyCoordinatorSystem
	if c.CoordinatorSystem == "" {
		key = KeyCheckpointSystem
		c.CoordinatorSystem = c.CheckpointSystem
	}
	if c.CoordinatorSystem == "" {
		key = KeyDefaultSystem
		c.CoordinatorSystem = c.DefaultSystem
	}
	// Whether the system can hold the group is the coordinator's to say.
	switch _, ok := c.SystemFactories[c.CoordinatorSystem]; {
	case c.CoordinatorSystem == "":
		p.Add(KeyCoordinatorSystem, "", "is required by job.coordinator.factory=kafka (or use the kafka checkpoint manager, or set %s)", KeyDefaultSystem)
	case !ok:
		p.Add(key, c.CoordinatorSystem, "names a system with no systems.%s.samza.factory", c.CoordinatorSystem)
	}
	if cfg.Has(KeyContainerCount) {
		p.Add(KeyContainerCount, cfg.GetOr(KeyContainerCount, ""), "does not apply with job.coordinator.factory=kafka: the group shares the tasks among however many containers run")
	}
}

// checkExactlyOnce refuses what exactly-once cannot cover: checkpoints outside Kafka,
// and commits that do not come before the broker aborts an open transaction.
func (c *Config) checkExactlyOnce(p *config.Problems) {
	if !c.ExactlyOnce {
		return
	}
	if c.CheckpointFactory != "kafka" {
		p.Add(KeyGuarantee, c.Raw.GetOr(KeyGuarantee, ""), "needs the kafka checkpoint manager (task.checkpoint.factory=kafka): a task's outputs and its checkpoint are committed in one Kafka transaction")
		return
	}
	if c.CommitInterval <= 0 {
		p.Add(KeyCommitMs, c.Raw.GetOr(KeyCommitMs, ""), "must be positive under exactly-once: outputs become visible only when their transaction commits")
		return
	}
	key := "systems." + c.CheckpointSystem + ".producer.transaction.timeout.ms"
	timeout, err := c.Raw.Millis(key, 10*time.Second)
	if err == nil && c.CommitInterval >= timeout {
		p.Add(KeyCommitMs, fmt.Sprint(c.CommitInterval.Milliseconds()), "must be below %s (%d): the broker aborts a transaction left open longer", key, timeout.Milliseconds())
	}
}

// parseBroadcast reads task.broadcast.inputs: a comma-separated list of
// system.stream#N or system.stream#[N-M] (Samza's format).
func (c *Config) parseBroadcast(p *config.Problems) {
	v := c.Raw.GetOr(KeyBroadcastInputs, "")
	c.isBroadcast = map[system.SystemStreamPartition]bool{}
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		ssps, err := parseBroadcastItem(item)
		if err != nil {
			p.Add(KeyBroadcastInputs, v, "%s: %v", item, err)
			continue
		}
		if _, ok := c.SystemFactories[ssps[0].System]; !ok {
			p.Add(KeyBroadcastInputs, v, "%s names system %q, which has no systems.%s.samza.factory", item, ssps[0].System, ssps[0].System)
			continue
		}
		for _, ssp := range ssps {
			if !c.isBroadcast[ssp] {
				c.isBroadcast[ssp] = true
				c.Broadcast = append(c.Broadcast, ssp)
			}
		}
	}
	slices.SortFunc(c.Broadcast, system.SystemStreamPartition.Compare)
}

// parseBroadcastItem parses system.stream#N or system.stream#[N-M].
func parseBroadcastItem(item string) ([]system.SystemStreamPartition, error) {
	i := strings.LastIndexByte(item, '#')
	if i < 0 {
		return nil, fmt.Errorf("want system.stream#N or system.stream#[N-M]")
	}
	ss, err := system.ParseSystemStream(item[:i])
	if err != nil {
		return nil, err
	}
	part := item[i+1:]
	from, to := part, part
	if inner, ok := strings.CutPrefix(part, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		var dash bool
		from, to, dash = strings.Cut(inner, "-")
		if !ok || !dash {
			return nil, fmt.Errorf("want a partition range as #[N-M], not #%s", part)
		}
	}
	n, err1 := strconv.ParseInt(from, 10, 32)
	m, err2 := strconv.ParseInt(to, 10, 32)
	switch {
	case err1 != nil || err2 != nil || n < 0 || m < 0:
		return nil, fmt.Errorf("partitions must be numbers from 0, as #N or #[N-M], not #%s", part)
	case n > m:
		return nil, fmt.Errorf("the range #%s is empty (its first partition is after its last)", part)
	}
	var out []system.SystemStreamPartition
	for q := n; q <= m; q++ {
		out = append(out, system.NewSSP(ss.System, ss.Stream, int32(q)))
	}
	return out, nil
}

// IsBroadcast reports whether ssp is one of task.broadcast.inputs.
func (c *Config) IsBroadcast(ssp system.SystemStreamPartition) bool { return c.isBroadcast[ssp] }

// ReadStreams returns the streams the job reads: its inputs, then the streams of its
// broadcast partitions that are not inputs too.
func (c *Config) ReadStreams() []system.SystemStream {
	out := slices.Clone(c.Inputs)
	for _, ssp := range c.Broadcast {
		if !slices.Contains(out, ssp.SystemStream) {
			out = append(out, ssp.SystemStream)
		}
	}
	return out
}

// deleteCommittedKey returns the key that says whether the messages of ss below the
// job's checkpoints are deleted (samza.delete.committed.messages: per stream, for the
// system's streams, or for the system), with its value; "" when none is set.
func (c *Config) deleteCommittedKey(ss system.SystemStream) (string, bool) {
	for _, key := range []string{
		streamKey(ss, "samza.delete.committed.messages"),
		"systems." + ss.System + ".default.stream.samza.delete.committed.messages",
		"systems." + ss.System + ".samza.delete.committed.messages",
	} {
		if c.Raw.Has(key) {
			v, _ := c.Raw.Bool(key, false)
			return key, v
		}
	}
	return "", false
}

// DeleteCommitted reports whether the messages of input ss below the job's
// checkpoints are deleted after each checkpoint (the system does it).
func (c *Config) DeleteCommitted(ss system.SystemStream) bool {
	_, on := c.deleteCommittedKey(ss)
	return on
}

// checkDeleteCommitted refuses deleting committed messages where the job needs them
// again: without checkpoints, or of a stream it rereads on every start.
func (c *Config) checkDeleteCommitted(p *config.Problems) {
	for _, in := range c.Inputs {
		key, on := c.deleteCommittedKey(in)
		if !on {
			continue
		}
		switch {
		case c.CheckpointFactory == "":
			p.Add(key, "true", "needs checkpoints (task.checkpoint.factory): messages are deleted below the offsets the job has checkpointed")
		case c.ResetOffset(in):
			p.Add(key, "true", "would delete messages of %s, which has samza.reset.offset=true: the job reads it again from its default offset on every start; set %s=false", in, streamKey(in, "samza.delete.committed.messages"))
		}
	}
	for _, ss := range c.ReadStreams()[len(c.Inputs):] {
		if key, on := c.deleteCommittedKey(ss); on && key == streamKey(ss, "samza.delete.committed.messages") {
			p.Add(key, "true", "%s is a broadcast input, read by every task from its own offset: its messages are never deleted", ss)
		}
	}
}

// Bootstrap reports whether ss is a bootstrap stream (samza.bootstrap=true, per stream
// or for the system's streams): each task reads its partitions of it up to the end
// they had when the task started before it is given any message of its other inputs.
func (c *Config) Bootstrap(ss system.SystemStream) bool {
	for _, key := range []string{streamKey(ss, "samza.bootstrap"), "systems." + ss.System + ".default.stream.samza.bootstrap"} {
		if c.Raw.Has(key) {
			v, _ := c.Raw.Bool(key, false)
			return v
		}
	}
	return false
}

// Priority is ss's samza.priority (default 0): when a task has messages of several
// inputs waiting, those of the higher priority come first.
func (c *Config) Priority(ss system.SystemStream) int {
	for _, key := range []string{streamKey(ss, "samza.priority"), "systems." + ss.System + ".default.stream.samza.priority"} {
		if c.Raw.Has(key) {
			v, _ := c.Raw.Int(key, 0)
			return int(v)
		}
	}
	return 0
}
