package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/kafka"
)

// runToEnd runs the job's container until it has caught up, and returns how many
// messages the output topic then holds.
func (e *toolEnv) runToEnd(t *testing.T, cfg string) int64 {
	t.Helper()
	r := e.sluice(t, t.Context(), "run", "--config-path="+cfg, "--exit-when-caught-up", "--log-level=warn")
	if r.code != 0 {
		t.Fatalf("sluice run: exit %d\n%s", r.code, r.stderr)
	}
	return e.count(t, "out")
}

// printLines prints the checkpoints and returns the offset lines (no comments).
func (e *toolEnv) printLines(t *testing.T, cfg string) (string, []string) {
	t.Helper()
	r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+cfg)
	if r.code != 0 {
		t.Fatalf("print: exit %d\n%s", r.code, r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "tasknames.") {
			lines = append(lines, l)
		}
	}
	return r.stdout, lines
}

// outputs reads the whole output topic and counts each message, by partition and value.
func (e *toolEnv) outputs(t *testing.T) map[string]int {
	t.Helper()
	ends, err := kadm.NewClient(e.client).ListEndOffsets(t.Context(), "out")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	got := map[string]int{}
	if len(want) == 0 {
		return got
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.seeds), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"out": start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading the output: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[fmt.Sprintf("%d/%s", r.Partition, r.Value)]++
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	return got
}

// wantEach checks that every input message m0.. of each partition (n[p] of them) was
// output exactly times times.
func wantEach(t *testing.T, got map[string]int, n map[int32]int, times int) {
	t.Helper()
	total := 0
	for p, k := range n {
		for i := range k {
			if c := got[fmt.Sprintf("%d/m%d", p, i)]; c != times {
				t.Errorf("partition %d message m%d was output %d times, want %d", p, i, c, times)
			}
		}
		total += k
	}
	if len(got) != total {
		t.Errorf("the output holds %d distinct messages, want %d", len(got), total)
	}
}

func wantToolLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("printed offsets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// toolReplayAndSkip is the end-to-end scenario on one job config: run a passthrough job to
// the end; print; set every offset to 0 and run again (every message is processed a
// second time); publish more, reset to upcoming and run again (nothing is processed).
func toolReplayAndSkip(t *testing.T, e *toolEnv) {
	e.produce(t, "PageViewEvent", 0, 5, t0)
	e.produce(t, "PageViewEvent", 1, 3, t0)
	if n := e.runToEnd(t, e.cfg); n != 8 {
		t.Fatalf("first run: %d messages out, want 8", n)
	}
	printed, lines := e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=5", kP1+"=3")

	// Every offset to 0: the whole input again.
	edited := toolSetLine(t, toolSetLine(t, printed, kP0, "0"), kP1, "0")
	path := e.writeFile(t, "zero.properties", edited)
	if r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--new-offsets="+path); r.code != 0 {
		t.Fatalf("write zeros: exit %d\n%s", r.code, r.stderr)
	}
	_, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=0", kP1+"=0")
	if n := e.runToEnd(t, e.cfg); n != 16 {
		t.Fatalf("after setting every offset to 0: %d messages out, want 16 (each processed twice)", n)
	}
	wantEach(t, e.outputs(t), map[int32]int{0: 5, 1: 3}, 2)
	printed, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=5", kP1+"=3")

	// New messages, then every offset to the end, by editing the printed file: the new
	// ones are skipped.
	e.produce(t, "PageViewEvent", 0, 2, t0.Add(time.Hour))
	e.produce(t, "PageViewEvent", 1, 4, t0.Add(time.Hour))
	path = e.writeFile(t, "end.properties", toolSetLine(t, toolSetLine(t, printed, kP0, "7"), kP1, "7"))
	if r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--new-offsets="+path); r.code != 0 {
		t.Fatalf("write the end offsets: exit %d\n%s", r.code, r.stderr)
	}
	_, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=7", kP1+"=7")
	if n := e.runToEnd(t, e.cfg); n != 16 {
		t.Fatalf("after setting every offset to the end: %d messages out, want 16 (nothing processed)", n)
	}

	// Back to the first of the new messages, by time: only they are processed.
	if r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=2024-05-01T13:00:00Z"); r.code != 0 {
		t.Fatalf("reset to a time: exit %d\n%s", r.code, r.stderr)
	}
	_, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=5", kP1+"=3")
	if n := e.runToEnd(t, e.cfg); n != 22 {
		t.Fatalf("after --reset-to=<time of the new messages>: %d messages out, want 22 (the 6 new ones)", n)
	}

	// More messages, then --reset-to=upcoming: they are skipped.
	e.produce(t, "PageViewEvent", 0, 1, t0.Add(2*time.Hour))
	e.produce(t, "PageViewEvent", 1, 1, t0.Add(2*time.Hour))
	if r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=upcoming"); r.code != 0 {
		t.Fatalf("reset to upcoming: exit %d\n%s", r.code, r.stderr)
	}
	_, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=8", kP1+"=8")
	if n := e.runToEnd(t, e.cfg); n != 22 {
		t.Fatalf("after --reset-to=upcoming: %d messages out, want 22 (nothing processed)", n)
	}
}

