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
	if took := time.Since(grown); took > 5*time.Second {
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
	before := endTotal(t, seeds, "out")
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("rerun exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	if after := endTotal(t, seeds, "out"); after != before {
		t.Errorf("the rerun processed %d messages again", after-before)
	}
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
