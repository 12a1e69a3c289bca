package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kcat returns the path of kcat, skipping the test when it is missing outside CI.
func kcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it from Debian's packages")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	return path
}

// TestKcatInterop has a third-party client (kcat, librdkafka) produce a passthrough
// job's input and read its output.
func TestKcatInterop(t *testing.T) {
	bin := kcat(t)
	_, seeds := cluster(t)
	createTopics(t, seeds, 3, "in", "out")

	var input []string
	for p := range 3 {
		var lines []string
		for i := range 20 {
			lines = append(lines, fmt.Sprintf("key-%d-%d:value-%d-%d", p, i, p, i))
			input = append(input, fmt.Sprintf("%d key-%d-%d value-%d-%d", p, p, i, p, i))
		}
		cmd := exec.Command(bin, "-P", "-b", seeds, "-t", "in", "-p", fmt.Sprint(p), "-K:")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce: %v\n%s", err, out)
		}
	}

	cfg := passthroughConfig(t, seeds, "kcat-interop")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("sluice run exited %d:\n%s", code, tail(p.stderr.String(), 30))
	}

	cmd := exec.Command(bin, "-C", "-b", seeds, "-t", "out", "-o", "beginning", "-e", "-q", "-f", `%p %k %s\n`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(got)
	slices.Sort(input)
	if !slices.Equal(got, input) {
		t.Errorf("kcat read back %d lines, want %d; first got %q, first want %q", len(got), len(input), got[:min(3, len(got))], input[:3])
	}
}

// TestKcatHeadersAndTimestampsPassThrough: passthrough keeps each record whole. kcat
// writes records with headers, a franz-go client writes records with week-old
// timestamps (which must not count against delivery.timeout.ms), and kcat reads the
// output back with the same headers and timestamps.
func TestKcatHeadersAndTimestampsPassThrough(t *testing.T) {
	bin := kcat(t)
	_, seeds := cluster(t)
	createTopics(t, seeds, 1, "in", "out")
	cmd := exec.Command(bin, "-P", "-b", seeds, "-t", "in", "-p", "0", "-K:", "-H", "trace=abc", "-H", "origin=kcat")
	cmd.Stdin = strings.NewReader("k1:v1\nk2:v2\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	old := time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Millisecond)
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Key: []byte("k3"), Value: []byte("v3"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	read := func(topic string) []string {
		out, err := exec.Command(bin, "-C", "-b", seeds, "-t", topic, "-o", "beginning", "-e", "-q", "-f", `%k %s [%h] %T\n`).Output()
		if err != nil {
			t.Fatalf("kcat consume %s: %v", topic, err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	in := read("in")
	if len(in) != 3 || !strings.Contains(in[0], "[trace=abc,origin=kcat]") || !strings.HasSuffix(in[2], fmt.Sprint(old.UnixMilli())) {
		t.Fatalf("input as kcat reads it: %q", in)
	}

	cfg := passthroughConfig(t, seeds, "kcat-headers", "systems.kafka.producer.delivery.timeout.ms=2000")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("sluice run exited %d:\n%s", code, tail(p.stderr.String(), 30))
	}
	if out := read("out"); !slices.Equal(out, in) {
		t.Errorf("output (key value [headers] timestamp):\n%q\nwant the input unchanged:\n%q", out, in)
	}
}

// TestPoisonPillGoesToTheDeadLetterTopic: a pageview-counter job meets a message that
// is not JSON. By default it stops there (exit 1, the message never checkpointed);
// with task.ignored.exceptions=skippable and a dead-letter topic it skips it, counts
// every good page view, and kcat reads the bad message from the dead-letter topic
// with headers naming its task, source partition, offset and error.
// (The counts themselves are emitted by Window, which an --exit-when-caught-up run may
// stop before.)
func TestPoisonPillGoesToTheDeadLetterTopic(t *testing.T) {
	bin := kcat(t)
	_, seeds := cluster(t)
	createTopics(t, seeds, 1, "views", "counts", "dlq")
	cmd := exec.Command(bin, "-P", "-b", seeds, "-t", "views", "-p", "0")
	cmd.Stdin = strings.NewReader("{\"page\":\"/a\"}\nnot json\n{\"page\":\"/a\"}\n{\"page\":\"/b\"}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	base := []string{
		"job.name=views",
		"task.class=pageview-counter",
		"task.inputs=kafka.views",
		"task.pageview-counter.output=kafka.counts",
		"task.window.ms=100",
		"systems.kafka.samza.factory=kafka",
		"systems.kafka.consumer.bootstrap.servers=" + seeds,
		"systems.kafka.samza.offset.default=oldest",
		"task.checkpoint.factory=kafka",
		"task.checkpoint.system=kafka",
		"task.checkpoint.replication.factor=1",
	}
	p := start(t, "run", "--config-path="+writeConfig(t, base...), "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 1 {
		t.Fatalf("without ignored exceptions: exit %d, want 1:\n%s", code, tail(p.stderr.String(), 10))
	}
	if lines := grep(p.stderr.String(), "kafka.views#0 at offset 1", "not a page-view JSON event"); len(lines) == 0 {
		t.Errorf("the failure does not name the message:\n%s", tail(p.stderr.String(), 10))
	}

	cfg := writeConfig(t, append(base, "task.ignored.exceptions=skippable", "task.dead.letter.stream=kafka.dlq")...)
	p = start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("with ignored exceptions: exit %d:\n%s", code, tail(p.stderr.String(), 10))
	}
	if lines := grep(p.stderr.String(), "container stopped", "processed=3", "ignored_errors=1"); len(lines) != 1 {
		t.Errorf("the skip is not counted:\n%s", tail(p.stderr.String(), 5))
	}
	out, err := exec.Command(bin, "-C", "-b", seeds, "-t", "dlq", "-o", "beginning", "-e", "-q", "-f", `%s|%h\n`).Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	got := strings.TrimSpace(string(out))
	for _, want := range []string{"not json|", "sluice.job=views-1", "sluice.task=Partition 0", "sluice.source=kafka.views#0", "sluice.offset=1", "sluice.error=not a page-view JSON event"} {
		if !strings.Contains(got, want) {
			t.Errorf("dead-letter topic as kcat reads it:\n%s\ndoes not contain %q", got, want)
		}
	}
}
