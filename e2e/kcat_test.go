package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kcat returns the path of kcat, skipping the test when it is missing outside CI.
func kcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it from Debian's packages")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	return path
}

// TestKcatInterop has a third-party client (kcat, librdkafka) produce a passthrough
// job's input and read its output.
func TestKcatInterop(t *testing.T) {
	bin := kcat(t)
	_, seeds := cluster(t)
	createTopics(t, seeds, 3, "in", "out")

	var input []string
	for p := range 3 {
		var lines []string
		for i := range 20 {
			lines = append(lines, fmt.Sprintf("key-%d-%d:value-%d-%d", p, i, p, i))
			input = append(input, fmt.Sprintf("%d key-%d-%d value-%d-%d", p, p, i, p, i))
		}
		cmd := exec.Command(bin, "-P", "-b", seeds, "-t", "in", "-p", fmt.Sprint(p), "-K:")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce: %v\n%s", err, out)
		}
	}

	cfg := passthroughConfig(t, seeds, "kcat-interop")
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("sluice run exited %d:\n%s", code, tail(p.stderr.String(), 30))
	}

	cmd := exec.Command(bin, "-C", "-b", seeds, "-t", "out", "-o", "beginning", "-e", "-q", "-f", `%p %k %s\n`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(got)
	slices.Sort(input)
	if !slices.Equal(got, input) {
		t.Errorf("kcat read back %d lines, want %d; first got %q, first want %q", len(got), len(input), got[:min(3, len(got))], input[:3])
	}
}
