package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
)

// jobLines is a passthrough job from kafka.in to kafka.out, checkpointed in dir.
func jobLines(seeds, dir string) []string {
	return []string{
		"job.name=cfg-check",
		"task.class=passthrough",
		"task.inputs=kafka.in",
		"task.passthrough.output=kafka.out",
		"systems.kafka.samza.factory=kafka",
		"systems.kafka.consumer.bootstrap.servers=" + seeds,
		"task.checkpoint.factory=filesystem",
		"task.checkpoint.path=" + filepath.Join(dir, "checkpoints"),
	}
}

// writeJob writes lines as a job file, one a line, and returns its path.
func writeJob(t *testing.T, dir string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, "job.properties")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

func sluice(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(t.Context(), args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// wants fails the test unless r's stderr holds every string of want.
func (r result) wants(t *testing.T, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

func TestRunWarnsOfATypoNamingTheLineAndTheKeyMeant(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "in", "out"))
	dir := t.TempDir()
	lines := append(jobLines(kafkatest.Seeds(c), dir), "task.comit.ms=100")
	path := writeJob(t, dir, lines...)
	r := sluice(t, "run", "--config-path="+path, "--exit-when-caught-up")
	want := fmt.Sprintf("sluice: warning: %s:%d: task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms?\n", path, len(lines))
	r.wants(t, cli.ExitOK, want)
	// The warning comes before the container starts.
	if i, j := strings.Index(r.stderr, want), strings.Index(r.stderr, "container starting"); i < 0 || j < 0 || i > j {
		t.Errorf("the warning is not printed before the container starts:\n%s", r.stderr)
	}
}

func TestStrictMakesWarningsErrorsListedWithTheOtherProblems(t *testing.T) {
	dir := t.TempDir()
	lines := append(jobLines("127.0.0.1:1", dir), "task.comit.ms=100", "task.window.ms=often")
	path := writeJob(t, dir, lines...)
	for _, args := range [][]string{
		{"run", "--strict", "--config-path=" + path},
		{"checkpoint-tool", "--strict", "--config-path=" + path},
	} {
		r := sluice(t, args...)
		r.wants(t, cli.ExitUsage,
			"has problems",
			fmt.Sprintf("%s:%d: task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms? (an error, as configuration checking is strict)", path, len(lines)-1),
			"task.window.ms=often: not a whole number of milliseconds")
		if strings.Contains(r.stderr, "sluice: warning:") {
			t.Errorf("%v: a warning printed besides the error:\n%s", args, r.stderr)
		}
	}
	// job.config.strict=true does the same.
	path = writeJob(t, dir, append(jobLines("127.0.0.1:1", dir), "task.comit.ms=100", "job.config.strict=true")...)
	sluice(t, "run", "--config-path="+path).wants(t, cli.ExitUsage, "task.comit.ms=100: unknown key, ignored; did you mean task.commit.ms?")
}

func TestSamzaKeysSluiceIgnoresDoNotWarn(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "in", "out"))
	dir := t.TempDir()
	path := writeJob(t, dir, append(jobLines(kafkatest.Seeds(c), dir),
		"job.factory.class=org.apache.samza.job.local.ProcessJobFactory",
		"job.coordinator.system=kafka",
		"task.opts=-Xmx1g",
		"serializers.registry.string.class=org.apache.samza.serializers.StringSerdeFactory",
		"systems.kafka.samza.msg.serde=string",
		"metrics.reporters=snapshot",
		"yarn.container.count=2",
	)...)
	r := sluice(t, "run", "--strict", "--config-path="+path, "--exit-when-caught-up")
	r.wants(t, cli.ExitOK, "configuration key ignored", "key=task.opts")
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("a warning for a key Sluice knowingly ignores:\n%s", r.stderr)
	}
}

func TestAKeyGivenTwiceWarnsNamingBothLines(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "in", "out"))
	dir := t.TempDir()
	lines := append(jobLines(kafkatest.Seeds(c), dir), "task.commit.ms=100", "# later", "task.commit.ms=200")
	path := writeJob(t, dir, lines...)
	for _, cmd := range []string{"run", "checkpoint-tool"} {
		args := []string{cmd, "--config-path=" + path}
		if cmd == "run" {
			args = append(args, "--exit-when-caught-up")
		}
		sluice(t, args...).wants(t, cli.ExitOK,
			fmt.Sprintf("sluice: warning: %s: task.commit.ms=200: given on lines %d and %d; the last one wins\n", path, len(lines)-2, len(lines)))
	}
}

func TestConfigErrorsBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		set  []string
		want []string
	}{
		{"overflowing commit interval", []string{"task.commit.ms=18446744073710"},
			[]string{"task.commit.ms=18446744073710: too large: at most 9223372036854 milliseconds"}},
		{"output system not configured", []string{"task.passthrough.output=kafak.Out"},
			[]string{`task.passthrough.output=kafak.Out: output kafak.Out names system "kafak", which is not configured (no systems.kafak.samza.factory; configured: kafka)`}},
		{"output topic Kafka refuses", []string{"task.passthrough.output=kafka.bad topic!"},
			[]string{`task.passthrough.output=kafka.bad topic!: output kafka.bad topic!: "bad topic!" is not a legal Kafka topic name`}},
		{"input topic Kafka refuses", []string{"task.inputs=kafka.in,kafka..."},
			[]string{`task.inputs=kafka.in,kafka...: input kafka...: ".." is not a legal Kafka topic name`}},
		{"kafka coordinator with job.container.count", []string{"job.coordinator.factory=kafka", "job.container.count=2"},
			[]string{"job.container.count=2: does not apply with job.coordinator.factory=kafka"}},
		{"Samza's zookeeper coordinator", []string{"job.coordinator.factory=org.apache.samza.zk.ZkJobCoordinatorFactory"},
			[]string{"job.coordinator.factory=org.apache.samza.zk.ZkJobCoordinatorFactory: must be static", "Samza's ZooKeeper and passthrough coordinators are not supported"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lines := jobLines("127.0.0.1:1", dir)
			for _, kv := range tt.set {
				key := kv[:strings.IndexByte(kv, '=')+1]
				replaced := false
				for i, l := range lines {
					if strings.HasPrefix(l, key) {
						lines[i], replaced = kv, true
					}
				}
				if !replaced {
					lines = append(lines, kv)
				}
			}
			path := writeJob(t, t.TempDir(), lines...)
			for _, cmd := range []string{"run", "checkpoint-tool"} {
				r := sluice(t, cmd, "--config-path="+path)
				r.wants(t, cli.ExitUsage, append([]string{"has problems"}, tt.want...)...)
			}
		})
	}
}
