package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readCommitted returns the values of every record of topic as a read_committed
// reader sees them (records of aborted or open transactions left out).
func readCommitted(t *testing.T, seeds, topic string, partitions int32) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := endOffsets(ctx, kadm.NewClient(client(t, seeds)), topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int32]kgo.Offset{}
	for p := range partitions {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl := client(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	var out []string
	pos := make([]int64, partitions)
	done := func() bool {
		for p := range partitions {
			if pos[p] < ends[p] {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s read_committed: %v (at %v of %v)", topic, err, pos, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, string(r.Value))
			}
		})
	}
	return out
}

// TestExactlyOnceCopy copies a topic with task.processing.guarantee=exactly-once; a
// read_committed reader (franz-go and kcat) sees every input exactly once, and a
// rerun, caught up across the transaction markers at the partitions' ends, copies
// nothing.
func TestExactlyOnceCopy(t *testing.T) {
	const n, partitions = 2000, 4
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	produce(t, seeds, "in", partitions, "e", 0, n)
	cfg := passthroughConfig(t, seeds, "eos", "task.processing.guarantee=exactly-once")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, tail(p.stderr.String(), 20))
	}
	distinct, dups, missing := counts(readCommitted(t, seeds, "out", partitions), "e", n)
	if distinct != n || dups != 0 {
		t.Fatalf("read_committed: %d distinct of %d, %d duplicates, missing e.g. %v", distinct, n, dups, missing[:min(5, len(missing))])
	}
	if bin, err := exec.LookPath("kcat"); err == nil {
		out, err := exec.Command(bin, "-C", "-b", seeds, "-t", "out", "-o", "beginning", "-e", "-q", "-X", "isolation.level=read_committed", "-f", `%s\n`).Output()
		if err != nil {
			t.Fatalf("kcat: %v", err)
		}
		if distinct, dups, _ := counts(strings.Fields(string(out)), "e", n); distinct != n || dups != 0 {
			t.Errorf("kcat read_committed: %d distinct, %d duplicates", distinct, dups)
		}
	}
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("rerun exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	if got := len(readCommitted(t, seeds, "out", partitions)); got != n {
		t.Errorf("the rerun copied %d messages again", got-n)
	}
}

// TestExactlyOnceSurvivesSIGKILL kills an exactly-once job with SIGKILL at random
// moments while input keeps arriving, restarting it each time: a read_committed reader
// sees every input exactly once.
func TestExactlyOnceSurvivesSIGKILL(t *testing.T) {
	const partitions, kills = 8, 12
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := passthroughConfig(t, seeds, "eos-crash", "task.processing.guarantee=exactly-once", "task.commit.ms=50")
	f := feed(t, seeds, "in", partitions, "k")
	rng := newRand(t)
	for i := range kills {
		p := start(t, "run", "--config-path="+cfg)
		waitLog(t, p, 30*time.Second, "starting offset")
		d := time.Duration(100+rng.IntN(700)) * time.Millisecond
		time.Sleep(d) // the moment of the kill is the point
		p.kill()
		t.Logf("kill %d, %v after the start", i+1, d)
	}
	n := f.finish()
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("the last run exited %d:\n%s", code, tail(p.stderr.String(), 20))
	}
	out := readCommitted(t, seeds, "out", partitions)
	distinct, dups, missing := counts(out, "k", n)
	t.Logf("inputs %d, SIGKILLs %d, read_committed outputs %d, duplicates %d, lost %d", n, kills, len(out), dups, len(missing))
	if distinct != n || dups != 0 {
		t.Errorf("exactly-once broken: %d distinct of %d, %d duplicates, missing e.g. %v", distinct, n, dups, missing[:min(5, len(missing))])
	}
}

