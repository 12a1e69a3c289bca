package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestInputGrowsWhileRunning: a 2-partition input grown to 4 while `sluice run` runs
// (samza.offset.default=upcoming, the built-in default). Within its monitor interval
// the job adds tasks for the new partitions, without a restart, reading them from
// their oldest offset, so every message written after the job started reaches the
// output; SIGTERM then stops it cleanly and a rerun processes nothing again.
func TestInputGrowsWhileRunning(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 2, "in")
	createTopics(t, seeds, 4, "out")
	cfg := writeConfig(t,
		"job.name=grow",
		"task.class=passthrough",
		"task.inputs=kafka.in",
		"task.passthrough.output=kafka.out",
		"systems.kafka.samza.factory=kafka",
		"systems.kafka.consumer.bootstrap.servers="+seeds,
		"task.checkpoint.factory=kafka",
		"task.checkpoint.system=kafka",
		"task.checkpoint.replication.factor=1",
		"task.commit.ms=60000",
		"job.partition.monitor.ms=200",
	)
	p := start(t, "run", "--config-path="+cfg)
	// Wait until the job copies: probes written before it reads are skipped (upcoming).
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; endTotal(t, seeds, "out") == 0; i++ {
		if i == 500 {
			t.Fatalf("the job copied nothing in 10 s:\n%s", tail(p.stderr.String(), 20))
		}
		if err := produceWith(cl, "in", 2, "probe", i, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := adm.CreatePartitions(ctx, 2, "in"); err != nil || resp.Error() != nil {
		t.Fatalf("add partitions: %v %v", err, resp.Error())
	}
	grown := time.Now()
	const n = 400
	produce(t, seeds, "in", 4, "m", 0, n)
	for deadline := time.Now().Add(20 * time.Second); ; {
		var got int
		for _, v := range readAll(t, seeds, "out") {
			if strings.HasPrefix(v, "m-") {
				got++
			}
		}
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages copied 20 s after the input grew:\n%s", got, n, tail(p.stderr.String(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(grown); took > 10*time.Second { // 200 ms monitoring, on a loaded machine
		t.Errorf("the job took %v to read the new partitions", took)
	}
	for _, part := range []string{"kafka.in#2", "kafka.in#3"} {
		if lines := grep(p.stderr.String(), "partition added after the job started", part, "offset=0"); len(lines) != 1 {
			t.Errorf("the job did not log reading %s from its oldest offset:\n%s", part, tail(p.stderr.String(), 20))
		}
	}
	if lines := grep(p.stderr.String(), "task added"); len(lines) != 2 {
		t.Errorf("%d tasks added while running, want 2:\n%s", len(lines), tail(p.stderr.String(), 20))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, tail(p.stderr.String(), 20))
	}
	rerunCopiesNothing(t, seeds, cfg)
	var ms []string
	for _, v := range readAll(t, seeds, "out") {
		if strings.HasPrefix(v, "m-") {
			ms = append(ms, v)
		}
	}
	distinct, _, missing := counts(ms, "m", n)
	if distinct != n {
		t.Errorf("%d of %d messages written after the input grew are in the output; missing e.g. %v", distinct, n, missing[:min(5, len(missing))])
	}
}

// TestTasksRestartWhenAnotherInputGrows: inputs side (4 partitions) and in (2), so
// tasks 2 and 3 read side alone. When in grows to 4 they are committed, removed and
// added again reading in too, while side keeps arriving; no message of either input
// is lost or copied twice.
func TestTasksRestartWhenAnotherInputGrows(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 2, "in")
	createTopics(t, seeds, 4, "side", "out")
	produce(t, seeds, "side", 4, "side", 0, 400)
	produce(t, seeds, "in", 2, "in", 0, 100)
	cfg := passthroughConfig(t, seeds, "restart", "task.inputs=kafka.in,kafka.side", "job.partition.monitor.ms=200", "task.commit.ms=60000")
	p := start(t, "run", "--config-path="+cfg)
	for deadline := time.Now().Add(20 * time.Second); endTotal(t, seeds, "out") < 500; {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not copy the first 500 messages:\n%s", tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	stop := make(chan struct{})
	fed := make(chan int)
	go func() { // side keeps arriving through the restart
		i := 400
		for {
			select {
			case <-stop:
				fed <- i
				return
			default:
			}
			if err := produceWith(cl, "side", 4, "side", i, 40); err != nil {
				t.Error(err)
			}
			i += 40
		}
	}()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := adm.CreatePartitions(ctx, 2, "in"); err != nil || resp.Error() != nil {
		t.Fatalf("add partitions: %v %v", err, resp.Error())
	}
	produce(t, seeds, "in", 4, "in", 100, 200)
	for deadline := time.Now().Add(20 * time.Second); len(grep(p.stderr.String(), "task added")) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("tasks 2 and 3 were not added again:\n%s", tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	sides := <-fed
	want := 300 + sides
	for deadline := time.Now().Add(20 * time.Second); endTotal(t, seeds, "out") < int64(want); {
		if time.Now().After(deadline) {
			t.Fatalf("copied %d of %d messages:\n%s", endTotal(t, seeds, "out"), want, tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, tail(p.stderr.String(), 20))
	}
	if removed := grep(p.stderr.String(), "task removed", "its input partitions changed"); len(removed) != 2 {
		t.Errorf("%d tasks removed, want 2 (tasks 2 and 3):\n%s", len(removed), tail(p.stderr.String(), 20))
	}
	out := readAll(t, seeds, "out")
	var ins, side []string
	for _, v := range out {
		if strings.HasPrefix(v, "side-") {
			side = append(side, v)
		} else {
			ins = append(ins, v)
		}
	}
	for _, c := range []struct {
		name   string
		values []string
		n      int
	}{{"in", ins, 300}, {"side", side, sides}} {
		distinct, dups, missing := counts(c.values, c.name, c.n)
		if distinct != c.n || dups != 0 {
			t.Errorf("%s: %d distinct of %d, %d duplicates, missing e.g. %v", c.name, distinct, c.n, dups, missing[:min(5, len(missing))])
		}
	}
	t.Logf("copied %d messages of in and %d of side, through the restart of tasks 2 and 3", len(ins), len(side))
}
