package cli_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
	"github.com/sluice-streams/sluice/system"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// t0 is when the fixture's messages were published (their Kafka timestamps).
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// toolEnv is one job on its own embedded broker: the topics, the job's config file and a
// scratch directory.
type toolEnv struct {
	dir     string
	seeds   string
	cfg     string // path of the job's .properties
	client  *kgo.Client
	factory string // task.checkpoint.factory: filesystem or kafka
	kv      map[string]string
}

// newToolEnv starts a kfake broker with topics PageViewEvent and out (two partitions each)
// and writes the config of a passthrough job from PageViewEvent to out, with
// filesystem checkpoints (extra keys are added or override).
func newToolEnv(t *testing.T, extra ...string) *toolEnv {
	t.Helper()
	return newToolEnvN(t, 2, extra...)
}

// newToolEnvN is newToolEnv with topics of n partitions.
func newToolEnvN(t *testing.T, n int32, extra ...string) *toolEnv {
	t.Helper()
	c := kafkatest.NewCluster(t, kfake.SeedTopics(n, "PageViewEvent", "out"))
	e := &toolEnv{dir: t.TempDir(), seeds: kafkatest.Seeds(c)}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.client = cl
	kv := []string{
		"job.name", "page-views",
		"task.class", "passthrough",
		"task.inputs", "kafka.PageViewEvent",
		"task.passthrough.output", "kafka.out",
		"task.commit.ms", "-1",
		"systems.kafka.samza.factory", "kafka",
		"systems.kafka.consumer.bootstrap.servers", e.seeds,
		"systems.kafka.producer.bootstrap.servers", e.seeds,
		"systems.kafka.samza.offset.default", "oldest",
		"task.checkpoint.factory", "filesystem",
		"task.checkpoint.path", filepath.Join(e.dir, "checkpoints"),
	}
	e.kv = map[string]string{}
	e.writeConfig(t, "job.properties", append(kv, extra...)...)
	return e
}

// writeConfig sets the keys kv in the env's job config, writes it to the file name in
// the env's directory and makes it the env's config.
func (e *toolEnv) writeConfig(t *testing.T, name string, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		e.kv[kv[i]] = kv[i+1]
	}
	e.factory = e.kv["task.checkpoint.factory"]
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(e.kv)) {
		fmt.Fprintf(&b, "%s=%s\n", k, e.kv[k])
	}
	e.cfg = filepath.Join(e.dir, name)
	if err := os.WriteFile(e.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// produce appends n messages to partition p of topic, one a minute from start.
func (e *toolEnv) produce(t *testing.T, topic string, p int32, n int, start time.Time) {
	t.Helper()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "m%d", i), Timestamp: start.Add(time.Duration(i) * time.Minute)})
	}
	if err := e.client.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// count returns how many messages topic holds in all.
