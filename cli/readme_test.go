package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cli"
)

// readmeBlock is a code block of README.md that holds sluice commands: the commands,
// in order, and the lines it shows as their output.
type readmeBlock struct {
	section  string
	commands []readmeCommand
	output   []string
}

type readmeCommand struct {
	line   string   // as written
	args   []string // after "./sluice" or "go run ./cmd/sluice"
	stdout string   // the file of a "> file" redirection, if any
}

// sluicePrefix matches the start of a command line that runs sluice as the README
// tells a reader to: the binary built in the repository's root, or go run.
var sluicePrefix = regexp.MustCompile(`^(\./sluice|go run \./cmd/sluice)( |$)`)

// readmeBlocks returns the shell code blocks of README.md (indented, or fenced
// without a language or as sh) that run sluice.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	section, fence, blank := "", "", false
	end := func() {
		if cur != nil && len(cur.commands) > 0 {
			blocks = append(blocks, *cur)
		}
		cur = nil
	}
	add := func(n int, line string) {
		if cur == nil {
			cur = &readmeBlock{section: section}
		}
		if !sluicePrefix.MatchString(line) {
			cur.output = append(cur.output, line)
			return
		}
		c, err := parseCommand(line)
		if err != nil {
			t.Fatalf("README.md line %d: %v", n, err)
		}
		cur.commands = append(cur.commands, c)
	}
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		switch {
		case fence != "":
			if strings.HasPrefix(line, "```") {
				fence = ""
				end()
			} else if fence == "sh" {
				add(n, line)
			}
		case strings.HasPrefix(line, "```"):
			end()
			fence = "other"
			if lang := strings.TrimPrefix(line, "```"); lang == "" || lang == "sh" || lang == "shell" {
				fence = "sh"
			}
		case strings.HasPrefix(line, "    ") && (cur != nil || blank):
			add(n, strings.TrimPrefix(line, "    "))
		case strings.TrimSpace(line) == "":
			// A blank line continues an indented block.
		default:
			end()
			if strings.HasPrefix(line, "## ") {
				section = strings.TrimPrefix(line, "## ")
			}
		}
		blank = strings.TrimSpace(line) == ""
	}
	end()
	return blocks
}

// parseCommand splits a command line into words the way sh would for the simple
// lines the README holds: words, '...' and "..." quoting, a "> file" redirection
// and a trailing # comment. Anything else (pipes, variables, globs) is refused, so
// that the README keeps to commands this test can check.
func parseCommand(line string) (readmeCommand, error) {
	c := readmeCommand{line: line}
	var words []string
	var w strings.Builder
	inWord, redirect := false, false
	flush := func() {
		if !inWord {
			return
		}
		if redirect {
			c.stdout, redirect = w.String(), false
		} else {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '\'' || ch == '"':
			j := strings.IndexByte(line[i+1:], ch)
			if j < 0 {
				return c, fmt.Errorf("unclosed %c in %q", ch, line)
			}
			q := line[i+1 : i+1+j]
			if ch == '"' && strings.ContainsAny(q, "$`\\") {
				return c, fmt.Errorf("%q: only plain text inside double quotes", line)
			}
			w.WriteString(q)
			inWord = true
			i += j + 1
		case ch == ' ' || ch == '\t':
			flush()
		case ch == '#' && !inWord:
			i = len(line)
		case ch == '>' && !inWord:
			redirect = true
		case strings.IndexByte("|&;<>()$`\\*?[]{}~", ch) >= 0:
			return c, fmt.Errorf("%q: shell syntax this test does not check (%c)", line, ch)
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	if redirect {
		return c, fmt.Errorf("%q: > without a file", line)
	}
	prefix := 1 // ./sluice
	if words[0] == "go" {
		prefix = 3 // go run ./cmd/sluice
	}
	c.args = words[prefix:]
	return c, nil
}

// readmeInlineCommands returns the sluice commands the README's text quotes in
// backticks.
func readmeInlineCommands(t *testing.T) []readmeCommand {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []readmeCommand
	for _, m := range regexp.MustCompile("`((?:\\./sluice|go run \\./cmd/sluice) [^`]*)`").FindAllStringSubmatch(string(b), -1) {
		c, err := parseCommand(m[1])
		if err != nil {
			t.Fatalf("README.md: %v", err)
		}
		cs = append(cs, c)
	}
	return cs
}

// exampleFileCommands returns the sluice commands quoted in the comments of the
// example configurations ("#   ./sluice ...").
func exampleFileCommands(t *testing.T) []readmeCommand {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.properties"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configurations: %v", err)
	}
	var cs []readmeCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if l := strings.TrimSpace(strings.TrimPrefix(line, "#")); strings.HasPrefix(line, "#") && sluicePrefix.MatchString(l) {
				c, err := parseCommand(l)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				cs = append(cs, c)
			}
		}
	}
	return cs
}

