package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBroker runs `sluice broker` and waits until it accepts connections.
func startBroker(t *testing.T, addr, dir string) *proc {
	t.Helper()
	p := start(t, "broker", "--listen="+addr, "--data-dir="+dir)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("broker exited: %s", p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("broker did not listen on %s", addr)
	return nil
}

// outageMidRun runs a passthrough job (named job, with extra config) over n messages
// in 4 partitions on a fresh `sluice broker`; once the job's first outputs appear it
// stops the broker with SIGTERM, waits for outage, and starts it again on the same
// data directory. It returns the running job, its config file and the broker's address.
func outageMidRun(t *testing.T, n int, outage time.Duration, job string, extra ...string) (*proc, string, string) {
	t.Helper()
	const partitions = 4
	addr, dir := freePort(t), filepath.Join(t.TempDir(), "broker")
	b := startBroker(t, addr, dir)
	createTopics(t, addr, partitions, "in", "out")
	produce(t, addr, "in", partitions, "r", 0, n)
	cfg := passthroughConfig(t, addr, job, extra...)

	p := start(t, "run", "--config-path="+cfg)
	var before int64
	for wait := time.Now().Add(30 * time.Second); before == 0 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
		before = endTotal(t, addr, "out")
	}
	if before == 0 || before >= int64(n) {
		t.Fatalf("the broker outage must land mid-run, but %d of %d messages were copied; adjust the pacing", before, n)
	}
	t.Logf("stopping the broker for %v with %d of %d messages copied", outage, before, n)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("broker exited %d on SIGTERM: %s", code, b.stderr.String())
	}
	time.Sleep(outage)
	startBroker(t, addr, dir)
	return p, cfg, addr
}

// TestBrokerRestartLosesNothing stops and restarts `sluice broker` (same data directory)
// in the middle of a run. The job either rides it out or stops with an error; restarted
// as needed, every message reaches the output.
func TestBrokerRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	const n = 200_000
	job, cfg, addr := outageMidRun(t, n, 500*time.Millisecond, "restart", "task.commit.ms=100")

	runs, rodeOut := 1, false
	deadline := time.Now().Add(90 * time.Second)
	copied := newDistinctReader(t, addr, "out")
	for {
		select {
		case <-job.done:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("the job neither finished nor failed in 90 s; stderr:\n%s", tail(job.stderr.String(), 30))
			}
			// The output may hold duplicates: count the distinct messages.
			if copied.poll(100*time.Millisecond) < n {
				continue
			}
			// Everything is copied while the job still runs: it rode the restart out.
			rodeOut = runs == 1
			job.cmd.Process.Signal(syscall.SIGTERM)
			<-job.done
		}
		code := job.cmd.ProcessState.ExitCode()
		if code == 0 {
			break
		}
		if code != 1 || runs >= 5 {
			t.Fatalf("run %d exited %d; stderr:\n%s", runs, code, tail(job.stderr.String(), 30))
		}
		errLines := grep(job.stderr.String(), "level=ERROR")
		t.Logf("run %d stopped with an error (exit 1), restarting it: %s", runs, strings.Join(errLines[:min(2, len(errLines))], " | "))
		runs++
		job = start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	}
	t.Logf("the first run rode out the broker restart: %v", rodeOut)
	values := readAll(t, addr, "out")
	distinct, dups, missing := counts(values, "r", n)
	t.Logf("runs %d, outputs %d, distinct %d, duplicates %d", runs, len(values), distinct, dups)
	if len(missing) > 0 {
		t.Fatalf("%d messages lost across the broker restart, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	fmt.Fprintf(testOutput{t}, "broker restart: %d runs, %d inputs, %d outputs, 0 lost\n", runs, n, len(values))
}

// TestBrokerOutageLongerThanDeliveryTimeout stops the broker for longer than the
// producer's delivery.timeout.ms in the middle of a run, then starts it again: outputs
// sent meanwhile fail, so the job must stop with an error and must not checkpoint past
// them (not even in the final commit of its shutdown, which can write once the broker
// is back). Restarted, it copies everything: nothing is lost.
func TestBrokerOutageLongerThanDeliveryTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	const n = 200_000
	// Longer than delivery.timeout.ms, shorter than the checkpoint write's retries
	// (task.checkpoint.write.timeout.ms, 60 s), so a final commit could still write.
	job, cfg, addr := outageMidRun(t, n, 3*time.Second, "outage", "task.commit.ms=100",
		"systems.kafka.producer.delivery.timeout.ms=1000", "systems.kafka.producer.request.timeout.ms=500")
	if code := job.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("the job exited %d after its outputs failed, want 1; stderr:\n%s", code, tail(job.stderr.String(), 30))
	}
	log := job.stderr.String()
	if len(grep(log, "level=ERROR", "could not be delivered")) == 0 {
		t.Errorf("the job's error does not say that its outputs failed; stderr:\n%s", tail(log, 30))
	}
	if len(grep(log, "no final commit for this task")) == 0 {
		t.Errorf("the first run did not say it skipped the final commit of the tasks whose outputs failed; stderr:\n%s", tail(log, 30))
	}
	for _, l := range grep(log, "container failing") {
		t.Logf("first run: %s", l)
	}

	job = start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := job.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("the restarted job exited %d; stderr:\n%s", code, tail(job.stderr.String(), 30))
	}
	values := readAll(t, addr, "out")
	distinct, dups, missing := counts(values, "r", n)
	t.Logf("outputs %d, distinct %d, duplicates %d", len(values), distinct, dups)
	if len(missing) > 0 {
		t.Fatalf("%d messages lost after an outage longer than delivery.timeout.ms, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}