func (e *toolEnv) count(t *testing.T, topic string) int64 {
	t.Helper()
	out, err := kadm.NewClient(e.client).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	out.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func (e *toolEnv) fsManager(t *testing.T) *filesystem.Manager {
	t.Helper()
	m, err := filesystem.New(filepath.Join(e.dir, "checkpoints"), "page-views", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// checkpointTopic is the Kafka checkpoint topic of the env's job.
const checkpointTopic = "__samza_checkpoint_page-views_1"

// manager returns a started checkpoint manager of the env's job, of its factory.
func (e *toolEnv) manager(t *testing.T) checkpoint.Manager {
	t.Helper()
	if e.factory == "kafka" {
		return e.kafkaManager(t)
	}
	return e.fsManager(t)
}

// writeCheckpoint stores a checkpoint of task, as a container would.
func (e *toolEnv) writeCheckpoint(t *testing.T, task string, offsets map[system.SystemStreamPartition]string) {
	t.Helper()
	if err := e.manager(t).Write(context.Background(), task, checkpoint.New(offsets)); err != nil {
		t.Fatal(err)
	}
}

// topicEnd returns the end offset of the Kafka checkpoint topic: how many records were
// ever appended to it.
func (e *toolEnv) topicEnd(t *testing.T) int64 {
	t.Helper()
	out, err := kadm.NewClient(e.client).ListEndOffsets(context.Background(), checkpointTopic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := out.Lookup(checkpointTopic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s: %v", checkpointTopic, o.Err)
	}
	return o.Offset
}

// stored describes the stored checkpoints, one line per task, and for Kafka the
// checkpoint topic's end offset.
func (e *toolEnv) stored(t *testing.T) string {
	t.Helper()
	m := e.manager(t)
	tasks, err := m.(checkpoint.Lister).Tasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, task := range tasks {
		cp, err := m.Read(context.Background(), task)
		if err != nil {
			fmt.Fprintf(&b, "%s: error: %v\n", task, err)
			continue
		}
		fmt.Fprintf(&b, "%s:", task)
		for _, ssp := range cp.Partitions() {
			fmt.Fprintf(&b, " %s=%s", ssp, cp.Offsets[ssp])
		}
		b.WriteString("\n")
	}
	if len(tasks) == 0 {
		b.WriteString("(none)\n")
	}
	if e.factory == "kafka" {
		fmt.Fprintf(&b, "checkpoint topic end offset: %d\n", e.topicEnd(t))
	}
	return b.String()
}

// fingerprint changes whenever a checkpoint is rewritten, even with the offsets it
// held (a rewrite has a new checkpoint id and time): the filesystem checkpoint files
// byte for byte with their modification times, or the Kafka checkpoint topic's end
// offset (every write appends a record).
func (e *toolEnv) fingerprint(t *testing.T) string {
	t.Helper()
	if e.factory == "kafka" {
		return fmt.Sprintf("end offset %d", e.topicEnd(t))
	}
	dir := filepath.Join(e.dir, "checkpoints")
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".lock") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s mtime=%d %q\n", de.Name(), fi.ModTime().UnixNano(), data)
	}
	return b.String()
}

type toolRun struct {
	args           []string
	stdout, stderr string
	code           int
}

// sluice runs one command in-process, as the sluice binary would.
func (e *toolEnv) sluice(t *testing.T, ctx context.Context, args ...string) toolRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, args, &stdout, &stderr)
	return toolRun{args, stdout.String(), stderr.String(), code}
}

var slogTime = regexp.MustCompile(`time=\S+ `)

// norm makes output stable: temporary paths, broker addresses and log times replaced.
func (e *toolEnv) norm(s string) string {
	s = strings.ReplaceAll(s, e.dir, "$TMP")
	s = strings.ReplaceAll(s, e.seeds, "$BROKER")
	return slogTime.ReplaceAllString(s, "")
}

func (e *toolEnv) transcript(r toolRun) string {
	return e.norm(fmt.Sprintf("$ sluice %s\n-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", strings.Join(r.args, " "), r.stdout, r.stderr, r.code))
}

func toolGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "checkpoint-tool", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (go test -update rewrites it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// writeFile writes a --new-offsets file into the env's directory and returns its path.
func (e *toolEnv) writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func toolSetLine(t *testing.T, file, key, value string) string {
	t.Helper()
	lines := strings.Split(file, "\n")
	for i, l := range lines {
		if k, _, ok := strings.Cut(l, "="); ok && k == key {
			lines[i] = k + "=" + value
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no key %s in\n%s", key, file)
	return ""
}

const (
	kP0 = `tasknames.Partition\ 0.systems.kafka.streams.PageViewEvent.partitions.0`
	kP1 = `tasknames.Partition\ 1.systems.kafka.streams.PageViewEvent.partitions.1`
)

var (
	pv0 = system.NewSSP("kafka", "PageViewEvent", 0)
	pv1 = system.NewSSP("kafka", "PageViewEvent", 1)
)

// TestCheckpointToolTranscripts drives `sluice checkpoint-tool` through cli.Main on an
// embedded broker and compares each transcript (arguments, stdout, stderr, exit code,
// and the stored checkpoints afterwards) with testdata/checkpoint-tool/<name>.golden.
//
// Fixture: PageViewEvent#0 holds offsets 0..5 published at 12:00..12:05 on 2024-05-01,
// PageViewEvent#1 offsets 0..3 at 12:00..12:03. Partition 0 has checkpoint 4; Partition 1
// has none (default oldest: 0).
func TestCheckpointToolTranscripts(t *testing.T) {
	type step struct {
		args []string // "$CFG" is the config path, "$FILE" the --new-offsets file
		file string   // content of $FILE; "$PRINTED" is replaced by a fresh print
		edit func(t *testing.T, printed string) string
		code int
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *toolEnv) (cleanup func())
		step  step
		// unchanged: no checkpoint may be rewritten, not even with the same offsets.
		unchanged bool
		// kafka: the job uses the Kafka checkpoint manager (default: filesystem).
		kafka bool
	}{
		{name: "print", step: step{args: []string{"--config-path=$CFG"}}, unchanged: true},
		{name: "print-file-url", step: step{args: []string{"--config-path=file://$CFG"}}, unchanged: true},
		{name: "print-running", setup: toolHoldFSLock, step: step{args: []string{"--config-path=$CFG"}}, unchanged: true},
		{name: "print-corrupt", setup: toolCorruptP0, step: step{args: []string{"--config-path=$CFG"}, code: 1}, unchanged: true},
		{name: "roundtrip-noop", setup: toolCheckpointP1, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return p }}, unchanged: true},
		{name: "roundtrip-pins-default", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return p }}},
		{name: "merge", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return toolSetLine(t, p, kP0, "2") }}},
		{name: "replace", step: step{args: []string{"--config-path=$CFG", "--new-offsets=file://$FILE", "--replace"},
			file: kP1 + "=3\n"}},
		{name: "validation-errors", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"}, code: 2,
			file: strings.Join([]string{
				`tasknames.Partition\ 2.systems.kafka.streams.PageViewEvent.partitions.2=0`,
				`tasknames.Partition\ 0.systems.kafka.streams.PageViewEvent.partitions.1=0`,
				`tasknames.Partition\ 0.systems.kafka.streams.Clicks.partitions.0=0`,
				`tasknames.Partition\ 0.systems.kafka.PageViewEvent.0=0`,
				kP0 + "=four",
				kP1 + "=-4",
				kP0 + "=3",
				"",
			}, "\n")}, unchanged: true},
		{name: "validation-out-of-range", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"}, code: 2,
			file: kP0 + "=7\n" + kP1 + "=5\n"}, unchanged: true},
		{name: "validation-deleted-by-retention", setup: toolDeleteBefore2, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"}, code: 2,
			file: kP0 + "=1\n"}, unchanged: true},
		{name: "zero-after-retention", setup: toolDeleteBefore2, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			file: kP0 + "=0\n" + kP1 + "=0\n"}},
		{name: "force-out-of-range", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE", "--force"},
			file: kP1 + "=7\n"}},
		{name: "all-zero", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return toolSetLine(t, toolSetLine(t, p, kP0, "0"), kP1, "0") }}},
		{name: "reset-oldest", step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest"}}},
		{name: "reset-upcoming", step: step{args: []string{"--config-path=$CFG", "--reset-to=upcoming"}}},
		{name: "reset-time", step: step{args: []string{"--config-path=$CFG", "--reset-to=2024-05-01T12:02:30Z"}}},
		{name: "reset-time-zone", step: step{args: []string{"--config-path=$CFG", "--reset-to=2024-05-01T14:01:00+02:00"}}},
		{name: "reset-time-future", step: step{args: []string{"--config-path=$CFG", "--reset-to=2099-01-01T00:00:00Z"}}},
		{name: "reset-streams", step: step{args: []string{"--config-path=$CFG", "--reset-to=upcoming", "--streams=kafka.PageViewEvent"}}},
		{name: "dry-run", step: step{args: []string{"--config-path=$CFG", "--reset-to=upcoming", "--dry-run"}}, unchanged: true},
		{name: "dry-run-file", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE", "--dry-run"},
			edit: func(t *testing.T, p string) string { return toolSetLine(t, p, kP1, "3") }}, unchanged: true},
		{name: "refuse-running", setup: toolHoldFSLock, step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest"}, code: 1}, unchanged: true},
		{name: "force-running", setup: toolHoldFSLock, step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest", "--force"}}},
		// The Kafka checkpoint manager, on the same broker.
		{name: "kafka-print", kafka: true, step: step{args: []string{"--config-path=$CFG"}}, unchanged: true},
		{name: "kafka-roundtrip-noop", kafka: true, setup: toolCheckpointP1, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return p }}, unchanged: true},
		{name: "kafka-merge", kafka: true, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"},
			edit: func(t *testing.T, p string) string { return toolSetLine(t, p, kP0, "2") }}},
		{name: "kafka-validation-errors", kafka: true, step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE"}, code: 2,
			file: strings.Join([]string{
				`tasknames.Partition\ 2.systems.kafka.streams.PageViewEvent.partitions.2=0`,
				kP0 + "=four",
				kP1 + "=9",
				"",
			}, "\n")}, unchanged: true},
		{name: "kafka-dry-run", kafka: true, step: step{args: []string{"--config-path=$CFG", "--reset-to=upcoming", "--dry-run"}}, unchanged: true},
		{name: "kafka-refuse-running", kafka: true, setup: toolHoldKafkaLock, step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest"}, code: 1}, unchanged: true},
		{name: "kafka-force-running", kafka: true, setup: toolHoldKafkaLock, step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest", "--force"}}},
		{name: "usage-no-config", step: step{args: []string{}, code: 2}, unchanged: true},
		{name: "usage-conflict", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$FILE", "--reset-to=oldest"}, file: kP0 + "=1\n", code: 2}, unchanged: true},
		{name: "usage-replace-alone", step: step{args: []string{"--config-path=$CFG", "--replace", "--streams=kafka.PageViewEvent"}, code: 2}, unchanged: true},
		{name: "usage-bad-time", step: step{args: []string{"--config-path=$CFG", "--reset-to=yesterday"}, code: 2}, unchanged: true},
		{name: "usage-dry-run-alone", step: step{args: []string{"--config-path=$CFG", "--dry-run"}, code: 2}, unchanged: true},
		{name: "usage-unknown-flag", step: step{args: []string{"--config-path=$CFG", "--offsets=x"}, code: 2}, unchanged: true},
		{name: "usage-unknown-stream", step: step{args: []string{"--config-path=$CFG", "--reset-to=oldest", "--streams=kafka.Clicks"}, code: 2}, unchanged: true},
		{name: "config-error", step: step{args: []string{"--config-path=$TMP/bad.properties"}, code: 2}, unchanged: true,
			setup: func(t *testing.T, e *toolEnv) func() {
				e.writeFile(t, "bad.properties", "task.inputs=kafka.PageViewEvent\nsystems.kafka.samza.offset.default=sometimes\n")
				return nil
			}},
		{name: "missing-config", step: step{args: []string{"--config-path=$TMP/nope.properties"}, code: 2}, unchanged: true},
		{name: "missing-offsets-file", step: step{args: []string{"--config-path=$CFG", "--new-offsets=$TMP/nope.properties"}, code: 2}, unchanged: true},
		{name: "no-checkpoint-manager", step: step{args: []string{"--config-path=$TMP/nocp.properties"}, code: 2}, unchanged: true,
			setup: func(t *testing.T, e *toolEnv) func() {
				b, err := os.ReadFile(e.cfg)
				if err != nil {
					t.Fatal(err)
				}
				e.writeFile(t, "nocp.properties", regexp.MustCompile(`(?m)^task\.checkpoint\..*\n`).ReplaceAllString(string(b), ""))
				return nil
			}},
		{name: "unknown-task-class", step: step{args: []string{"--config-path=$TMP/custom.properties"}}, unchanged: true,
			setup: func(t *testing.T, e *toolEnv) func() {
				b, err := os.ReadFile(e.cfg)
				if err != nil {
					t.Fatal(err)
				}
				e.writeFile(t, "custom.properties", strings.Replace(string(b), "task.class=passthrough", "task.class=com.example.MyTask", 1))
				return nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var e *toolEnv
			if tc.kafka {
				e = newToolEnv(t, "task.checkpoint.factory", "kafka", "task.checkpoint.system", "kafka")
			} else {
				e = newToolEnv(t)
			}
			e.produce(t, "PageViewEvent", 0, 6, t0)
			e.produce(t, "PageViewEvent", 1, 4, t0)
			e.writeCheckpoint(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: "4"})
			if tc.setup != nil {
				if cleanup := tc.setup(t, e); cleanup != nil {
					defer cleanup()
				}
			}
			before, beforeFP := e.stored(t), e.fingerprint(t)
			var transcript strings.Builder
			file := tc.step.file
			if tc.step.edit != nil {
				p := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg)
				if p.code != 0 {
					t.Fatalf("print: exit %d: %s", p.code, p.stderr)
				}
				file = tc.step.edit(t, p.stdout)
			}
			var args []string
			for _, a := range tc.step.args {
				a = strings.ReplaceAll(a, "$CFG", e.cfg)
				a = strings.ReplaceAll(a, "$FILE", filepath.Join(e.dir, "offsets.properties"))
				args = append(args, strings.ReplaceAll(a, "$TMP", e.dir))
			}
			if file != "" {
				e.writeFile(t, "offsets.properties", file)
				transcript.WriteString(e.norm("-- $TMP/offsets.properties --\n" + file))
			}
			r := e.sluice(t, t.Context(), append([]string{"checkpoint-tool"}, args...)...)
			transcript.WriteString(e.transcript(r))
			after := e.stored(t)
			transcript.WriteString(e.norm("-- stored checkpoints after --\n" + after))
			if r.code != tc.step.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, tc.step.code, r.stderr)
			}
			if tc.unchanged && after != before {
				t.Errorf("stored checkpoints changed:\n%s\n%s", before, after)
			}
			if afterFP := e.fingerprint(t); tc.unchanged && afterFP != beforeFP {
				t.Errorf("checkpoints were rewritten:\n%s\n%s", beforeFP, afterFP)
			}
			if !tc.unchanged && after == before {
				t.Errorf("stored checkpoints did not change:\n%s", after)
			}
			toolGolden(t, tc.name, transcript.String())
		})
	}
}