// TestEndToEndFilesystemCheckpoints runs the scenario with filesystem checkpoints.
func TestEndToEndFilesystemCheckpoints(t *testing.T) {
	t.Parallel()
	toolReplayAndSkip(t, newToolEnv(t))
}

// TestEndToEndKafkaCheckpoints runs the scenario with the Kafka checkpoint manager,
// then checks that the tool refuses to write while a container holds the job's run
// lock, prints with a note, and writes once the container has stopped.
func TestEndToEndKafkaCheckpoints(t *testing.T) {
	t.Parallel()
	e := newToolEnv(t, "task.checkpoint.factory", "kafka", "task.checkpoint.system", "kafka")
	toolReplayAndSkip(t, e)
	printed, _ := e.printLines(t, e.cfg)
	if !strings.Contains(printed, "from the kafka checkpoint manager") {
		t.Errorf("header does not name the kafka checkpoint manager:\n%s", printed)
	}

	// A container runs (and does not stop by itself).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan toolRun, 1)
	go func() { done <- e.sluice(t, ctx, "run", "--config-path="+e.cfg, "--log-level=warn") }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg)
		if r.code != 0 {
			t.Fatalf("print while starting: exit %d\n%s", r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "the job is running") {
			if !strings.Contains(r.stderr, "may already be stale") {
				t.Errorf("print while running: no staleness note:\n%s", r.stderr)
			}
			break
		}
		select {
		case r := <-done:
			t.Fatalf("container stopped: exit %d\n%s", r.code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the tool never saw the running container")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=oldest")
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to write checkpoints while the job is running") || !strings.Contains(r.stderr, "checkpoint: the job is running") {
		t.Fatalf("write while running: exit %d, want 1 and a refusal\n%s", r.code, r.stderr)
	}
	_, lines := e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=8", kP1+"=8")

	cancel()
	if r := <-done; r.code != 0 {
		t.Fatalf("container: exit %d\n%s", r.code, r.stderr)
	}
	r = e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=oldest")
	if r.code != 0 {
		t.Fatalf("write after the container stopped: exit %d\n%s", r.code, r.stderr)
	}
	_, lines = e.printLines(t, e.cfg)
	wantToolLines(t, lines, kP0+"=0", kP1+"=0")
}

// kafkaManager returns a started Kafka checkpoint manager of the env's job, as the
// checkpoint tool's.
func (e *toolEnv) kafkaManager(t *testing.T) *kafka.CheckpointManager {
	t.Helper()
	cfg := config.New(map[string]string{"systems.kafka.producer.bootstrap.servers": e.seeds, "job.name": "page-views"})
	sys, err := kafka.New("kafka", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kafka.NewCheckpointManager(sys, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestContainerRefusesWhileToolRewrites checks the container's side of the rewrite
// lock with each checkpoint manager: `sluice run` started while the checkpoint tool
// holds it exits 1 saying so, and runs once the tool is done.
func TestContainerRefusesWhileToolRewrites(t *testing.T) {
	t.Parallel()
	for _, factory := range []string{"filesystem", "kafka"} {
		t.Run(factory, func(t *testing.T) {
			t.Parallel()
			e := newToolEnv(t, "task.checkpoint.factory", factory, "task.checkpoint.system", "kafka")
			e.produce(t, "PageViewEvent", 0, 3, t0)
			var lock interface{ Close() error }
			var err error
			if factory == "kafka" {
				lock, err = e.kafkaManager(t).LockForRewrite(t.Context())
			} else {
				lock, err = e.fsManager(t).LockForRewrite(t.Context())
			}
			if err != nil {
				t.Fatal(err)
			}
			r := e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=warn")
			if r.code != 1 || !strings.Contains(r.stderr, "mark the job as running") || !strings.Contains(r.stderr, "checkpoint tool is rewriting") {
				t.Fatalf("run while the tool rewrites: exit %d, want 1 and a refusal naming the tool\n%s", r.code, r.stderr)
			}
			if n := e.count(t, "out"); n != 0 {
				t.Fatalf("%d messages out: the refused container processed input", n)
			}
			lock.Close()
			deadline := time.Now().Add(30 * time.Second)
			for {
				r = e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=warn")
				if r.code == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r.code != 0 || e.count(t, "out") != 3 {
				t.Fatalf("run after the tool is done: exit %d, %d messages out\n%s", r.code, e.count(t, "out"), r.stderr)
			}
		})
	}
}
