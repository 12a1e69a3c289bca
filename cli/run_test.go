package cli_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/cli"
)

func TestRunReportsEveryConfigProblemAndExits2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.properties")
	os.WriteFile(path, []byte(`# missing job.name
systems.kafka.samza.factory=kafka
systems.kafka.consumer.bootstrap.servers=127.0.0.1:1
systems.kafka.samza.offset.default=sometimes
task.commit.ms=soon
task.inputs=kafka.PageViewEvent,nosys.Clicks
task.class=passthrough
job.http.stall.ms=-5
`), 0o644)
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "--config-path=file://" + path}, &stdout, &stderr)
	if code != cli.ExitUsage {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{
		"job.name: is required",
		"systems.kafka.samza.offset.default=sometimes",
		"task.commit.ms=soon",
		`input nosys.Clicks names system "nosys"`,
		"task.passthrough.output: is required",
		"job.http.stall.ms=-5: must be a positive number", // checked with the endpoint off too
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout not empty: %q", stdout.String())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"run"}, {"run", "--bogus"}, {"run", "--config-path=/does/not/exist"}} {
		var stdout, stderr bytes.Buffer
		if code := cli.Main(context.Background(), args, &stdout, &stderr); code != cli.ExitUsage {
			t.Errorf("sluice %v: exit %d, want 2", args, code)
		}
	}
}

func TestRunFailsWithExit1WhenBrokerUnreachable(t *testing.T) {
	path := writeJob(t, t.TempDir(), "job.name=j", "task.class=passthrough", "task.passthrough.output=kafka.out",
		"task.inputs=kafka.in", "systems.kafka.samza.factory=kafka", "systems.kafka.consumer.bootstrap.servers=127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 60e9)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"run", "--config-path=" + path}, &stdout, &stderr)
	if code != cli.ExitFailure || !strings.Contains(stderr.String(), "127.0.0.1:1") {
		t.Errorf("exit %d, want 1 naming the bootstrap server; stderr:\n%s", code, stderr.String())
	}
}

// TestRunExits1WhenItCannotListen: an address already taken is a runtime failure of
// the endpoint, not a configuration error.
func TestRunExits1WhenItCannotListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	store := writeJob(t, t.TempDir(), "job.name=j", "task.class=passthrough", "task.passthrough.output=mem.out",
		"task.inputs=mem.in", "systems.mem.samza.factory=inmem")
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "--config-path=" + store, "--http-listen=" + ln.Addr().String()}, &stdout, &stderr)
	if code != cli.ExitFailure || !strings.Contains(stderr.String(), ln.Addr().String()) {
		t.Errorf("exit %d, want 1 naming %s; stderr:\n%s", code, ln.Addr(), stderr.String())
	}
}
