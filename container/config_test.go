package container_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
)

// pickySystem is an in-memory system that refuses stream names with a '!'.
type pickySystem struct{ system.System }

func (pickySystem) ValidateStreamName(stream string) error {
	if strings.Contains(stream, "!") {
		return fmt.Errorf("%q has a '!'", stream)
	}
	return nil
}

func withPicky(e *env) func(*container.Options) {
	return func(o *container.Options) {
		o.Systems["picky"] = func(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
			s, err := e.store.Factory()(name, cfg, logger)
			return pickySystem{s}, err
		}
	}
}

func TestOutputsAndInputsAreCheckedBeforeAnythingRuns(t *testing.T) {
	e := newEnv(t)
	def := copyTo("out", nil, nil)
	def.Outputs = func(cfg config.Config) ([]system.SystemStream, error) {
		return []system.SystemStream{
			{System: "mem", Stream: "out"},
			{System: "memm", Stream: "out"},
			{System: "picky", Stream: "ok"},
			{System: "picky", Stream: "no!"},
		}, nil
	}
	e.tasks["test"] = def
	cfg := baseConfig(
		"systems.picky.samza.factory", "picky",
		"task.inputs", "mem.in,picky.in!",
		"task.test.outputs", "memm.out, picky.ok",
	)
	_, err := e.container(cfg, withPicky(e))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`task.test.outputs=memm.out, picky.ok: output memm.out names system "memm", which is not configured (no systems.memm.samza.factory; configured: mem, picky)`,
		`task.class=test: output picky.no!: "no!" has a '!'`,
		`task.inputs=mem.in,picky.in!: input picky.in!: "in!" has a '!'`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Errorf("%d problems, want 3:\n%v", n, err)
	}
	if !config.IsConfigError(err) {
		t.Errorf("not a config error: %v", err)
	}
}

func TestOutputsErrorsAndPanicsAreConfigProblems(t *testing.T) {
	e := newEnv(t)
	def := copyTo("out", nil, nil)
	def.Outputs = func(config.Config) ([]system.SystemStream, error) {
		return nil, &config.Error{Key: "task.test.output", Msg: "is required"}
	}
	e.tasks["test"] = def
	if _, err := e.container(baseConfig()); err == nil || !strings.Contains(err.Error(), "task.test.output: is required") {
		t.Errorf("error = %v", err)
	}
	def.Outputs = func(config.Config) ([]system.SystemStream, error) { panic("boom") }
	e.tasks["test"] = def
	_, err := e.container(baseConfig())
	var pe *container.TaskPanicError
	if !errors.As(err, &pe) || pe.Where != "declaring its outputs" {
		t.Errorf("error = %v, want a contained panic", err)
	}
}

func TestWarningsStrictnessAndIgnoredKeys(t *testing.T) {
	e := newEnv(t)
	def := copyTo("out", nil, nil)
	def.Keys = []string{"task.test.*"}
	e.tasks["test"] = def
	cfg := baseConfig(
		"task.comit.ms", "100",
		"task.test.anything", "1",
		"task.checkpoint.bucket", "b",
		"task.opts", "-Xmx1g",
	)
	c, err := e.container(cfg, func(o *container.Options) { o.Keys = []string{"task.checkpoint.bucket"} })
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || w[0].Error() != "task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms?" {
		t.Errorf("warnings = %v", w)
	}
	if !strings.Contains(e.logs.String(), "configuration key ignored") || !strings.Contains(e.logs.String(), "key=task.opts") {
		t.Errorf("the ignored key is not logged:\n%s", e.logs)
	}
	// --strict (Options.Strict) and job.config.strict=true make each warning an error;
	// without Options.Keys, task.checkpoint.bucket is one too.
	for name, try := range map[string]func() error{
		"Options.Strict": func() error {
			_, err := e.container(cfg, func(o *container.Options) { o.Strict = true })
			return err
		},
		"job.config.strict": func() error {
			_, err := e.container(cfg.With("job.config.strict", "true"))
			return err
		},
	} {
		err := try()
		if err == nil || !strings.Contains(err.Error(), "task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms? (an error, as configuration checking is strict)") ||
			!strings.Contains(err.Error(), "task.checkpoint.bucket=b: unknown key") {
			t.Errorf("%s: error = %v", name, err)
		}
	}
}

// TestKeysOfUnknownSystemsAndStreamsWarn: a systems.* key of a system that is not
// configured, or a per-stream key of a stream the job neither reads nor writes (a
// misspelt name), has no effect and says so; the job's own streams draw nothing.
func TestKeysOfUnknownSystemsAndStreamsWarn(t *testing.T) {
	e := newEnv(t)
	def := copyTo("out", nil, nil)
	def.Outputs = func(config.Config) ([]system.SystemStream, error) {
		return []system.SystemStream{{System: "mem", Stream: "out"}}, nil
	}
	e.tasks["test"] = def
	c, err := e.container(baseConfig(
		"task.inputs", "mem.in,mem.my.dotted.topic",
		"systems.mem.streams.inn.samza.offset.default", "oldest",
		"systems.mme.samza.offset.default", "oldest",
		"systems.mem.streams.in.samza.offset.default", "oldest",
		"systems.mem.streams.my.dotted.topic.samza.reset.offset", "true",
		"systems.mem.streams.out.samza.offset.default", "oldest",
		"task.ignored.exceptions", "*",
		"task.dead.letter.stream", "mem.dlq",
		"systems.mem.streams.dlq.samza.offset.default", "oldest",
		"task.broadcast.inputs", "mem.control#0",
		"systems.mem.streams.control.samza.bootstrap", "true",
	))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range c.Warnings() {
		got[w.Key] = w.Error()
	}
	for key, want := range map[string]string{
		"systems.mem.streams.inn.samza.offset.default": "neither an input nor an output",
		"systems.mme.samza.offset.default":             `system "mme" is not configured`,
	} {
		if !strings.Contains(got[key], want) {
			t.Errorf("%s: warning %q, want one saying %q", key, got[key], want)
		}
	}
	for _, key := range []string{"systems.mem.streams.in.samza.offset.default", "systems.mem.streams.my.dotted.topic.samza.reset.offset",
		"systems.mem.streams.out.samza.offset.default", "systems.mem.streams.dlq.samza.offset.default", "systems.mem.streams.control.samza.bootstrap"} {
		if w, ok := got[key]; ok {
			t.Errorf("%s of one of the job's streams warned: %s", key, w)
		}
	}
}

// TestBadDeadLetterStreamNameIsAConfigError: the dead-letter stream's name is checked
// like an output's, before anything runs.
func TestBadDeadLetterStreamNameIsAConfigError(t *testing.T) {
	e := newEnv(t)
	e.tasks["test"] = copyTo("out", nil, nil)
	_, err := e.container(baseConfig("systems.picky.samza.factory", "picky",
		"task.ignored.exceptions", "*", "task.dead.letter.stream", "picky.bad!"), withPicky(e))
	if err == nil || !strings.Contains(err.Error(), "task.dead.letter.stream") || !strings.Contains(err.Error(), "has a '!'") {
		t.Fatalf("New = %v, want a config error naming task.dead.letter.stream", err)
	}
}
