package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineDir makes a lines system directory: each stream's partitions with the given
// contents.
func lineDir(t *testing.T, streams map[string][]string) string {
	t.Helper()
	dir := t.TempDir()
	for stream, parts := range streams {
		if err := os.MkdirAll(filepath.Join(dir, stream), 0o755); err != nil {
			t.Fatal(err)
		}
		for p, content := range parts {
			writeFile(t, filepath.Join(dir, stream, fmt.Sprintf("%d.txt", p)), content)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shoutConfig copies shout.properties with its directory replaced by dir.
func shoutConfig(t *testing.T, dir string) string {
	t.Helper()
	text := strings.ReplaceAll(readFile(t, "shout.properties"), "/tmp/sluice-lines", dir)
	path := filepath.Join(t.TempDir(), "shout.properties")
	writeFile(t, path, text)
	return path
}

// runProgram runs the program in-process.
func runProgram(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// The program runs a job on its own system, resumes from the filesystem checkpoints
// it wrote, and its checkpoint tool reads and rewrites them through the system's
// Admin.
func TestCustomSystemRunsResumesAndRewinds(t *testing.T) {
	dir := lineDir(t, map[string][]string{
		"words":  {"hello\nworld\nagain\n", "stream\nprocess"}, // the last line is incomplete
		"shouts": {"", ""},
	})
	cfg := shoutConfig(t, dir)
	shouts := func(p int) string { return readFile(t, filepath.Join(dir, "shouts", fmt.Sprintf("%d.txt", p))) }

	if code, _, stderr := runProgram(t, "run", "--config-path="+cfg, "--exit-when-caught-up"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	} else if strings.Contains(stderr, "warning") {
		t.Errorf("run warned:\n%s", stderr)
	}
	if got, want := shouts(0), "HELLO\nWORLD\nAGAIN\n"; got != want {
		t.Errorf("shouts/0.txt = %q, want %q", got, want)
	}
	if got, want := shouts(1), "STREAM\n"; got != want {
		t.Errorf("shouts/1.txt = %q, want %q (an incomplete line is no message)", got, want)
	}

	// The incomplete line is completed and more lines come: the next run processes
	// only those.
	appendFile(t, filepath.Join(dir, "words", "1.txt"), "ing\nsluice\n")
	appendFile(t, filepath.Join(dir, "words", "0.txt"), "bye\n")
	if code, _, stderr := runProgram(t, "run", "--config-path="+cfg, "--exit-when-caught-up"); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	if got, want := shouts(0), "HELLO\nWORLD\nAGAIN\nBYE\n"; got != want {
		t.Errorf("after the second run shouts/0.txt = %q, want %q", got, want)
	}
	if got, want := shouts(1), "STREAM\nPROCESSING\nSLUICE\n"; got != want {
		t.Errorf("after the second run shouts/1.txt = %q, want %q", got, want)
	}

	code, stdout, stderr := runProgram(t, "checkpoint-tool", "--config-path="+cfg)
	if code != 0 {
		t.Fatalf("checkpoint-tool: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		`tasknames.Partition\ 0.systems.lines.streams.words.partitions.0=4`,
		`tasknames.Partition\ 1.systems.lines.streams.words.partitions.1=3`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("checkpoint-tool printed\n%s\nwithout %s", stdout, want)
		}
	}

	// Rewind partition 1 to its line 2 with the tool; the next run replays from there.
	offsets := filepath.Join(t.TempDir(), "offsets.properties")
	writeFile(t, offsets, `tasknames.Partition\ 1.systems.lines.streams.words.partitions.1=2`+"\n")
	if code, _, stderr := runProgram(t, "checkpoint-tool", "--config-path="+cfg, "--new-offsets="+offsets); code != 0 {
		t.Fatalf("checkpoint-tool --new-offsets: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runProgram(t, "run", "--config-path="+cfg, "--exit-when-caught-up"); code != 0 {
		t.Fatalf("run after the rewind: exit %d\n%s", code, stderr)
	}
	if got, want := shouts(1), "STREAM\nPROCESSING\nSLUICE\nSLUICE\n"; got != want {
		t.Errorf("after the rewind shouts/1.txt = %q, want %q", got, want)
	}
	if got, want := shouts(0), "HELLO\nWORLD\nAGAIN\nBYE\n"; got != want {
		t.Errorf("after the rewind shouts/0.txt = %q, want %q (partition 0 was not rewound)", got, want)
	}
}

func TestCustomSystemConfigurationErrors(t *testing.T) {
	dir := lineDir(t, map[string][]string{"words": {"a\n"}})
	path := filepath.Join(t.TempDir(), "bad.properties")
	writeFile(t, path, "job.name=bad\ntask.class=upper\ntask.inputs=lines.words\ntask.upper.output=lines.a/b\n"+
		"systems.lines.samza.factory=lines\nsystems.other.samza.factory=lines\nsystems.lines.dir="+dir+"\n")
	code, _, stderr := runProgram(t, "run", "--config-path="+path)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	for _, want := range []string{
		"systems.other.dir: is required",
		`task.upper.output=lines.a/b: output lines.a/b: a lines stream is a directory: "a/b" is not a directory name`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// A declared output that does not exist stops the job before it reads anything.
	writeFile(t, path, "job.name=bad\ntask.class=upper\ntask.inputs=lines.words\ntask.upper.output=lines.nowhere\n"+
		"systems.lines.samza.factory=lines\nsystems.lines.dir="+dir+"\n")
	code, _, stderr = runProgram(t, "run", "--config-path="+path, "--exit-when-caught-up")
	if code != 1 || !strings.Contains(stderr, "output stream lines.nowhere") {
		t.Errorf("exit %d, want 1 naming the missing output\n%s", code, stderr)
	}
}

// TestExampleProcess is not a test: it is the program, run by the README test in a
// process of its own with the arguments after "--".
func TestExampleProcess(t *testing.T) {
	if os.Getenv("CUSTOM_SYSTEM_PROCESS") != "1" {
		t.Skip("runs only as the process of another test")
	}
	os.Exit(run(context.Background(), flag.Args(), os.Stdout, os.Stderr))
}

// readmeSection returns the fenced code blocks of the README section whose heading
// is title, each with its language.
func readmeSection(t *testing.T, title string) (blocks []string, langs []string) {
	t.Helper()
	text := readFile(t, filepath.Join("..", "..", "README.md"))
	_, section, ok := strings.Cut(text, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", title)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var cur *strings.Builder
	for _, line := range strings.Split(section, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &strings.Builder{}
			langs = append(langs, strings.TrimPrefix(line, "```"))
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks, langs
}

// The README's commands for this program work as written: each sh block runs in a
// shell from the repository's root, with `go run ./examples/custom-system` standing
// for this test binary and /tmp/sluice-lines for a temporary directory, and prints
// what the text block after it shows.
func TestREADMECustomSystemCommands(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	blocks, langs := readmeSection(t, "Plugging in your own system")
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "custom-system")
	writeFile(t, bin, fmt.Sprintf("#!/bin/sh\nCUSTOM_SYSTEM_PROCESS=1 exec '%s' -test.run='^TestExampleProcess$' -- \"$@\"\n", os.Args[0]))
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := shoutConfig(t, dir)
	ran := 0
	for i, block := range blocks {
		if langs[i] != "sh" || !strings.Contains(block, "go run ./examples/custom-system") {
			continue
		}
		ran++
		script := strings.NewReplacer(
			"go run ./examples/custom-system", bin,
			"examples/custom-system/shout.properties", cfg,
			"/tmp/sluice-lines", dir,
		).Replace(block)
		cmd := exec.Command(sh, "-e", "-c", script)
		cmd.Dir = filepath.Join("..", "..")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("README block\n%s\nfailed: %v\n%s", block, err, stderr.String())
		}
		if i+1 >= len(blocks) || langs[i+1] != "text" {
			t.Fatalf("README block\n%s\nis not followed by a text block of its output", block)
		}
		if got, want := stdout.String(), blocks[i+1]; !shows(got, want) {
			t.Errorf("README block\n%s\nprinted\n%s\nnot what README.md shows:\n%s", block, got, want)
		}
	}
	if ran == 0 {
		t.Fatal("the README section runs no go run ./examples/custom-system command")
	}
}

// shows reports whether got is the output shown: exactly, or, when shown has a "..."
// line for lines left out, its other lines in order (blank lines aside).
func shows(got, shown string) bool {
	if !strings.Contains(shown, "...\n") {
		return got == shown
	}
	var want []string
	for _, l := range strings.Split(shown, "\n") {
		if l != "" && l != "..." {
			want = append(want, l)
		}
	}
	i := 0
	for _, l := range strings.Split(got, "\n") {
		if i < len(want) && l == want[i] {
			i++
		}
	}
	return i == len(want)
}

// A partition file added while the job runs becomes a new task, read through the
// consumer's AddPartitions, with no restart.
func TestCustomSystemPicksUpANewPartitionWhileRunning(t *testing.T) {
	dir := lineDir(t, map[string][]string{"words": {"a\n"}, "shouts": {"", ""}})
	cfg := shoutConfig(t, dir)
	appendFile(t, cfg, "job.partition.monitor.ms=50\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config-path=" + cfg}, &bytes.Buffer{}, &stderr) }()

	awaitFile(t, filepath.Join(dir, "shouts", "0.txt"), "A\n", done, &stderr)
	writeFile(t, filepath.Join(dir, "words", "1.txt"), "new\n")
	awaitFile(t, filepath.Join(dir, "shouts", "1.txt"), "NEW\n", done, &stderr)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run: exit %d after Ctrl-C\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "input partitions changed") {
		t.Errorf("the container did not log the change:\n%s", stderr.String())
	}
}

// awaitFile waits until the file at path holds want, while the job runs.
func awaitFile(t *testing.T, path, want string, done <-chan int, log *lockedBuffer) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		select {
		case code := <-done:
			t.Fatalf("the job stopped (exit %d) before %s held %q (it holds %q)\n%s", code, path, want, b, log.String())
		case <-deadline:
			t.Fatalf("%s holds %q, want %q\n%s", path, b, want, log.String())
		case <-tick.C:
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
