package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/broker"
	"github.com/sluice-streams/sluice/cli"
)

// TestBrokerDataDirBelongsToOneProcess runs `sluice broker` in two processes on one
// data directory: the second exits 1 naming the directory and the first one's PID,
// and so does a quickstart on it. After the first is killed with SIGKILL, its PID is
// still in the lock file, but the kernel released its lock: a quickstart takes the
// directory.
func TestBrokerDataDirBelongsToOneProcess(t *testing.T) {
	qs := filepath.Join(t.TempDir(), "qs")
	dir := filepath.Join(qs, "broker") // where a quickstart in qs keeps its broker
	first := sluiceCmd(t, "broker", "--listen=127.0.0.1:0", "--data-dir="+dir)
	lines := logLines(t, first)
	if _, log, ok := awaitLine(lines, "serving the Kafka protocol"); !ok {
		t.Fatalf("first broker did not start:\n%s", log)
	}
	firstLog := drain(lines)
	pid := strconv.Itoa(first.Process.Pid)

	second := sluiceCmd(t, "broker", "--listen=127.0.0.1:0", "--data-dir="+dir)
	_, log, served := awaitLine(logLines(t, second), "serving the Kafka protocol")
	if served {
		second.Process.Kill()
		second.Wait()
		t.Fatalf("a second broker started on %s while process %s serves it:\n%s", dir, pid, log)
	}
	second.Wait()
	if code := second.ProcessState.ExitCode(); code != 1 || !strings.Contains(log, dir) || !strings.Contains(log, "process "+pid) {
		t.Fatalf("second broker: exit %d, want 1 with a message naming %s and process %s:\n%s", code, dir, pid, log)
	}

	var stdout, stderr bytes.Buffer
	code := cli.Main(t.Context(), []string{"quickstart", "--data-dir=" + qs, "--listen=127.0.0.1:0"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), dir) || !strings.Contains(stderr.String(), "process "+pid) {
		t.Fatalf("quickstart on the served directory: exit %d, want 1 naming %s and process %s:\n%s%s", code, dir, pid, stdout.String(), stderr.String())
	}

	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	firstLog()
	if b, err := os.ReadFile(filepath.Join(dir, broker.LockFile)); err != nil || strings.TrimSpace(string(b)) != pid {
		t.Fatalf("after SIGKILL the lock file holds %q, %v; want the stale PID %s", b, err, pid)
	}
	stdout.Reset()
	stderr.Reset()
	if code := cli.Main(t.Context(), []string{"quickstart", "--data-dir=" + qs, "--listen=127.0.0.1:0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("quickstart after the broker was killed: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "PageViewEventCopy now holds 1000.") {
		t.Errorf("quickstart after the broker was killed:\n%s", stdout.String())
	}
}
