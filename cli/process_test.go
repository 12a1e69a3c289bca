package cli_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// sluiceCmd returns a command that runs `sluice args...` in a new process: this test
// binary, re-executed as TestSluiceHelperProcess.
func sluiceCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSluiceHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperArgsEnv+"="+string(b))
	return cmd
}

// logLines starts cmd and returns a channel of its stderr lines, closed when stderr
// ends. The process is killed when the test ends, if it still runs.
func logLines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stderr)
	}()
	return lines
}

// awaitLine reads lines until one contains want, and returns it and every line read
// up to it; ok is false if the lines ended first.
func awaitLine(lines <-chan string, want string) (line string, log string, ok bool) {
	var b strings.Builder
	for l := range lines {
		b.WriteString(l + "\n")
		if strings.Contains(l, want) {
			return l, b.String(), true
		}
	}
	return "", b.String(), false
}

// drain keeps reading lines so that the process never blocks on a full pipe, and
// returns a function that waits for the end and returns them.
func drain(lines <-chan string) func() string {
	done := make(chan string, 1)
	go func() {
		var b strings.Builder
		for l := range lines {
			b.WriteString(l + "\n")
		}
		done <- b.String()
	}()
	return func() string { return <-done }
}
