package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// controlCopies counts the copies of each control message ("c-<i>") in values.
func controlCopies(values []string) map[string]int {
	n := map[string]int{}
	for _, v := range values {
		if strings.HasPrefix(v, "c-") {
			n[v]++
		}
	}
	return n
}

// TestBroadcastInputOverKafka: a passthrough job over 4 input partitions with the
// 1-partition control topic as a broadcast input: every task copies every control
// message (to output partition 0), so each is in the output 4 times. While a second
// run goes on, the input grows to 6 partitions: the 2 new tasks read the control
// topic from its oldest message (the default), the 4 others only what is new to them.
// A rerun copies nothing: every task checkpointed its own control offset.
func TestBroadcastInputOverKafka(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 4, "in")
	createTopics(t, seeds, 1, "control")
	createTopics(t, seeds, 6, "out")
	produce(t, seeds, "in", 4, "m", 0, 100)
	produce(t, seeds, "control", 1, "c", 0, 20)
	cfg := passthroughConfig(t, seeds, "broadcast", "task.broadcast.inputs=kafka.control#0", "job.partition.monitor.ms=200", "task.commit.ms=100")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("first run exited %d:\n%s", code, tail(p.stderr.String(), 20))
	}
	copies := controlCopies(readAll(t, seeds, "out"))
	for i := range 20 {
		if c := copies[fmt.Sprintf("c-%d", i)]; c != 4 {
			t.Fatalf("control message c-%d copied %d times, want 4 (once per task): %v", i, c, copies)
		}
	}

	p = start(t, "run", "--config-path="+cfg)
	produce(t, seeds, "control", 1, "c", 20, 10)
	adm := kadm.NewClient(client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := adm.CreatePartitions(ctx, 2, "in"); err != nil || resp.Error() != nil {
		t.Fatalf("add partitions: %v %v", err, resp.Error())
	}
	// 4 tasks x 30 control messages, and 2 new tasks x 30.
	const want = 6 * 30
	for deadline := time.Now().Add(30 * time.Second); ; {
		total := 0
		for _, c := range controlCopies(readAll(t, seeds, "out")) {
			total += c
		}
		if total >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d control copies in the output, want %d:\n%s", total, want, tail(p.stderr.String(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, tail(p.stderr.String(), 20))
	}
	copies = controlCopies(readAll(t, seeds, "out"))
	for i := range 30 {
		if c := copies[fmt.Sprintf("c-%d", i)]; c != 6 {
			t.Errorf("control message c-%d copied %d times, want 6 (once per task, 6 tasks now)", i, c)
		}
	}
	before := endTotal(t, seeds, "out")
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("rerun exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	if after := endTotal(t, seeds, "out"); after != before {
		t.Errorf("the rerun copied %d messages again", after-before)
	}
}
