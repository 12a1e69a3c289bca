package e2e

import (
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
