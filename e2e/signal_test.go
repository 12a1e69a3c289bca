package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSigtermCommitsAndExitsZero stops a caught-up job with SIGTERM: it exits 0 and
// its final commit covers every message, so a restart processes nothing again.
func TestSigtermCommitsAndExitsZero(t *testing.T) {
	const n, partitions = 2000, 4
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	produce(t, seeds, "in", partitions, "s", 0, n)
	// Periodic commits off: only the shutdown commit can cover the messages.
	cfg := passthroughConfig(t, seeds, "sigterm", "task.commit.ms=-1")
	p := start(t, "run", "--config-path="+cfg)
	for deadline := time.Now().Add(30 * time.Second); endTotal(t, seeds, "out") < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not copy %d messages in 30 s:\n%s", n, tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, tail(p.stderr.String(), 20))
	}
	if got := checkpointedTotal(t, cfg, partitions); got != n {
		t.Errorf("after SIGTERM the checkpoints cover %d messages, want %d", got, n)
	}
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("restart exited %d", code)
	}
	if got := endTotal(t, seeds, "out"); got != n {
		t.Errorf("the restart reprocessed: output holds %d, want %d", got, n)
	}
}

// TestSignalDuringStartUpExitsZero signals `sluice run` at moments spread over its
// start-up (connecting, creating the checkpoint topic, reading checkpoints, starting
// consumers). Each is a clean stop, exit 0; whatever was checkpointed is only ever
// what a finished run would have written, and the job runs normally afterwards.
func TestSignalDuringStartUpExitsZero(t *testing.T) {
	const n, partitions = 200, 4
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	produce(t, seeds, "in", partitions, "s", 0, n)
	cfg := passthroughConfig(t, seeds, "early-signal", "task.commit.ms=-1")
	for i, delay := range []time.Duration{15 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond, 250 * time.Millisecond} {
		sig := syscall.SIGTERM
		if i%2 == 1 {
			sig = syscall.SIGINT
		}
		p := start(t, "run", "--config-path="+cfg)
		time.Sleep(delay) // the moment of the signal is the point of the test
		p.cmd.Process.Signal(sig)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%v after %v: exit %d, want 0:\n%s", sig, delay, code, tail(p.stderr.String(), 20))
		}
		if lines := grep(p.stderr.String(), "context canceled"); len(lines) > 0 {
			t.Errorf("%v after %v logged errors:\n%s", sig, delay, lines[0])
		}
	}
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("run after the signals exited %d:\n%s", code, tail(p.stderr.String(), 20))
	}
	if got := checkpointedTotal(t, cfg, partitions); got != n {
		t.Errorf("checkpoints cover %d messages, want %d", got, n)
	}
}

// TestMissingOutputTopicFailsAtOnce: with its output topic missing, a job used to print
// healthy status lines until its first commit failed a minute later. Now it refuses
// at start, exit 1, naming the topic.
func TestMissingOutputTopicFailsAtOnce(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 2, "in")
	produce(t, seeds, "in", 2, "m", 0, 10)
	p := start(t, "run", "--config-path="+passthroughConfig(t, seeds, "no-output"))
	if code := p.wait(t, 20*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, tail(p.stderr.String(), 10))
	}
	if lines := grep(p.stderr.String(), "output stream kafka.out", `topic \"out\" does not exist`); len(lines) == 0 {
		t.Errorf("the failure does not name the missing topic:\n%s", tail(p.stderr.String(), 10))
	}
}

// TestOutputWithFewerPartitionsFailsWithinSeconds: passthrough from 4 partitions to a
// 2-partition output. The first message to partition 2 cannot be delivered; the job
// stops within seconds (not at its first commit, a minute later) with a message that
// says so, and checkpoints nothing of the partitions it could not deliver.
func TestOutputWithFewerPartitionsFailsWithinSeconds(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 4, "in")
	createTopics(t, seeds, 2, "out")
	produce(t, seeds, "in", 4, "m", 0, 40)
	cfg := passthroughConfig(t, seeds, "few-partitions", "task.commit.ms=60000")
	began := time.Now()
	p := start(t, "run", "--config-path="+cfg)
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, tail(p.stderr.String(), 10))
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the job took %v to fail", took)
	}
	if lines := grep(p.stderr.String(), `topic \"out\", which has 2 partitions (0..1)`); len(lines) == 0 {
		t.Errorf("the failure does not explain the partition count:\n%s", tail(p.stderr.String(), 10))
	}
	cps, _ := readKafkaCheckpoints(t, seeds, "__samza_checkpoint_few-partitions_1", "kafka", "in", 4)
	for _, p := range []int32{2, 3} {
		if cps[p] > 0 {
			t.Errorf("partition %d checkpointed at %d, but none of its messages could be delivered", p, cps[p])
		}
	}
}

// TestSecondSignalExitsAtOnce: a stop that cannot finish (the broker is frozen with
// SIGSTOP, so the final commit waits on it) ends at once with a second signal, exit 1.
// Nothing was checkpointed past what the job processed: after the broker is back, a
// restart copies every message.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	const n, partitions = 2000, 4
	addr, dir := freePort(t), filepath.Join(t.TempDir(), "broker")
	b := startBroker(t, addr, dir)
	createTopics(t, addr, partitions, "in", "out")
	produce(t, addr, "in", partitions, "s", 0, n)
	// Only the final commit could checkpoint anything.
	cfg := passthroughConfig(t, addr, "second-signal", "task.commit.ms=-1")
	p := start(t, "run", "--config-path="+cfg)
	for deadline := time.Now().Add(30 * time.Second); endTotal(t, addr, "out") < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not copy %d messages in 30 s:\n%s", n, tail(p.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.cmd.Process.Signal(syscall.SIGSTOP)
	defer b.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		t.Fatalf("the job stopped although its final commit cannot reach the broker:\n%s", tail(p.stderr.String(), 20))
	case <-time.After(500 * time.Millisecond): // the final commit is waiting on the frozen broker
	}
	second := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("exit %d after a second signal, want 1:\n%s", code, tail(p.stderr.String(), 20))
	}
	if took := time.Since(second); took > 2*time.Second {
		t.Errorf("the job took %v to exit after the second signal", took)
	}
	if lines := grep(p.stderr.String(), "second signal"); len(lines) == 0 {
		t.Errorf("the exit does not say why:\n%s", tail(p.stderr.String(), 5))
	}
	b.cmd.Process.Signal(syscall.SIGCONT)
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("restart exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	distinct, _, missing := counts(readAll(t, addr, "out"), "s", n)
	if distinct != n {
		t.Errorf("%d of %d messages in the output after the restart; missing e.g. %v", distinct, n, missing[:min(5, len(missing))])
	}
}
