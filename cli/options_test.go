package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
	"github.com/sluice-streams/sluice/task"
)

// countedManager is a program's own checkpoint manager: the filesystem one in the
// directory of its own key, counting the writes.
type countedManager struct {
	*filesystem.Manager
	writes *atomic.Int64
}

func (m countedManager) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	m.writes.Add(1)
	return m.Manager.Write(ctx, task, cp)
}

const countedDirKey = "task.checkpoint.counted.dir"

func countedFactory(writes *atomic.Int64) container.CheckpointFactory {
	return func(jc *job.Config, _ map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
		dir := jc.Raw.GetOr(countedDirKey, "")
		m, err := filesystem.New(dir, jc.Name, jc.ID, filesystem.WithLogger(log))
		if err != nil {
			return nil, &config.Error{Key: countedDirKey, Value: dir, Err: err}
		}
		return countedManager{m, writes}, nil
	}
}

// ownJob writes a job that reads and writes a program's own system and checkpoints
// with its own manager, both named by Samza-style class names.
func ownJob(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "own.properties")
	cfg := fmt.Sprintf(`job.name=own
task.class=com.example.samza.PassthroughTask
task.inputs=mem.in
task.passthrough.output=mem.out
systems.mem.samza.factory=com.example.samza.MemSystemFactory
systems.mem.samza.offset.default=oldest
task.checkpoint.factory=com.example.samza.CountedCheckpointManagerFactory
%s=%s
`, countedDirKey, filepath.Join(dir, "checkpoints"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMainRunsAProgramsOwnSystemAndCheckpointManager(t *testing.T) {
	store := inmem.NewStore()
	for _, s := range []string{"in", "out"} {
		if err := store.CreateStream(s, 2); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := store.Append("in", int32(i%2), nil, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var writes atomic.Int64
	// A task given under a Samza job's Java class name.
	passthrough := map[string]task.Definition{"com.example.samza.PassthroughTask": builtin.Tasks()["passthrough"]}
	opts := []cli.Option{
		cli.WithTasks(passthrough),
		cli.WithSystem("mem", store.Factory(), "com.example.samza.MemSystemFactory"),
		cli.WithCheckpointManager("counted", countedFactory(&writes), "com.example.samza.CountedCheckpointManagerFactory"),
		cli.WithKeys(countedDirKey),
	}
	path := ownJob(t)

	var stdout, stderr bytes.Buffer
	if code := cli.Main(t.Context(), []string{"run", "--config-path=" + path, "--exit-when-caught-up"}, &stdout, &stderr, opts...); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("run warned, though the manager's key is declared:\n%s", stderr.String())
	}
	for p, want := range []int{3, 2} {
		if msgs, _ := store.Messages("out", int32(p)); len(msgs) != want {
			t.Errorf("out partition %d holds %d messages, want %d", p, len(msgs), want)
		}
	}
	if writes.Load() == 0 {
		t.Error("the program's checkpoint manager wrote no checkpoint")
	}

	stdout.Reset()
	stderr.Reset()
	if code := cli.Main(t.Context(), []string{"checkpoint-tool", "--config-path=" + path}, &stdout, &stderr, opts...); code != 0 {
		t.Fatalf("checkpoint-tool: exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{
		`tasknames.Partition\ 0.systems.mem.streams.in.partitions.0=3`,
		`tasknames.Partition\ 1.systems.mem.streams.in.partitions.1=2`,
		"counted", // the header names the manager by its registered name
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("checkpoint-tool printed\n%s\nwithout %q", stdout.String(), want)
		}
	}

	// Without WithKeys, the manager's key is an unknown key to Sluice.
	stderr.Reset()
	if code := cli.Main(t.Context(), []string{"run", "--config-path=" + path, "--exit-when-caught-up"}, &stdout, &stderr, opts[:3]...); code != 0 {
		t.Fatalf("run without WithKeys: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), countedDirKey+"="+filepath.Join(filepath.Dir(path), "checkpoints")+": unknown key") {
		t.Errorf("run without WithKeys did not warn of %s:\n%s", countedDirKey, stderr.String())
	}
}

func TestMainWithoutTheProgramsSystemNamesWhatIsKnown(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := cli.Main(t.Context(), []string{"run", "--config-path=" + ownJob(t)}, &stdout, &stderr)
	if code != cli.ExitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, cli.ExitUsage, stderr.String())
	}
	for _, want := range []string{
		"systems.mem.samza.factory=com.example.samza.MemSystemFactory: unknown system factory; known: inmem, kafka",
		"task.checkpoint.factory=com.example.samza.CountedCheckpointManagerFactory: unknown checkpoint manager; known: filesystem, kafka",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestMainReportsBadOptionsBeforeRunningAnything(t *testing.T) {
	store := inmem.NewStore()
	f := store.Factory()
	for name, tc := range map[string]struct {
		opts []cli.Option
		want string
	}{
		"alias of two systems": {
			[]cli.Option{cli.WithSystem("a", f, "x"), cli.WithSystem("b", f, "x")},
			`WithSystem("b"): alias "x" is already an alias of "a"`,
		},
		"alias that is a name": {
			[]cli.Option{cli.WithSystem("a", f, "kafka")},
			`WithSystem("a"): alias "kafka" is the name of another factory`,
		},
		"name that is an alias": {
			[]cli.Option{cli.WithCheckpointManager("a", countedFactory(new(atomic.Int64)), "x"), cli.WithCheckpointManager("x", countedFactory(new(atomic.Int64)))},
			`WithCheckpointManager("x"): "x" is already an alias of "a"`,
		},
		"nil factory": {
			[]cli.Option{cli.WithSystem("a", nil)},
			`WithSystem("a"): the factory is nil`,
		},
		"blank name": {
			[]cli.Option{cli.WithSystem(" ", f)},
			`WithSystem(" "): a name must be non-empty`,
		},
		"task without New": {
			[]cli.Option{cli.WithTasks(map[string]task.Definition{"t": {}})},
			`WithTasks: task "t": want a name and a Definition with New`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Main(t.Context(), []string{"version"}, &stdout, &stderr, tc.opts...)
			if code != cli.ExitUsage || stdout.Len() != 0 {
				t.Errorf("exit %d with stdout %q, want %d and nothing run", code, stdout.String(), cli.ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
		})
	}
	// The same alias for a system and a checkpoint manager is no conflict.
	var stdout, stderr bytes.Buffer
	if code := cli.Main(t.Context(), []string{"version"}, &stdout, &stderr,
		cli.WithSystem("a", f, "x"), cli.WithCheckpointManager("b", countedFactory(new(atomic.Int64)), "x")); code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// roleCounter is a kgo hook counting the clients created with it, by role.
type roleCounter struct {
	role   kafka.Role
	counts map[kafka.Role]*atomic.Int64
}

func (r roleCounter) OnNewClient(*kgo.Client) { r.counts[r.role].Add(1) }

// A program gives Sluice's own Kafka system franz-go options by replacing it; the job
// still names it by its Samza class name, and the Kafka checkpoint manager's clients
// get the options too.
func TestMainWithKafkaClientOptions(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "PageViewEvent", "PageViewEventCopy"))
	seeds := kafkatest.Seeds(c)
	cl, _ := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	produceViews(t, cl, 0, "/a", 3)
	counts := map[kafka.Role]*atomic.Int64{}
	for _, r := range []kafka.Role{kafka.RoleAdmin, kafka.RoleConsumer, kafka.RoleProducer, kafka.RoleCheckpoint} {
		counts[r] = new(atomic.Int64)
	}
	factory := kafka.NewFactory(kafka.WithClientOptsFunc(func(role kafka.Role) []kgo.Opt {
		return []kgo.Opt{kgo.WithHooks(roleCounter{role, counts})}
	}))
	cfg := exampleConfig(t, "page-view-copy.properties", seeds)
	var stdout, stderr bytes.Buffer
	if code := cli.Main(t.Context(), []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, &stdout, &stderr,
		cli.WithSystem("kafka", factory)); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr.String())
	}
	for role, n := range counts {
		if n.Load() == 0 {
			t.Errorf("no %s client was created with the program's options", role)
		}
	}
}
