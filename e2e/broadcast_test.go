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
	rerunCopiesNothing(t, seeds, cfg)
}

// TestStreamRolesInGroupMode runs Samza's stream roles with two containers sharing a
// job's 4 tasks through the task group, the second joining while the first runs: the
// table (a bootstrap stream, reread from its oldest on every assignment) comes first in
// every task's output, every task copies every message of the broadcast control topic,
// and records of the input are deleted only below the job's checkpoints.
func TestStreamRolesInGroupMode(t *testing.T) {
	const partitions = 4
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "table", "out")
	createTopics(t, seeds, 1, "control")
	produce(t, seeds, "table", partitions, "t", 0, 400)
	produce(t, seeds, "in", partitions, "m", 0, 2000)
	produce(t, seeds, "control", 1, "c", 0, 10)
	cfg := groupConfig(t, seeds, "roles",
		"task.inputs=kafka.in,kafka.table",
		"task.broadcast.inputs=kafka.control#0",
		"systems.kafka.streams.table.samza.bootstrap=true",
		"systems.kafka.streams.table.samza.reset.offset=true",
		"systems.kafka.streams.in.samza.delete.committed.messages=true",
		"systems.kafka.samza.delete.committed.messages.interval.ms=100")
	a := start(t, "run", "--config-path="+cfg)
	waitLog(t, a, 30*time.Second, "task group: this container gained tasks")
	b := start(t, "run", "--config-path="+cfg)
	waitLog(t, b, 30*time.Second, "task group: this container gained tasks")
	produce(t, seeds, "in", partitions, "m", 2000, 2000)
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, _, missing := counts(readAll(t, seeds, "out"), "m", 4000)
		deleted := len(grep(a.stderr.String(), "deleted committed messages")) + len(grep(b.stderr.String(), "deleted committed messages"))
		if len(missing) == 0 && deleted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4000 inputs not copied, %d deletions logged:\n%s\n---\n%s", len(missing), deleted, tail(a.stderr.String(), 15), tail(b.stderr.String(), 15))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// sluice status names who runs each task: both containers, dynamic members.
	st := start(t, "status", "--config-path="+cfg)
	if code := st.wait(t, time.Minute); code != 0 {
		t.Errorf("sluice status exited %d while the job runs:\n%s", code, st.stderr.String())
	}
	status := st.stdout.String()
	t.Logf("sluice status:\n%s", status)
	if n := strings.Count(status, "dynamic@"); n != partitions {
		t.Errorf("sluice status names the container of %d tasks, want %d:\n%s", n, partitions, status)
	}
	for _, p := range []*proc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range []*proc{a, b} {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("SIGTERM: exit %d:\n%s", code, tail(p.stderr.String(), 20))
		}
	}
	for part, values := range readPartitions(t, seeds, "out", partitions) {
		// The first owner of the task read its 100 table rows before any input.
		for i, v := range values[:100] {
			if !strings.HasPrefix(v, "t-") {
				t.Fatalf("out#%d: record %d is %q: an input was processed before the table was loaded", part, i, v)
			}
		}
	}
	copies := controlCopies(readAll(t, seeds, "out"))
	for i := range 10 {
		if c := copies[fmt.Sprintf("c-%d", i)]; c < partitions {
			t.Errorf("control message c-%d copied %d times, want at least %d (every task)", i, c, partitions)
		}
	}
	cps, _ := readKafkaCheckpoints(t, seeds, "__samza_checkpoint_roles_1", "kafka", "in", partitions)
	starts := listStarts(t, kadm.NewClient(client(t, seeds)), "in")
	deletedSome := false
	for part := range int32(partitions) {
		if starts[part] > cps[part] {
			t.Errorf("in#%d starts at %d, past its checkpoint %d", part, starts[part], cps[part])
		}
		deletedSome = deletedSome || starts[part] > 0
	}
	if !deletedSome {
		t.Errorf("no record of the input was deleted: log starts %v, checkpoints %v", starts, cps)
	}
	t.Logf("input log starts %v, checkpoints %v, control copies %v", starts, cps, copies)
}
