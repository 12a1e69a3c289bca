package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/broker"
	"github.com/sluice-streams/sluice/cli"
)

func TestQuickstartResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), []string{"quickstart", "--data-dir=" + dir, "--listen=127.0.0.1:0"}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "The job processed 1000 messages this run") {
			t.Errorf("run %d: stdout:\n%s", run, stdout.String())
		}
		want := map[int]string{1: "PageViewEventCopy now holds 1000.", 2: "PageViewEventCopy now holds 2000."}[run]
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d: stdout lacks %q:\n%s", run, want, stdout.String())
		}
		fromCheckpoint := strings.Count(stderr.String(), "reason=checkpoint")
		if run == 1 && fromCheckpoint != 0 || run == 2 && fromCheckpoint != 4 {
			t.Errorf("run %d: %d partitions started from a checkpoint:\n%s", run, fromCheckpoint, stderr.String())
		}
	}
}

// TestQuickstartSavedConfigurationIsLive runs the quickstart without --listen while
// its default address, 127.0.0.1:9092, is taken: it falls back to a free port, says
// so, and its closing lines give the command that serves its data on that address
// again. With that broker running, the saved configuration works.
func TestQuickstartSavedConfigurationIsLive(t *testing.T) {
	if ln, err := net.Listen("tcp", broker.DefaultListen); err == nil {
		defer ln.Close() // else something else holds it, which is as good
	}
	dir := t.TempDir()
	r := cliRun(t, "quickstart", "--data-dir="+dir)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, broker.DefaultListen+" is in use, so the embedded broker listens on a free port instead.\n") {
		t.Errorf("stdout does not say the default address is taken:\n%s", r.stdout)
	}
	m := regexp.MustCompile(`(?m)^  sluice (broker --data-dir=\S+ --listen=(\S+))\n  sluice (run --config-path=(\S+))$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout does not say how to serve the data again:\n%s", r.stdout)
	}
	addr, cfgPath := m[2], m[4]
	if addr == broker.DefaultListen || !strings.Contains(r.stdout, "Embedded broker on "+addr+" ") {
		t.Errorf("the closing lines name %s:\n%s", addr, r.stdout)
	}
	cfg, err := os.ReadFile(cfgPath)
	if err != nil || !strings.Contains(string(cfg), "bootstrap.servers="+addr+"\n") || !strings.Contains(string(cfg), "#   sluice "+m[1]+"\n") {
		t.Fatalf("%s does not name %s and the broker command: %v\n%s", cfgPath, addr, err, cfg)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	brokerLog, w := io.Pipe()
	served := make(chan int, 1)
	go func() {
		served <- cli.Main(ctx, strings.Fields(m[1]), io.Discard, w)
		w.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(brokerLog)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if _, log, ok := awaitLine(lines, "serving the Kafka protocol"); !ok {
		t.Fatalf("sluice %s did not serve:\n%s", m[1], log)
	}
	rest := drain(lines)
	run := cliRun(t, append(strings.Fields(m[3]), "--exit-when-caught-up")...)
	if run.code != 0 || !strings.Contains(run.stderr, "processed=0 ") || strings.Count(run.stderr, "reason=checkpoint") != 4 {
		t.Errorf("sluice %s with the quickstart's broker served again: exit %d, want 0 with every partition at its checkpoint and nothing to do:\n%s", m[3], run.code, run.stderr)
	}
	cancel()
	if code := <-served; code != 0 {
		t.Errorf("broker: exit %d\n%s", code, rest())
	}
}

// TestQuickstartKeepBroker: with --keep-broker the broker serves after the job until
// the command is stopped, and other commands can use it meanwhile.
func TestQuickstartKeepBroker(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"quickstart", "--data-dir=" + dir, "--listen=127.0.0.1:0", "--keep-broker", "--log-level=warn"}, w, io.Discard)
		w.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	line, stdout, ok := awaitLine(lines, "keeps serving on ")
	if !ok {
		t.Fatalf("no line saying the broker keeps serving:\n%s", stdout)
	}
	rest := drain(lines)
	addr := regexp.MustCompile(`keeps serving on (\S+) `).FindStringSubmatch(line)[1]

	list := cliRun(t, "topic", "list", "--bootstrap="+addr)
	if list.code != 0 || !regexp.MustCompile(`(?m)^PageViewEventCopy +4 +1000$`).MatchString(list.stdout) {
		t.Errorf("topic list while the quickstart keeps its broker: exit %d\n%s%s", list.code, list.stdout, list.stderr)
	}
	tool := cliRun(t, "checkpoint-tool", "--config-path="+filepath.Join(dir, "page-view-copy.properties"))
	if tool.code != 0 || strings.Count(tool.stdout, "=250\n") != 4 {
		t.Errorf("checkpoint-tool while the quickstart keeps its broker: exit %d\n%s%s", tool.code, tool.stdout, tool.stderr)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after Ctrl-C\n%s", code, rest())
	}
}

func TestQuickstartTakenAddressGiven(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := cliRun(t, "quickstart", "--data-dir="+t.TempDir(), "--listen="+ln.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, ln.Addr().String()) || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("quickstart on a taken --listen address: exit %d, want 1 naming it\n%s%s", r.code, r.stdout, r.stderr)
	}
}
