package e2e

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConfig is a passthrough job whose containers share its tasks through the
// job's Kafka task group.
func groupConfig(t *testing.T, seeds, job string, extra ...string) string {
	return passthroughConfig(t, seeds, job, append([]string{
		"job.coordinator.factory=kafka",
		"job.coordinator.replication.factor=1",
		"job.coordinator.session.timeout.ms=6000",
		"task.commit.ms=200",
	}, extra...)...)
}

// feeder writes "<prefix>-<i>" messages round-robin until stopped, and says how many.
type feeder struct {
	stop chan struct{}
	n    chan int
}

func feed(t *testing.T, seeds, topic string, partitions int32, prefix string) *feeder {
	f := &feeder{stop: make(chan struct{}), n: make(chan int, 1)}
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	go func() {
		i := 0
		for {
			select {
			case <-f.stop:
				f.n <- i
				return
			default:
			}
			if err := produceWith(cl, topic, partitions, prefix, i, 120); err != nil {
				t.Error(err)
			}
			i += 120
			time.Sleep(5 * time.Millisecond) // pacing
		}
	}()
	return f
}

func (f *feeder) finish() int {
	close(f.stop)
	return <-f.n
}

// waitLog waits until p's log has a line with every one of words.
func waitLog(t *testing.T, p *proc, limit time.Duration, words ...string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(grep(p.stderr.String(), words...)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v:\n%s", words, limit, tail(p.stderr.String(), 20))
		}
		select {
		case <-p.done:
			t.Fatalf("exited before logging %q:\n%s", words, tail(p.stderr.String(), 20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestGroupScaleOutAndFailover runs a job in group mode: three containers share 12
// partitions while input keeps arriving; one is SIGKILLed (the others take its tasks
// once its session expires), a fourth joins, another stops with SIGTERM. Every input
// reaches the output; duplicates come only from the SIGKILL.
func TestGroupScaleOutAndFailover(t *testing.T) {
	const partitions = 12
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := groupConfig(t, seeds, "group")
	f := feed(t, seeds, "in", partitions, "g")
	var procs []*proc
	for range 3 {
		procs = append(procs, start(t, "run", "--config-path="+cfg))
	}
	for _, p := range procs {
		waitLog(t, p, 30*time.Second, "task group: this container gained tasks")
	}
	time.Sleep(time.Second) // let them work
	killed := procs[0]
	killed.kill()
	fourth := start(t, "run", "--config-path="+cfg)
	waitLog(t, fourth, 30*time.Second, "task group: this container gained tasks")
	procs[1].cmd.Process.Signal(syscall.SIGTERM)
	if code := procs[1].wait(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d:\n%s", code, tail(procs[1].stderr.String(), 20))
	}
	time.Sleep(8 * time.Second) // the killed container's session expires; its tasks move
	n := f.finish()
	survivors := []*proc{procs[2], fourth}
	for deadline := time.Now().Add(60 * time.Second); ; {
		distinct, _, _ := counts(readAll(t, seeds, "out"), "g", n)
		if distinct == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d inputs in the output:\n%s\n---\n%s", distinct, n, tail(procs[2].stderr.String(), 15), tail(fourth.stderr.String(), 15))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, p := range survivors {
		p.cmd.Process.Signal(syscall.SIGTERM)
		wg.Go(func() {
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Errorf("SIGTERM: exit %d:\n%s", code, tail(p.stderr.String(), 20))
			}
		})
	}
	wg.Wait()
	out := readAll(t, seeds, "out")
	distinct, dups, missing := counts(out, "g", n)
	t.Logf("inputs %d, outputs %d, distinct %d, duplicates %d", n, len(out), distinct, dups)
	if len(missing) > 0 {
		t.Errorf("lost %d inputs, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for i, p := range append(procs, fourth) {
		for _, l := range grep(p.stderr.String(), "task group:") {
			t.Logf("container %d: %s", i, l)
		}
		for _, l := range grep(p.stderr.String(), "level=ERROR") {
			if !strings.Contains(l, "kafka client") {
				t.Logf("error logged: %s", l)
			}
		}
	}
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("rerun exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	if after := len(readAll(t, seeds, "out")); after != len(out) {
		t.Errorf("a rerun after a clean stop processed %d messages again", after-len(out))
	}
}

// TestGroupRefusesOtherSettingsAndDuplicateIDs: a container whose inputs differ from
// the group's is refused, naming the difference; a second container with the same
// --container-id is refused, naming the one that runs.
func TestGroupRefusesOtherSettingsAndDuplicateIDs(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 4, "in", "out", "more")
	cfg := groupConfig(t, seeds, "refuse")
	first := start(t, "run", "--config-path="+cfg, "--container-id=1")
	waitLog(t, first, 30*time.Second, "task group: this container gained tasks")

	other := start(t, "run", "--config-path="+groupConfig(t, seeds, "refuse", "task.inputs=kafka.in,kafka.more"))
	if code := other.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("a container with other inputs exited %d, want 1:\n%s", code, tail(other.stderr.String(), 10))
	}
	if lines := grep(other.stderr.String(), "refused this container", `task.inputs is \"kafka.in,kafka.more\" in this container but \"kafka.in\" in the group`); len(lines) == 0 {
		t.Errorf("the refusal does not name the difference:\n%s", tail(other.stderr.String(), 10))
	}

	dup := start(t, "run", "--config-path="+cfg, "--container-id=1")
	if code := dup.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("a duplicate --container-id exited %d, want 1:\n%s", code, tail(dup.stderr.String(), 10))
	}
	if lines := grep(dup.stderr.String(), "already running"); len(lines) == 0 {
		t.Errorf("the duplicate's refusal does not name the running container:\n%s", tail(dup.stderr.String(), 10))
	}
	select {
	case <-first.done:
		t.Fatalf("the running container stopped:\n%s", tail(first.stderr.String(), 10))
	default:
	}
}

// TestGroupZombieStopsItsLostTasks freezes a container (SIGSTOP) beyond its session:
// the other takes its tasks. Continued (SIGCONT), the zombie learns it lost them and
// stops them; nothing is lost.
func TestGroupZombieStopsItsLostTasks(t *testing.T) {
	const partitions = 4
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := groupConfig(t, seeds, "zombie")
	f := feed(t, seeds, "in", partitions, "z")
	a := start(t, "run", "--config-path="+cfg)
	waitLog(t, a, 30*time.Second, "task group: this container gained tasks")
	b := start(t, "run", "--config-path="+cfg)
	waitLog(t, b, 30*time.Second, "task group: this container gained tasks")
	a.cmd.Process.Signal(syscall.SIGSTOP)
	// b takes a's tasks once a's session (6 s) expired.
	deadline := time.Now().Add(30 * time.Second)
	for len(grep(b.stderr.String(), "task group: this container gained tasks")) < 2 {
		if time.Now().After(deadline) {
			a.cmd.Process.Signal(syscall.SIGCONT)
			t.Fatalf("the frozen container's tasks did not move:\n%s", tail(b.stderr.String(), 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.cmd.Process.Signal(syscall.SIGCONT)
	woke := time.Now()
	for !closed(a.done) && len(grep(a.stderr.String(), "lost")) == 0 {
		if time.Since(woke) > 20*time.Second {
			t.Fatalf("the zombie did not learn it lost its tasks:\n%s", tail(a.stderr.String(), 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the zombie learnt it lost its tasks after %v: %s", time.Since(woke).Round(time.Millisecond), grep(a.stderr.String(), "lost"))
	n := f.finish()
	for deadline := time.Now().Add(60 * time.Second); ; {
		distinct, _, _ := counts(readAll(t, seeds, "out"), "z", n)
		if distinct == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d inputs in the output", distinct, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := readAll(t, seeds, "out")
	_, dups, _ := counts(out, "z", n)
	t.Logf("inputs %d, outputs %d, duplicates %d", n, len(out), dups)
}
