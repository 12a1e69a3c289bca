package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readCommitted returns the values of every record of topic as a read_committed
// reader sees them (records of aborted or open transactions left out).
func readCommitted(t *testing.T, seeds, topic string, partitions int32) []string {
	t.Helper()
	var out []string
	for _, kv := range readCommittedKeyed(t, seeds, topic, partitions) {
		out = append(out, kv.value)
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

// readCommittedKeyed is readCommitted that also says each value's partition. It reads
// up to the end offsets, transaction markers included.
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

// TestExactlyOnceSplitBrain forces two containers to run one task: a job of one
// container (it runs tasks 0 and 1) and a container 1 of a 2-container copy of the job
// (it runs task 1). The second fences the first's task 1, whose next commit fails:
// the first stops, exit 1, and the output is still exactly once.
func TestExactlyOnceSplitBrain(t *testing.T) {
	const partitions = 2
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	eos := []string{"task.processing.guarantee=exactly-once", "task.commit.ms=100"}
	one := passthroughConfig(t, seeds, "split", eos...)
	two := passthroughConfig(t, seeds, "split", append(eos, "job.container.count=2")...)
	f := feed(t, seeds, "in", partitions, "s")
	a := start(t, "run", "--config-path="+one)
	waitLog(t, a, 30*time.Second, "starting offset")
	time.Sleep(300 * time.Millisecond)
	b := start(t, "run", "--config-path="+two, "--container-id=1")
	if code := a.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("the fenced container exited %d, want 1:\n%s", code, tail(a.stderr.String(), 10))
	}
	if lines := grep(a.stderr.String(), "another process opened its transactional producer"); len(lines) == 0 {
		t.Errorf("the fenced container does not say why it stopped:\n%s", tail(a.stderr.String(), 10))
	}
	n := f.finish()
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.wait(t, 30*time.Second)
	// Task 0 runs nowhere now; a job of one container finishes both.
	last := start(t, "run", "--config-path="+one, "--exit-when-caught-up")
	if code := last.wait(t, time.Minute); code != 0 {
		t.Fatalf("the last run exited %d:\n%s", code, tail(last.stderr.String(), 10))
	}
	distinct, dups, missing := counts(readCommitted(t, seeds, "out", partitions), "s", n)
	if distinct != n || dups != 0 {
		t.Errorf("after a split brain: %d distinct of %d, %d duplicates, missing e.g. %v", distinct, n, dups, missing[:min(5, len(missing))])
	}
}

// TestExactlyOnceProduceFailureAborts injects failed produce requests to the output
// mid-run (the broker answers INVALID_RECORD, which no retry fixes): each aborts its
// task's transaction, the task is restarted from its last committed checkpoint, and
// the output read committed is still exactly once.
func TestExactlyOnceProduceFailureAborts(t *testing.T) {
	const partitions = 4
	c, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := passthroughConfig(t, seeds, "eos-fault", "task.processing.guarantee=exactly-once", "task.commit.ms=100")
	f := feed(t, seeds, "in", partitions, "x")
	p := start(t, "run", "--config-path="+cfg)
	waitLog(t, p, 30*time.Second, "starting offset")
	time.Sleep(500 * time.Millisecond)
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.InvalidRecord, Count: 3})
	waitLog(t, p, 30*time.Second, "a transaction aborted; restarting the task")
	h.Remove()
	time.Sleep(500 * time.Millisecond)
	n := f.finish()
	for deadline := time.Now().Add(60 * time.Second); ; {
		distinct, _, _ := counts(readCommitted(t, seeds, "out", partitions), "x", n)
		if distinct == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d inputs committed:\n%s", distinct, n, tail(p.stderr.String(), 10))
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := readCommitted(t, seeds, "out", partitions)
	_, dups, _ := counts(out, "x", n)
	t.Logf("inputs %d, aborts logged %d, read_committed outputs %d, duplicates %d", n, len(grep(p.stderr.String(), "a transaction aborted")), len(out), dups)
	if dups != 0 {
		t.Errorf("%d duplicates after aborted transactions", dups)
	}
}

// TestExactlyOnceBrokerRestart stops the embedded broker (`sluice broker`, a process of
// its own) in the middle of an exactly-once run and starts it again on the same data
// directory: open transactions are aborted, and the job — riding it out or restarted
// after it stopped — ends with every input exactly once.
func TestExactlyOnceBrokerRestart(t *testing.T) {
	const n, partitions = 100_000, 4
	addr, dir := freePort(t), filepath.Join(t.TempDir(), "broker")
	b := startBroker(t, addr, dir)
	createTopics(t, addr, partitions, "in", "out")
	produce(t, addr, "in", partitions, "r", 0, n)
	cfg := passthroughConfig(t, addr, "eos-restart", "task.processing.guarantee=exactly-once", "task.commit.ms=50")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	for deadline := time.Now().Add(30 * time.Second); len(readCommitted(t, addr, "out", partitions)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("nothing committed in 30 s:\n%s", tail(p.stderr.String(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.wait(t, 20*time.Second)
	time.Sleep(time.Second)
	startBroker(t, addr, dir)
	code := p.wait(t, 2*time.Minute)
	t.Logf("the job exited %d across the broker restart", code)
	if code != 0 {
		again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
		if code := again.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("the rerun exited %d:\n%s", code, tail(again.stderr.String(), 10))
		}
	}
	out := readCommitted(t, addr, "out", partitions)
	distinct, dups, missing := counts(out, "r", n)
	t.Logf("inputs %d, read_committed outputs %d, duplicates %d, lost %d", n, len(out), dups, len(missing))
	if distinct != n || dups != 0 {
		t.Errorf("%d distinct of %d, %d duplicates, missing e.g. %v", distinct, n, dups, missing[:min(5, len(missing))])
	}
}
