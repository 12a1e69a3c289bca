package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process: its stdout is kept in memory, its stderr goes to a log
// file in the work directory (and its last lines are kept for error messages).
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	stdout  bytes.Buffer
	stderr  *lineWriter
	done    chan struct{}
	ended   time.Time
	err     error // from Wait; read after done
}

// start runs bin with args. watch, when not nil, sees every line of its stderr
// (on another goroutine).
func (b *bencher) start(name, bin string, args, env []string, watch func(string)) (*proc, error) {
	logPath := filepath.Join(b.dir, "logs", fmt.Sprintf("%03d-%s.log", b.seq(), name))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, done: make(chan struct{})}
	p.stderr = &lineWriter{f: f, watch: watch, path: logPath}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = p.stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs[p] = struct{}{}
	b.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		p.ended = time.Now()
		p.stderr.close()
		b.mu.Lock()
		delete(b.procs, p)
		b.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// wait waits for p to exit, at most limit, and returns an error naming its log
// unless it exited with status 0.
func (p *proc) wait(limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not finish within %v; its log: %s\n%s", p.name, limit, p.stderr.path, p.stderr.tail())
	}
	if p.err != nil {
		return fmt.Errorf("%s failed: %w; its log: %s\n%s", p.name, p.err, p.stderr.path, p.stderr.tail())
	}
	return nil
}

// exitErr is how p ended, as an error even when it exited with status 0; read it
// after done.
func (p *proc) exitErr() error {
	if p.err != nil {
		return p.err
	}
	return errors.New("exit status 0")
}

// elapsed is the time from exec to exit.
func (p *proc) elapsed() time.Duration { return p.ended.Sub(p.started) }

// cpu is the CPU time (user and system) the process used; read it after done.
func (p *proc) cpu() time.Duration {
	if p.cmd.ProcessState == nil {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exited reports whether p has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// memory reads the process's resident set size and its peak (VmRSS and VmHWM of
// /proc/<pid>/status), in bytes.
func (p *proc) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %s: %w", p.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || key != "VmRSS" && key != "VmHWM" {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("memory of %s: unexpected line %q", p.name, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("memory of %s: %w", p.name, err)
		}
		if key == "VmRSS" {
			rss = n << 10
		} else {
			peak = n << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, errors.New("memory of " + p.name + ": no VmRSS or VmHWM in /proc/<pid>/status")
	}
	return rss, peak, nil
}

// lineWriter is a process's stderr: every line goes to a file, the last ones are
// kept, and watch sees each.
type lineWriter struct {
	f     *os.File
	path  string
	watch func(string)

	mu      sync.Mutex
	partial []byte
	last    []string
}

const tailLines = 30

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.f.Write(b) // the log is for people; a failed write loses only it
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.last = append(w.last, line)
		if len(w.last) > tailLines {
			w.last = w.last[len(w.last)-tailLines:]
		}
		if w.watch != nil {
			w.watch(line)
		}
	}
	return len(b), nil
}

func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, "\n")
}

func (w *lineWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.f.Close()
}
