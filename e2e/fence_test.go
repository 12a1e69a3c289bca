package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fenceConfig writes the config of a passthrough job from "in" to "out" with Kafka or
// filesystem checkpoints.
func fenceConfig(t *testing.T, seeds, job, checkpoints string) string {
	if checkpoints == "filesystem" {
		return passthroughConfig(t, seeds, job, "task.checkpoint.factory=filesystem",
			"task.checkpoint.path="+filepath.Join(t.TempDir(), "checkpoints"), "task.commit.ms=200")
	}
	return passthroughConfig(t, seeds, job, "task.commit.ms=200")
}

// waitOutput waits until topic "out" holds at least n records.
func waitOutput(t *testing.T, seeds string, n int64, limit time.Duration, running *proc) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for endTotal(t, seeds, "out") < n {
		if closed(running.done) {
			t.Fatalf("sluice exited (code %d) before its output reached %d; stderr:\n%s", running.cmd.ProcessState.ExitCode(), n, tail(running.stderr.String(), 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the output did not reach %d within %v (it has %d); stderr:\n%s", n, limit, endTotal(t, seeds, "out"), tail(running.stderr.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDuplicateContainerRefused starts a container, then two more with the same
// --container-id: they exit 1 naming the one running, which goes on alone (its output
// has no duplicate). Killed with SIGKILL, the container starts again with the same id
// within a few seconds. Over both checkpoint managers.
func TestDuplicateContainerRefused(t *testing.T) {
	for _, checkpoints := range []string{"kafka", "filesystem"} {
		t.Run(checkpoints, func(t *testing.T) {
			const n, partitions = 20_000, 4
			_, seeds := cluster(t)
			createTopics(t, seeds, partitions, "in", "out")
			produce(t, seeds, "in", partitions, "m", 0, n)
			cfg := fenceConfig(t, seeds, "fenced-"+checkpoints, checkpoints)

			first := start(t, "run", "--config-path="+cfg, "--container-id=0")
			waitOutput(t, seeds, 1, 30*time.Second, first)
			pid := first.cmd.Process.Pid
			var wg sync.WaitGroup
			for range 2 {
				dup := start(t, "run", "--config-path="+cfg, "--container-id=0")
				wg.Go(func() {
					if code := dup.wait(t, 30*time.Second); code != 1 {
						t.Errorf("a duplicate container exited %d, want 1; stderr:\n%s", code, tail(dup.stderr.String(), 20))
					}
					stderr := dup.stderr.String()
					if !strings.Contains(stderr, "container 0 of job") || !strings.Contains(stderr, "is already running: process "+strconv.Itoa(pid)+" on host") {
						t.Errorf("a duplicate container does not name the running one (process %d):\n%s", pid, tail(stderr, 20))
					}
				})
			}
			wg.Wait()
			if closed(first.done) {
				t.Fatalf("the running container exited (code %d); stderr:\n%s", first.cmd.ProcessState.ExitCode(), tail(first.stderr.String(), 30))
			}
			waitOutput(t, seeds, n, 60*time.Second, first)
			if got := grep(first.stderr.String(), "another process started this container too"); checkpoints == "kafka" && len(got) == 0 {
				t.Errorf("the running container does not log the refused duplicates:\n%s", tail(first.stderr.String(), 30))
			}
			distinct, dups, missing := counts(readAll(t, seeds, "out"), "m", n)
			if dups != 0 || len(missing) != 0 || distinct != n {
				t.Fatalf("output: %d distinct, %d duplicates, %d missing; want each of the %d inputs once", distinct, dups, len(missing), n)
			}

			// Killed, the container starts again with the same id at once (Kafka: the
			// killed process is listed until its session times out, but it was of
			// this host and has exited, so the restart does not wait for it).
			first.kill()
			produce(t, seeds, "in", partitions, "m", n, 1000)
			began := time.Now()
			again := start(t, "run", "--config-path="+cfg, "--container-id=0")
			waitOutput(t, seeds, n+1, 20*time.Second, again)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("the restarted container took %v to process anything", took)
			}
			if checkpoints == "kafka" && len(grep(again.stderr.String(), "a process of this host that has exited", "process "+strconv.Itoa(pid))) == 0 {
				t.Errorf("the restarted container does not say that the killed one (process %d) is gone:\n%s", pid, tail(again.stderr.String(), 30))
			}
			waitOutput(t, seeds, n+1000, 60*time.Second, again)
		})
	}
}

// TestSimultaneousDuplicateContainers starts three identical containers at once:
// exactly one keeps running and processes every input; the other two exit 1 naming a
// process that runs the container.
func TestSimultaneousDuplicateContainers(t *testing.T) {
	for _, checkpoints := range []string{"kafka", "filesystem"} {
		t.Run(checkpoints, func(t *testing.T) {
			const n, partitions = 20_000, 4
			_, seeds := cluster(t)
			createTopics(t, seeds, partitions, "in", "out")
			produce(t, seeds, "in", partitions, "m", 0, n)
			cfg := fenceConfig(t, seeds, "thrice-"+checkpoints, checkpoints)
			var ps []*proc
			for range 3 {
				ps = append(ps, start(t, "run", "--config-path="+cfg))
			}
			pids := map[int]bool{}
			for _, p := range ps {
				pids[p.cmd.Process.Pid] = true
			}
			deadline := time.Now().Add(30 * time.Second)
			var alive []*proc
			for {
				alive = alive[:0]
				for _, p := range ps {
					if !closed(p.done) {
						alive = append(alive, p)
					}
				}
				if len(alive) <= 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(alive) != 1 {
				for _, p := range ps {
					t.Logf("process %d:\n%s", p.cmd.Process.Pid, tail(p.stderr.String(), 15))
				}
				t.Fatalf("%d containers still run 30 s after three identical ones started, want 1", len(alive))
			}
			for _, p := range ps {
				if p == alive[0] {
					continue
				}
				if code := p.cmd.ProcessState.ExitCode(); code != 1 {
					t.Errorf("a duplicate exited %d, want 1", code)
				}
				named := false
				for pid := range pids {
					if pid != p.cmd.Process.Pid && strings.Contains(p.stderr.String(), fmt.Sprintf("process %d on host", pid)) {
						named = true
					}
				}
				stderr := p.stderr.String()
				if !named || !strings.Contains(stderr, "already running") && !strings.Contains(stderr, "was taken over by") {
					t.Errorf("a duplicate that exited does not name the process running the container:\n%s", tail(stderr, 20))
				}
			}
			waitOutput(t, seeds, n, 60*time.Second, alive[0])
			_, dups, missing := counts(readAll(t, seeds, "out"), "m", n)
			if len(missing) != 0 {
				t.Fatalf("%d inputs missing from the output", len(missing))
			}
			t.Logf("%d duplicates while the three started", dups)
		})
	}
}
