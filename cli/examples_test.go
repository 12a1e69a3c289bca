package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
)

// exampleConfig copies examples/<name> into a temporary file, pointed at seeds and
// with the given lines replaced (key=value by key).
func exampleConfig(t *testing.T, name, seeds string, set ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "127.0.0.1:9092", seeds)
	for _, kv := range set {
		key := kv[:strings.IndexByte(kv, '=')+1]
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, key) {
				lines[i] = kv
			}
		}
		text = strings.Join(lines, "\n")
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func produceViews(t *testing.T, cl *kgo.Client, partition int32, page string, n int) {
	t.Helper()
	var rs []*kgo.Record
	for range n {
		rs = append(rs, &kgo.Record{Topic: "PageViewEvent", Partition: partition, Value: []byte(`{"page":"` + page + `","user":"ann"}`)})
	}
	if err := cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestExamplePageViewCounterReplaysFromOldestOnEveryStart(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "PageViewEvent", "PageViewCounts"))
	seeds := kafkatest.Seeds(c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := exampleConfig(t, "pageview-counter.properties", seeds, "task.window.ms=50")
	produceViews(t, cl, 0, "/home", 10)
	produceViews(t, cl, 1, "/about", 20)

	// run runs the job until its latest counts are want, then stops it with a signal's
	// context cancellation, and returns its log.
	run := func(want map[string]int64) string {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stdout, stderr bytes.Buffer
		done := make(chan int)
		go func() {
			done <- cli.Main(ctx, []string{"run", "--config-path=" + cfg}, &stdout, &stderr)
		}()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := latestCounts(t, seeds)
			if maps.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("latest counts %v, want %v; log:\n%s", got, want, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d; log:\n%s", code, stderr.String())
		}
		return stderr.String()
	}
	log1 := run(map[string]int64{"/home": 10, "/about": 20})
	if n := strings.Count(log1, "reason=default"); n != 2 {
		t.Errorf("first run: %d partitions started at their default (no checkpoint yet), want 2:\n%s", n, log1)
	}
	// The second start ignores the checkpoint the first one wrote and counts from the
	// oldest again: the totals, not just the 5 new views.
	produceViews(t, cl, 0, "/home", 5)
	log2 := run(map[string]int64{"/home": 15, "/about": 20})
	if n := strings.Count(log2, "reason=reset"); n != 2 {
		t.Errorf("second run: %d partitions started by reset, want 2:\n%s", n, log2)
	}
}

// latestCounts reads PageViewCounts and returns the last count of every page.
func latestCounts(t *testing.T, seeds string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	eachRecord(t, seeds, "PageViewCounts", func(r *kgo.Record) {
		var pc builtin.PageCount
		if err := json.Unmarshal(r.Value, &pc); err != nil {
			t.Fatalf("PageViewCounts holds %q: %v", r.Value, err)
		}
		out[pc.Page] = pc.Count
	})
	return out
}

// eachRecord calls fn with every record of topic, from the oldest, until none comes
// for a while.
func eachRecord(t *testing.T, seeds, topic string, fn func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.Empty() {
			return
		}
		fs.EachRecord(fn)
	}
}

func TestExamplePageViewCopyResumes(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "PageViewEvent", "PageViewEventCopy"))
	seeds := kafkatest.Seeds(c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := exampleConfig(t, "page-view-copy.properties", seeds)
	for run, views := range []int{7, 3} {
		produceViews(t, cl, int32(run), "/p", views)
		var stdout, stderr bytes.Buffer
		if code := cli.Main(t.Context(), []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit %d; log:\n%s", run+1, code, stderr.String())
		}
		if want := "processed=" + strconv.Itoa(views) + " "; !strings.Contains(stderr.String(), want) {
			t.Errorf("run %d: log lacks %q (only the new views are processed):\n%s", run+1, want, stderr.String())
		}
	}
}

