package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cli"
)

// Running sluice as a separate process: the test binary re-executes itself as the
// sluice command (TestSluiceHelperProcess), so that a panic, an exit code or a
// SIGKILL is that of a real process, not of the test.
const (
	// helperArgsEnv holds the command line, as a JSON array, of a helper process.
	helperArgsEnv = "SLUICE_CLI_TEST_HELPER_ARGS"
	// helperPauseEnv makes a checkpoint-tool helper stop after writing that many task
	// checkpoints of a rewrite: it prints pausedMarker on stderr and waits to be killed.
	helperPauseEnv = "SLUICE_CLI_TEST_PAUSE_AFTER"
	pausedMarker   = "TEST-HELPER-PAUSED"
)

// TestSluiceHelperProcess is not a test: it is the sluice command when the test binary
// is run by sluiceProcess.
func TestSluiceHelperProcess(t *testing.T) {
	raw, ok := os.LookupEnv(helperArgsEnv)
	if !ok {
		t.Skip("the sluice helper process of other tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		os.Stderr.WriteString("bad " + helperArgsEnv + ": " + err.Error() + "\n")
		os.Exit(99)
	}
	if s := os.Getenv(helperPauseEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			os.Exit(99)
		}
		cli.SetRewriteHook(func(task string, written int) {
			if written == n {
				os.Stderr.WriteString(pausedMarker + " after " + strconv.Itoa(written) + " tasks, the last " + task + "\n")
				select {} // until killed
			}
		})
	}
	os.Exit(cli.Main(context.Background(), args, os.Stdout, os.Stderr))
}

// proc is a sluice process started by startSluice.
type proc struct {
	argv           []string
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
	err            error
}

// startSluice starts `sluice args...` as a process; env adds environment variables.
func startSluice(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSluiceHelperProcess$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), helperArgsEnv+"="+string(b)), env...)
	p := &proc{argv: args, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit and returns how it ran.
func (p *proc) wait(t *testing.T, timeout time.Duration) toolRun {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("sluice %s did not exit within %v; stderr:\n%s", p.args(), timeout, p.stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(p.err, &ee):
		code = ee.ExitCode()
	case p.err != nil:
		t.Fatal(p.err)
	}
	return toolRun{args: p.argv, stdout: p.stdout.String(), stderr: p.stderr.String(), code: code}
}

func (p *proc) args() string { return strings.Join(p.argv, " ") }

// waitStderr waits until the process's stderr holds s.
func (p *proc) waitStderr(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.stderr.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("sluice %s exited (%v) before writing %q; stderr:\n%s", p.args(), p.err, s, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice %s did not write %q within %v; stderr:\n%s", p.args(), s, timeout, p.stderr.String())
		}
	}
}

// kill kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if ee, ok := errors.AsType[*exec.ExitError](p.err); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sluice %s was not killed: %v; stderr:\n%s", p.args(), p.err, p.stderr.String())
	}
}

// sluiceProcess runs `sluice args...` as a process to completion.
func sluiceProcess(t *testing.T, args ...string) toolRun {
	t.Helper()
	return startSluice(t, nil, args...).wait(t, 2*time.Minute)
}

// wantCleanFailure checks that a run failed with exit code 1 and a message naming
// the cause, without a panic.
func wantCleanFailure(t *testing.T, r toolRun, cause ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	for _, bad := range []string{"panic", "goroutine ", "runtime error", "nil pointer"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr holds %q", bad)
		}
	}
	for _, c := range cause {
		if !strings.Contains(r.stderr, c) {
			t.Errorf("stderr does not name the cause (%q)", c)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", r.stderr)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers in other goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
