package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// An Option adds to what Main's commands know: tasks, systems, checkpoint managers and
// configuration keys. Without options they know the built-in tasks (builtin.Tasks),
// the kafka and inmem systems and the kafka and filesystem checkpoint managers.
// Options apply in order; `quickstart`, whose job is a built-in one on the embedded
// broker, always runs with the built-ins alone.
type Option func(*registry)

// WithTasks adds tasks, by the task.class value that selects each. A task of a
// built-in task's name replaces it. To accept a Samza job's Java class name as well,
// add the task under that name too.
func WithTasks(tasks map[string]task.Definition) Option {
	return func(r *registry) {
		for name, def := range tasks {
			if strings.TrimSpace(name) == "" || def.New == nil {
				r.errs = append(r.errs, fmt.Errorf("WithTasks: task %q: want a name and a Definition with New", name))
				continue
			}
			r.tasks[name] = def
		}
	}
}

// WithSystem adds the system factory f under name, the systems.<s>.samza.factory value
// that selects it; each alias selects it too (such as the Java class name a job ported
// from Samza gives). A factory of a built-in's name replaces it and keeps its Samza
// class name, so WithSystem("kafka", kafka.NewFactory(kafka.WithClientOpts(...)))
// gives Sluice's own Kafka system franz-go options, which the kafka checkpoint
// manager's clients then use too. f must honour the contract of package system; a
// system whose consumers implement system.PartitionChanger and system.Pauser gets
// every feature of the container.
func WithSystem(name string, f system.Factory, aliases ...string) Option {
	return func(r *registry) {
		if f == nil {
			r.errs = append(r.errs, fmt.Errorf("WithSystem(%q): the factory is nil", name))
			return
		}
		if r.add("WithSystem", name, aliases, r.aliases.Systems, func(n string) bool { return r.systems[n] != nil }) {
			r.systems[name] = f
			r.kafkaReplaced = r.kafkaReplaced || name == "kafka"
		}
	}
}

// WithCheckpointManager adds the checkpoint manager factory f under name, the
// task.checkpoint.factory value that selects it; each alias selects it too. A factory
// of a built-in's name replaces it and keeps its Samza class name. The manager is
// what the checkpoint tool reads and rewrites as well: it should implement
// checkpoint.Lister (and checkpoint.Deleter for --replace), and a lock that tells
// the tool whether the job runs.
func WithCheckpointManager(name string, f container.CheckpointFactory, aliases ...string) Option {
	return func(r *registry) {
		if f == nil {
			r.errs = append(r.errs, fmt.Errorf("WithCheckpointManager(%q): the factory is nil", name))
			return
		}
		if r.add("WithCheckpointManager", name, aliases, r.aliases.Checkpoints, func(n string) bool { return r.checkpoints[n] != nil }) {
			r.checkpoints[name] = f
		}
	}
}

// WithKeys declares configuration keys that the program's own systems or checkpoint
// managers read, as patterns like task.Definition.Keys (task.checkpoint.dir,
// systems.<system>.nats.*), so that they draw no unknown-key warning. Keys under
// systems.<s>. outside its samza.* keys are never checked, so a system's own keys
// need no declaration there.
func WithKeys(patterns ...string) Option {
	return func(r *registry) { r.keys = append(r.keys, patterns...) }
}

// registry is what the commands of one Main call know.
type registry struct {
	tasks       map[string]task.Definition
	systems     map[string]system.Factory
	checkpoints map[string]container.CheckpointFactory
	aliases     job.Aliases
	keys        []string
	errs        []error // of the options, reported before any command runs
	// kafkaReplaced says the program gave a kafka system of its own: the metrics
	// endpoint then leaves its clients alone.
	kafkaReplaced bool
}

// newRegistry returns the built-ins with opts applied in order.
func newRegistry(opts []Option) *registry {
	r := &registry{
		tasks: builtin.Tasks(),
		systems: map[string]system.Factory{
			"inmem": inmem.NewStore().Factory(),
			"kafka": kafka.Factory,
		},
		checkpoints: map[string]container.CheckpointFactory{
			"filesystem": filesystemCheckpoints,
			"kafka":      kafkaCheckpoints,
		},
		aliases: job.Aliases{Systems: map[string]string{}, Checkpoints: map[string]string{}},
	}
	for _, o := range opts {
		if o != nil {
			o(r)
		}
	}
	return r
}