func TestSeedConfigurationRunsUnchanged(t *testing.T) {
	// The seed's configuration block, verbatim, plus only what it leaves to the user:
	// bootstrap servers, inputs and a task. The checkpoint topic's replication factor
	// (default 3) is capped at the single broker.
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "PageViewEvent", "PageViewEventCopy"))
	seeds := kafkatest.Seeds(c)
	cfg := strings.Join([]string{
		"systems.kafka.samza.factory=org.apache.samza.system.kafka.KafkaSystemFactory",
		"task.checkpoint.factory=org.apache.samza.checkpoint.kafka.KafkaCheckpointManagerFactory",
		"task.checkpoint.system=kafka",
		"task.commit.ms=60000",
		"",
		"job.name=seed",
		"systems.kafka.consumer.bootstrap.servers=" + seeds,
		"systems.kafka.producer.bootstrap.servers=" + seeds,
		"task.inputs=kafka.PageViewEvent",
		"task.class=passthrough",
		"task.passthrough.output=kafka.PageViewEventCopy",
	}, "\n")
	path := filepath.Join(t.TempDir(), "seed.properties")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main(t.Context(), []string{"run", "--config-path=" + path, "--exit-when-caught-up"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, stderr.String())
	}
	for _, want := range []string{"__samza_checkpoint_seed_1", `reason=default`, "checkpoint_writes=2"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
	// The checkpoints are there for the next start.
	stdout.Reset()
	stderr.Reset()
	if code := cli.Main(t.Context(), []string{"checkpoint-tool", "--config-path=" + path}, &stdout, &stderr); code != 0 {
		t.Fatalf("checkpoint-tool exit %d; log:\n%s", code, stderr.String())
	}
	for _, want := range []string{`tasknames.Partition\ 0.systems.kafka.streams.PageViewEvent.partitions.0=0`, `tasknames.Partition\ 1.systems.kafka.streams.PageViewEvent.partitions.1=0`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("checkpoint-tool output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestExamplePageEnricherLoadsTheTableFirst: the page views are written before the
// pages table, and the row of their page comes last in the table, after thousands of
// others; yet every view is enriched with its title, because the table is a bootstrap
// stream. A second start reloads the whole table (a changed row applies) and
// processes only the new views.
func TestExamplePageEnricherLoadsTheTableFirst(t *testing.T) {
	testExamplePageEnricher(t, "page-enricher.properties")
}

func testExamplePageEnricher(t *testing.T, example string, set ...string) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "PageViewEvent", "pages", "PageViewsEnriched"))
	seeds := kafkatest.Seeds(c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := exampleConfig(t, example, seeds, set...)
	row := func(p int32, page, title string) *kgo.Record {
		return &kgo.Record{Topic: "pages", Partition: p, Key: []byte(page), Value: []byte(title)}
	}
	produceViews(t, cl, 0, "/zero", 500)
	produceViews(t, cl, 1, "/one", 500)
	var rows []*kgo.Record
	for i := range 3000 {
		rows = append(rows, row(int32(i%2), "/filler/"+strconv.Itoa(i), "filler"))
	}
	rows = append(rows, row(0, "/zero", "Zero"), row(1, "/one", "One"))
	if err := cl.ProduceSync(t.Context(), rows...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	run := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := cli.Main(t.Context(), []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d; log:\n%s", code, stderr.String())
		}
		return stderr.String()
	}
	log1 := run()
	got := enrichedTitles(t, seeds)
	if want := map[string]int{"/zero Zero": 500, "/one One": 500}; !maps.Equal(got, want) {
		t.Fatalf("enriched views (page, title: count) %v, want %v: a view was processed before its page's row; log:\n%s", got, want, log1)
	}
	if n := strings.Count(log1, "bootstrapped"); n != 2 {
		t.Errorf("first run: %d tasks logged that they bootstrapped, want 2:\n%s", n, log1)
	}

	// The second start: a renamed page, 10 new views of it.
	if err := cl.ProduceSync(t.Context(), row(0, "/zero", "Zero, renamed")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceViews(t, cl, 0, "/zero", 10)
	log2 := run()
	got = enrichedTitles(t, seeds)
	if want := map[string]int{"/zero Zero": 500, "/one One": 500, "/zero Zero, renamed": 10}; !maps.Equal(got, want) {
		t.Errorf("after the second run: %v, want %v; log:\n%s", got, want, log2)
	}
	// 1,502 rows of partition 0 and 1,501 of partition 1 again (the reset), and the 10 new views.
	if want := "processed=3013 "; !strings.Contains(log2, want) {
		t.Errorf("second run: log lacks %q (the whole table again, only the new views):\n%s", want, log2)
	}
}

// enrichedTitles reads PageViewsEnriched and counts its views by "page title".
func enrichedTitles(t *testing.T, seeds string) map[string]int {
	t.Helper()
	out := map[string]int{}
	eachRecord(t, seeds, "PageViewsEnriched", func(r *kgo.Record) {
		var v builtin.EnrichedPageView
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("PageViewsEnriched holds %q: %v", r.Value, err)
		}
		out[v.Page+" "+v.Title]++
	})
	return out
}