// toolCheckpointP1 gives Partition 1 a checkpoint too, so that every partition has one.
func toolCheckpointP1(t *testing.T, e *toolEnv) func() {
	t.Helper()
	e.writeCheckpoint(t, "Partition 1", map[system.SystemStreamPartition]string{pv1: "2"})
	return nil
}

// toolHoldKafkaLock makes the job look running, as a container of it does: a member
// of its run-lock group.
func toolHoldKafkaLock(t *testing.T, e *toolEnv) func() {
	t.Helper()
	l, err := e.kafkaManager(t).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return func() { l.Close() }
}

func toolHoldFSLock(t *testing.T, e *toolEnv) func() {
	t.Helper()
	l, err := e.fsManager(t).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return func() { l.Close() }
}

// toolDeleteBefore2 deletes offsets 0 and 1 of PageViewEvent#0, as retention would.
func toolDeleteBefore2(t *testing.T, e *toolEnv) func() {
	t.Helper()
	deleteBefore(t, e, "PageViewEvent", 0, 2)
	return nil
}

func toolCorruptP0(t *testing.T, e *toolEnv) func() {
	t.Helper()
	// A well-formed header over a document that does not match its checksum.
	bad := []byte("sluice-checkpoint 1 crc32c=00000000 len=2\n{}\n")
	if err := os.WriteFile(e.fsManager(t).Path("Partition 0"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	return nil
}
