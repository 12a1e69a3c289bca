package e2e

import (
	"context"
	"os/exec"
	"strings"
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