// add checks name and aliases of a factory kind whose aliases are table and whose
// names are those registered says, and records the aliases. Renaming is refused in
// both directions: an alias that is a registered name, and a name that is an alias.
func (r *registry) add(what, name string, aliases []string, table map[string]string, registered func(string) bool) bool {
	if name == "" || strings.TrimSpace(name) != name {
		r.errs = append(r.errs, fmt.Errorf("%s(%q): a name must be non-empty, without surrounding spaces", what, name))
		return false
	}
	if to, ok := table[name]; ok && to != name {
		r.errs = append(r.errs, fmt.Errorf("%s(%q): %q is already an alias of %q", what, name, name, to))
		return false
	}
	ok := true
	for _, a := range aliases {
		switch to, taken := table[a]; {
		case a == "" || strings.TrimSpace(a) != a:
			r.errs = append(r.errs, fmt.Errorf("%s(%q): alias %q must be non-empty, without surrounding spaces", what, name, a))
			ok = false
		case a == name:
		case registered(a):
			r.errs = append(r.errs, fmt.Errorf("%s(%q): alias %q is the name of another factory", what, name, a))
			ok = false
		case taken && to != name:
			r.errs = append(r.errs, fmt.Errorf("%s(%q): alias %q is already an alias of %q", what, name, a, to))
			ok = false
		default:
			table[a] = name
		}
	}
	return ok
}

// err returns the options' problems, nil when there are none.
func (r *registry) err() error { return errors.Join(r.errs...) }

// containerOptions returns the container options of a command run with r.
func (r *registry) containerOptions(log *slog.Logger, strict bool) container.Options {
	return container.Options{
		Tasks:       r.tasks,
		Systems:     r.systems,
		Checkpoints: r.checkpoints,
		Coordinators: map[string]container.CoordinatorFactory{
			job.KafkaCoordinator: kafkaCoordinator,
		},
		Aliases: r.aliases,
		Keys:    slices.Clone(r.keys),
		Logger:  log,
		Strict:  strict,
	}
}

// toolParts are a job's parts as the tools (checkpoint-tool, status) open them, with
// the configuration's warnings.
type toolParts struct {
	*jobmodel.Parts
	warnings []*config.Error
}

// jobParts builds the parts of the job of cfg for a tool, which runs no task: the
// job's task.class need not be one this program knows (the stock binary reads the
// checkpoints of a job built with its user's own program); when it is known, its keys
// and outputs count as the job's.
func (r *registry) jobParts(cfg config.Config, log *slog.Logger, strict bool) (*toolParts, error) {
	var p config.Problems
	f := jobmodel.Factories{Systems: r.systems, Checkpoints: r.checkpoints, Aliases: r.aliases}
	parts := jobmodel.Build(&p, cfg, f, log)
	var taskKeys []string
	var outputs []system.SystemStream
	if def, ok := r.tasks[parts.Job.TaskClass]; ok {
		taskKeys = def.Keys
		if def.Outputs != nil {
			var err error
			if outputs, err = declaredOutputs(parts.Job.TaskClass, def, cfg); err != nil {
				p.AddErr(err)
			}
		}
	}
	jobmodel.CheckStreams(&p, cfg, parts.Job, parts.Systems, outputs)
	keys := jobmodel.CheckKeys(&p, cfg, parts.Job, taskKeys, r.keys, outputs, strict)
	parts.BuildCheckpoints(&p, cfg, f, log)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &toolParts{Parts: parts, warnings: keys.Warnings}, nil
}

// declaredOutputs returns the outputs task class declares; a panic is an error.
func declaredOutputs(class string, def task.Definition, cfg config.Config) (outs []system.SystemStream, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("task %s panicked declaring its outputs: %v", class, v)
		}
	}()
	return def.Outputs(cfg)
}

func filesystemCheckpoints(jc *job.Config, _ map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
	m, err := filesystem.New(jc.CheckpointPath, jc.Name, jc.ID, filesystem.WithLogger(log))
	if err != nil {
		return nil, &config.Error{Key: job.KeyCheckpointPath, Value: jc.CheckpointPath, Err: err}
	}
	return m, nil
}

func kafkaCheckpoints(jc *job.Config, systems map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
	s, ok := systems[jc.CheckpointSystem].(*kafka.System)
	if !ok {
		return nil, &config.Error{Key: job.KeyCheckpointSystem, Value: jc.CheckpointSystem, Err: errNotKafka}
	}
	m, err := kafka.NewCheckpointManager(s, jc.Raw, log)
	if err != nil {
		return nil, err
	}
	return m, nil
}

var errNotKafka = errors.New("the kafka checkpoint manager needs a kafka system")
