package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint/filesystem"
)

// killPartitions is the number of input partitions (and tasks) of the kill tests.
const killPartitions = 8

// killEnv is a job of killPartitions tasks whose input partitions hold 3 messages
// each, and whose every task has checkpoint 0 (the old checkpoints): a run from them
// outputs every message once. The rewrite the tests kill moves every task to 3, the
// end (the new checkpoints): a run from them outputs nothing.
func killEnv(t *testing.T, factory string) *toolEnv {
	t.Helper()
	e := newToolEnvN(t, killPartitions, "task.checkpoint.factory", factory, "task.checkpoint.system", "kafka")
	for p := range int32(killPartitions) {
		e.produce(t, "PageViewEvent", p, 3, t0)
	}
	if r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=oldest"); r.code != 0 {
		t.Fatalf("writing the old checkpoints: exit %d\n%s", r.code, r.stderr)
	}
	return e
}

// killMidRewrite starts `checkpoint-tool --reset-to=upcoming` as a process, stops it
// once it has stored the checkpoints of 3 tasks, kills it with SIGKILL and returns its
// stderr.
func killMidRewrite(t *testing.T, e *toolEnv, extra ...string) string {
	t.Helper()
	p := startSluice(t, []string{helperPauseEnv + "=3"}, append([]string{"checkpoint-tool", "--config-path=" + e.cfg, "--reset-to=upcoming"}, extra...)...)
	p.waitStderr(t, pausedMarker, time.Minute)
	p.kill(t)
	return p.stderr.String()
}

// newFiles counts the checkpoint files that hold the new offset (3), reading the files
// themselves: a manager's Start would finish the rewrite first.
func (e *toolEnv) newFiles(t *testing.T) int {
	t.Helper()
	n := 0
	for p := range killPartitions {
		b, err := os.ReadFile(e.checkpointPath(t, fmt.Sprintf("Partition %d", p)))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"offset":"3"`)) {
			n++
		}
	}
	return n
}

// runUntilStarted runs the job to the end, retrying while it refuses to start
// because the killed tool still holds the run lock (a Kafka group member stays
// listed until its session times out).
func (e *toolEnv) runUntilStarted(t *testing.T) toolRun {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=info")
		if r.code == 0 {
			return r
		}
		if !strings.Contains(r.stderr, "checkpoint tool is rewriting") || time.Now().After(deadline) {
			t.Fatalf("sluice run after the kill: exit %d\n%s", r.code, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCheckpointToolKilledMidRewrite kills a real checkpoint tool process part way
// through a rewrite of 8 tasks and checks that what comes next sees the old
// checkpoints of every task or the new ones of every task, never a mix: with the
// filesystem manager the rewrite is finished (it was committed by its intent file),
// by sluice run or by the next tool; with Kafka it never happened (its transaction
// was not committed).
func TestCheckpointToolKilledMidRewrite(t *testing.T) {
	t.Parallel()
	allOld := map[int32]int{}
	for p := range int32(killPartitions) {
		allOld[p] = 3
	}
	t.Run("filesystem, then sluice run", func(t *testing.T) {
		t.Parallel()
		e := killEnv(t, "filesystem")
		killMidRewrite(t, e)
		if n := e.newFiles(t); n != 3 {
			t.Fatalf("%d checkpoint files hold the new offsets after the kill, want 3 (killed part way)", n)
		}
		r := e.runUntilStarted(t)
		if !strings.Contains(r.stderr, "finished an interrupted checkpoint rewrite") {
			t.Errorf("sluice run does not say that it finished the rewrite:\n%s", r.stderr)
		}
		if n := e.count(t, "out"); n != 0 {
			t.Errorf("sluice run output %d messages, want 0: it did not start from the new checkpoints of every task", n)
		}
		e.wantPrinted(t, "3")
	})
	t.Run("filesystem, then the tool", func(t *testing.T) {
		t.Parallel()
		e := killEnv(t, "filesystem")
		killMidRewrite(t, e)
		p := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg)
		if p.code != 0 || !strings.Contains(p.stderr, "finished an interrupted checkpoint rewrite") {
			t.Errorf("print after the kill: exit %d, want 0 and a warning that it finished the rewrite:\n%s", p.code, p.stderr)
		}
		e.wantPrinted(t, "3")
		if n := e.newFiles(t); n != killPartitions {
			t.Errorf("%d files hold the new offsets, want all %d", n, killPartitions)
		}
	})
	t.Run("kafka, then sluice run", func(t *testing.T) {
		t.Parallel()
		e := killEnv(t, "kafka")
		before := e.topicEnd(t)
		killMidRewrite(t, e)
		if end := e.topicEnd(t); end != before+killPartitions {
			t.Fatalf("the checkpoint topic grew by %d records, want %d (every record written, none committed)", end-before, killPartitions)
		}
		e.runUntilStarted(t)
		wantEach(t, e.outputs(t), allOld, 1)
	})
	t.Run("kafka, then the tool", func(t *testing.T) {
		t.Parallel()
		e := killEnv(t, "kafka")
		killMidRewrite(t, e)
		e.wantPrinted(t, "0")
		// The next rewrite is refused while the killed tool is still listed in the
		// run-lock group, then works.
		deadline := time.Now().Add(time.Minute)
		for {
			r := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=upcoming")
			if r.code == 0 {
				break
			}
			if !strings.Contains(r.stderr, "another checkpoint tool is rewriting") || time.Now().After(deadline) {
				t.Fatalf("rewrite after the kill: exit %d\n%s", r.code, r.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		e.wantPrinted(t, "3")
	})
}

// TestCheckpointToolForceWhileStopped checks what docs/checkpoint-tool.md says about
// --force while the job is stopped: it changes nothing, the tool still holds the
// job's lock while it writes (a container started meanwhile is refused) and warns
// about nothing.
func TestCheckpointToolForceWhileStopped(t *testing.T) {
	t.Parallel()
	for _, factory := range []string{"filesystem", "kafka"} {
		t.Run(factory, func(t *testing.T) {
			t.Parallel()
			e := killEnv(t, factory)
			p := startSluice(t, []string{helperPauseEnv + "=3"}, "checkpoint-tool", "--config-path="+e.cfg, "--reset-to=upcoming", "--force")
			p.waitStderr(t, pausedMarker, time.Minute)
			r := e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=warn")
			if r.code != 1 || !strings.Contains(r.stderr, "checkpoint tool is rewriting") {
				t.Errorf("sluice run while the tool writes with --force: exit %d, want 1 and a refusal:\n%s", r.code, r.stderr)
			}
			if strings.Contains(p.stderr.String(), "warning:") {
				t.Errorf("the tool warned with the job stopped:\n%s", p.stderr.String())
			}
			p.kill(t)
		})
	}
}

// wantPrinted checks that the tool prints offset off for every partition.
func (e *toolEnv) wantPrinted(t *testing.T, off string) {
	t.Helper()
	_, lines := e.printLines(t, e.cfg)
	var want []string
	for p := range killPartitions {
		want = append(want, fmt.Sprintf(`tasknames.Partition\ %d.systems.kafka.streams.PageViewEvent.partitions.%d=%s`, p, p, off))
	}
	wantToolLines(t, lines, want...)
}

// checkpointPath is the file of task's checkpoint in the env's filesystem store.
func (e *toolEnv) checkpointPath(t *testing.T, task string) string {
	t.Helper()
	m, err := filesystem.New(filepath.Join(e.dir, "checkpoints"), "page-views", "1") // not started: it finishes nothing
	if err != nil {
		t.Fatal(err)
	}
	return m.Path(task)
}
