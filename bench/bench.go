package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sections of a run, in the order they run.
const (
	SectionThroughput  = "throughput"
	SectionEndToEnd    = "end-to-end"
	SectionExactlyOnce = "exactly-once"
	SectionGroup       = "group"
	SectionStartup     = "startup"
	SectionRecovery    = "recovery"
	SectionMemory      = "memory"
)

// Sections lists every section.
func Sections() []string {
	return []string{SectionThroughput, SectionEndToEnd, SectionExactlyOnce, SectionGroup, SectionStartup, SectionRecovery, SectionMemory}
}

// bencher is the state of one Run.
type bencher struct {
	opts   Options
	dir    string
	sluice string
	helper string
	addr   string
	log    io.Writer
	cl     *kgo.Client // the orchestrator's own client: admin and input producer
	adm    *kadm.Client

	mu    sync.Mutex
	procs map[*proc]struct{}
	n     int
}

func (b *bencher) seq() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	return b.n
}

func (b *bencher) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Run starts the embedded broker in a process of its own, runs the selected
// sections, and returns the table. A measurement that cannot be made (a process
// fails, an output is incomplete) is an error; a target that does not hold is not
// (see Table.Failed).
func Run(ctx context.Context, opts Options) (_ *Table, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	b := &bencher{opts: opts, log: opts.Progress, procs: map[*proc]struct{}{}}
	if b.log == nil {
		b.log = io.Discard
	}
	b.dir = opts.WorkDir
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if !opts.KeepWorkDir {
			defer os.RemoveAll(b.dir)
		}
	}
	if err := os.MkdirAll(filepath.Join(b.dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	defer b.killAll()
	b.logf("work directory %s", b.dir)

	b.sluice = opts.SluiceBin
	if b.sluice == "" {
		b.sluice = filepath.Join(b.dir, "sluice")
		b.logf("building the sluice binary (go build ./cmd/sluice)")
		build := exec.CommandContext(ctx, "go", "build", "-o", b.sluice, "github.com/sluice-streams/sluice/cmd/sluice")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: building sluice: %w\n%s", err, out)
		}
	}
	b.helper = opts.HelperBin
	if b.helper == "" {
		if b.helper, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: finding the bench binary for its helper modes: %w", err)
		}
	}
	if err := b.startBroker(ctx); err != nil {
		return nil, err
	}
	// The input is written uncompressed (its values are random: compression would
	// gain nothing), in batches of up to 1 MB.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer cl.Close()
	b.cl, b.adm = cl, kadm.NewClient(cl)

	t := &Table{Header: b.header()}
	began := time.Now()
	for _, s := range Sections() {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.logf("== %s", s)
		var rows []Row
		switch s {
		case SectionThroughput:
			rows, err = b.throughput(ctx)
		case SectionEndToEnd:
			rows, err = b.endToEnd(ctx)
		case SectionExactlyOnce:
			rows, err = b.exactlyOnce(ctx)
		case SectionGroup:
			rows, err = b.groupSection(ctx)
		case SectionStartup:
			rows, err = b.startup(ctx)
		case SectionRecovery:
			rows, err = b.recovery(ctx)
		case SectionMemory:
			rows, err = b.memory(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", s, err)
		}
		t.Rows = append(t.Rows, rows...)
	}
	t.Header = append(t.Header, fmt.Sprintf("total time %s", time.Since(began).Round(time.Second)))
	return t, nil
}

func (o *Options) validate() error {
	var errs []error
	check := func(name string, v, min int) {
		if v < min {
			errs = append(errs, fmt.Errorf("%s must be at least %d, not %d", name, min, v))
		}
	}
	check("messages", o.Messages, 1)
	check("message size", o.MessageBytes, 1)
	check("partitions", o.Partitions, 1)
	check("repeats", o.Repeats, 1)
	check("checkpoint tasks", o.CheckpointTasks, 1)
	check("checkpoint records", o.CheckpointRecords, o.CheckpointTasks)
	check("recovery partitions", o.RecoveryPartitions, 1)
	check("recovery restarts", o.RecoveryRestarts, 1)
	check("recovery rate", o.RecoveryRate, 1)
	check("memory rate", o.MemoryRate, 1)
	check("slow factor", o.SlowFactor, 1)
	check("memory backlog", o.MemoryBacklog, 100)
	check("end-to-end messages", o.EndToEndMessages, 1)
	check("latency rate", o.LatencyRate, 1)
	check("group rate", o.GroupRate, 1)
	check("group container counts", len(o.GroupContainers), 2)
	for _, k := range o.GroupContainers {
		check("group containers", k, 1)
	}
	for name, d := range map[string]time.Duration{"latency window": o.LatencyWindow, "group steady time": o.GroupSteady, "group session timeout": o.GroupSessionTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %v", name, d))
		}
	}
	for _, d := range o.CommitIntervals {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("commit interval %v must be positive (commits disabled are always measured)", d))
		}
	}
	for _, s := range o.Only {
		if !slices.Contains(Sections(), s) {
			errs = append(errs, fmt.Errorf("unknown section %q (known: %s)", s, strings.Join(Sections(), ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func (b *bencher) header() []string {
	o := b.opts
	host, _ := os.Hostname()
	return []string{
		fmt.Sprintf("sluice-bench %s on %s: %s/%s, %d cores, %s", time.Now().Format(time.DateOnly), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		"broker: embedded (sluice broker, franz-go kfake) in a process of its own, data directory on local disk",
		fmt.Sprintf("passthrough: %s messages of %d bytes over %d partitions (end to end and group copies: %s), exec to exit of each process; %d run(s) of each variant, alternating; medians",
			group(int64(o.Messages)), o.MessageBytes, o.Partitions, group(int64(o.EndToEndMessages)), o.Repeats),
		fmt.Sprintf("exactly-once latency: input fed %s msg/s, %v measured per run; group: input fed %s msg/s, session timeout %v, %v per phase",
			group(int64(o.LatencyRate)), o.LatencyWindow, group(int64(o.GroupRate)), o.GroupSessionTimeout, o.GroupSteady),
	}
}

// startBroker runs `sluice broker` on a free loopback port.
func (b *bencher) startBroker(ctx context.Context) error {
	addrCh := make(chan string, 1)
	watch := func(line string) {
		if strings.Contains(line, "serving the Kafka protocol") {
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "addr="); ok {
					select {
					case addrCh <- a:
					default:
					}
				}
			}
		}
	}
	p, err := b.start("broker", b.sluice, []string{"broker", "--listen=127.0.0.1:0", "--data-dir=" + filepath.Join(b.dir, "broker")}, nil, watch)
	if err != nil {
		return err
	}
	select {
	case b.addr = <-addrCh:
	case <-p.done:
		return fmt.Errorf("bench: the broker exited: %w; its log: %s\n%s", p.exitErr(), p.stderr.path, p.stderr.tail())
	case <-time.After(30 * time.Second):
		return fmt.Errorf("bench: the broker did not start within 30 s; its log: %s", p.stderr.path)
	case <-ctx.Done():
		return ctx.Err()
	}
	b.logf("broker (pid %d) serving at %s", p.cmd.Process.Pid, b.addr)
	return nil
}

// killAll kills every child process still running.
func (b *bencher) killAll() {
	b.mu.Lock()
	ps := make([]*proc, 0, len(b.procs))
	for p := range b.procs {
		ps = append(ps, p)
	}
	b.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
}