// TestREADMECommandsParse checks every sluice command the README and the example
// configurations show: each names a command and flags that exist, with values of
// the right type (it runs each with -h appended, which parses every flag before it
// and runs nothing). The README builds the command before it first runs ./sluice,
// and shows every command.
func TestREADMECommandsParse(t *testing.T) {
	var all []readmeCommand
	for _, b := range readmeBlocks(t) {
		all = append(all, b.commands...)
	}
	all = append(all, readmeInlineCommands(t)...)
	all = append(all, exampleFileCommands(t)...)
	seen := map[string]bool{}
	for _, c := range all {
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), append(slices.Clone(c.args), "-h"), &stdout, &stderr)
		if code != 0 {
			t.Errorf("%s: not a valid sluice command line (exit %d):\n%s", c.line, code, stderr.String())
		}
		name := c.args[0]
		if name == "topic" && len(c.args) > 1 {
			name += " " + c.args[1]
		}
		seen[name] = true
	}
	for _, want := range []string{"quickstart", "version", "broker", "topic create", "topic produce", "topic consume", "topic list", "run", "checkpoint-tool"} {
		if !seen[want] {
			t.Errorf("the README shows no `sluice %s` command; found %v", want, seen)
		}
	}

	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	build, first := bytes.Index(b, []byte("go build -o sluice ./cmd/sluice")), bytes.Index(b, []byte("./sluice "))
	if build < 0 || first < build {
		t.Errorf("README.md runs ./sluice (first at byte %d) but builds it only at byte %d (-1: never)", first, build)
	}
}

// TestREADMEExamplesWork runs the README's Examples section, command by command, as
// a reader would, and checks the output it shows. The only changes: the broker
// listens on a free port with its data in a temporary directory, every other command
// is pointed at it, and the example configurations are copied with that address (and
// a short window, so that the counter's counts come in milliseconds).
func TestREADMEExamplesWork(t *testing.T) {
	var blocks []readmeBlock
	for _, b := range readmeBlocks(t) {
		if b.section == "Examples" {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no Examples section with commands")
	}
	addr := ""
	for _, b := range blocks {
		var stdout bytes.Buffer
		var background []func()
		for i, c := range b.commands {
			args := slices.Clone(c.args)
			for j, a := range args {
				for _, flag := range []string{"--file=", "--config-path="} {
					if v, ok := strings.CutPrefix(a, flag); ok && !filepath.IsAbs(v) {
						args[j] = flag + filepath.Join("..", v)
					}
				}
			}
			switch {
			case args[0] == "broker":
				addr = readmeBroker(t, append(args, "--data-dir="+t.TempDir(), "--listen=127.0.0.1:0"))
				continue
			case addr == "":
				t.Fatalf("%s: the Examples section runs it before it starts a broker", c.line)
			case args[0] == "topic":
				args = append(args, "--bootstrap="+addr)
			case args[0] == "run":
				for j, a := range args {
					if v, ok := strings.CutPrefix(a, "--config-path="); ok {
						args[j] = "--config-path=" + exampleConfig(t, filepath.Base(v), addr, "task.window.ms=100")
					}
				}
				if !slices.Contains(args, "--exit-when-caught-up") {
					// It runs until Ctrl-C: in the background while the block's
					// later commands run.
					background = append(background, readmeBackground(t, c.line, args))
					continue
				}
			}
			rest := len(b.commands) - i - 1
			run := func() cliResult { return cliRun(t, args...) }
			if len(background) > 0 && rest == 0 {
				// The last command reads what a job in the background writes: run
				// it until it shows the README's output.
				r := awaitOutput(t, run, b.output)
				stdout.WriteString(r.stdout)
				break
			}
			r := run()
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", c.line, r.code, r.stdout, r.stderr)
			}
			if c.stdout != "" {
				continue
			}
			stdout.WriteString(r.stdout)
		}
		for _, stop := range background {
			stop()
		}
		if !showsOutput(stdout.String(), b.output) {
			t.Errorf("the commands\n  %s\nprinted\n%s\nnot what README.md shows:\n%s", commandLines(b), stdout.String(), strings.Join(b.output, "\n"))
		}
	}
}

func commandLines(b readmeBlock) string {
	var ls []string
	for _, c := range b.commands {
		ls = append(ls, c.line)
	}
	return strings.Join(ls, "\n  ")
}

// timestamp matches an RFC 3339 time, which differs from run to run.
var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// showsOutput reports whether got holds the lines the README shows, in order ("..."
// stands for lines left out, and times are not compared).
func showsOutput(got string, shown []string) bool {
	var want []string
	for _, l := range shown {
		if l = strings.TrimSpace(l); l != "" && l != "..." {
			want = append(want, timestamp.ReplaceAllString(l, "TIME"))
		}
	}
	i := 0
	for _, l := range strings.Split(got, "\n") {
		if i < len(want) && timestamp.ReplaceAllString(l, "TIME") == want[i] {
			i++
		}
	}
	return i == len(want)
}

// awaitOutput runs cmd until its output shows the lines, and returns that run.
func awaitOutput(t *testing.T, cmd func() cliResult, shown []string) cliResult {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := cmd()
		if r.code == 0 && showsOutput(r.stdout, shown) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readmeBroker runs `sluice broker` until the test ends and returns its address.
func readmeBroker(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, args, io.Discard, pw)
		pw.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	line, log, ok := awaitLine(lines, "serving the Kafka protocol")
	if !ok {
		cancel()
		t.Fatalf("sluice %s did not start:\n%s", strings.Join(args, " "), log)
	}
	rest := drain(lines)
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("sluice broker: exit %d\n%s", code, rest())
		}
	})
	return regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)[1]
}

// readmeBackground starts a command that runs until Ctrl-C, and returns the function
// that stops it as Ctrl-C would and checks it stopped cleanly.
func readmeBackground(t *testing.T, line string, args []string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- cli.Main(ctx, args, io.Discard, &stderr) }()
	return func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%s: exit %d after Ctrl-C\n%s", line, code, stderr.String())
		}
	}
}
