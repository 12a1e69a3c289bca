package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/cli"
)

func TestQuickstartResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), []string{"quickstart", "--data-dir=" + dir, "--listen=127.0.0.1:0"}, builtin.Tasks(), &stdout, &stderr)
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