// TestExactlyOnceInGroupMode: three exactly-once containers share 8 partitions through
// the task group while input arrives; one is SIGKILLed and another started. A
// read_committed reader sees every input exactly once.
func TestExactlyOnceInGroupMode(t *testing.T) {
	const partitions = 8
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := groupConfig(t, seeds, "eos-group", "task.processing.guarantee=exactly-once", "task.commit.ms=100")
	f := feed(t, seeds, "in", partitions, "q")
	var procs []*proc
	for range 3 {
		procs = append(procs, start(t, "run", "--config-path="+cfg))
	}
	for _, p := range procs {
		waitLog(t, p, 30*time.Second, "task group: this container gained tasks")
	}
	time.Sleep(500 * time.Millisecond) // mid-processing
	procs[0].kill()
	fourth := start(t, "run", "--config-path="+cfg)
	waitLog(t, fourth, 30*time.Second, "task group: this container gained tasks")
	time.Sleep(7 * time.Second) // the killed container's session (6 s) expires; its tasks move
	n := f.finish()
	for deadline := time.Now().Add(60 * time.Second); ; {
		distinct, _, _ := counts(readCommitted(t, seeds, "out", partitions), "q", n)
		if distinct == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d inputs committed in the output", distinct, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := readCommitted(t, seeds, "out", partitions)
	distinct, dups, _ := counts(out, "q", n)
	t.Logf("inputs %d, read_committed outputs %d, distinct %d, duplicates %d", n, len(out), distinct, dups)
	if dups != 0 {
		t.Errorf("%d duplicates under exactly-once", dups)
	}
}

// TestPageViewCounterExactlyOnce: the pageview-counter example in exactly-once mode,
// SIGKILLed a few times, ends with exact totals. Its state (the counts) lives in memory,
// so exactly-once alone cannot keep it: it is rebuilt from the oldest input on every
// start (samza.reset.offset=true), which is where the exactness comes from; what
// exactly-once adds is that each window's counts become visible with the checkpoint
// of what they counted, or not at all.
func TestPageViewCounterExactlyOnce(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 2, "views", "counts")
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	want := map[string]int{}
	var recs []*kgo.Record
	for i := range 3000 {
		page := "/p" + string(rune('a'+i%7))
		want[page]++
		recs = append(recs, &kgo.Record{Topic: "views", Partition: int32(i % 2), Key: []byte(page), Value: []byte(`{"page":"` + page + `"}`)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t,
		"job.name=views-eos",
		"task.class=pageview-counter",
		"task.inputs=kafka.views",
		"task.pageview-counter.output=kafka.counts",
		"task.window.ms=20",
		"task.processing.guarantee=exactly-once",
		"systems.kafka.samza.factory=kafka",
		"systems.kafka.consumer.bootstrap.servers="+seeds,
		"systems.kafka.streams.views.samza.reset.offset=true",
		"systems.kafka.streams.views.samza.offset.default=oldest",
		"task.checkpoint.factory=kafka",
		"task.checkpoint.system=kafka",
		"task.checkpoint.replication.factor=1",
	)
	rng := newRand(t)
	for range 4 {
		p := start(t, "run", "--config-path="+cfg)
		waitLog(t, p, 30*time.Second, "starting offset")
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		p.kill()
	}
	p := start(t, "run", "--config-path="+cfg)
	waitLog(t, p, 30*time.Second, "caught up")
	time.Sleep(200 * time.Millisecond) // a few windows after the last message: the final counts
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, tail(p.stderr.String(), 10))
	}
	// Each partition's task counts its own pages; sum the last count per task and page.
	last := map[string]map[string]int{}
	for _, v := range readCommittedKeyed(t, seeds, "counts", 2) {
		var pc struct {
			Page  string `json:"page"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(v.value), &pc); err != nil {
			t.Fatal(err)
		}
		if last[v.partition] == nil {
			last[v.partition] = map[string]int{}
		}
		last[v.partition][pc.Page] = pc.Count
	}
	got := map[string]int{}
	for _, m := range last {
		for page, n := range m {
			got[page] += n
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("committed totals %v, want %v", got, want)
	}
}

type keyedValue struct{ partition, value string }

// readCommittedKeyed is readCommitted that also says each value's partition.
func readCommittedKeyed(t *testing.T, seeds, topic string, partitions int32) []keyedValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := endOffsets(ctx, kadm.NewClient(client(t, seeds)), topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int32]kgo.Offset{}
	for p := range partitions {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl := client(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	var out []keyedValue
	pos := make([]int64, partitions)
	for {
		done := true
		for p := range partitions {
			done = done && pos[p] >= ends[p]
		}
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, keyedValue{fmt.Sprint(r.Partition), string(r.Value)})
			}
		})
	}
}
