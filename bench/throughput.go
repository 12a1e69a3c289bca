package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// variant is one way of copying the passthrough input: raw franz-go, or Sluice
// with a commit interval (0: periodic commits disabled).
type variant struct {
	raw    bool
	commit time.Duration
}

func (v variant) String() string {
	switch {
	case v.raw:
		return "raw franz-go"
	case v.commit == 0:
		return "sluice, commits disabled"
	}
	return "sluice, commits every " + v.commit.String()
}

// throughput copies the input with every variant, Repeats times, alternating.
func (b *bencher) throughput(ctx context.Context) ([]Row, error) {
	o := b.opts
	const in = "bench-in"
	if err := b.createTopic(ctx, in, o.Partitions, nil); err != nil {
		return nil, err
	}
	b.logf("filling %s: %s messages of %d bytes over %d partitions", in, group(int64(o.Messages)), o.MessageBytes, o.Partitions)
	if err := b.fill(ctx, in, o.Partitions, o.Messages, o.MessageBytes); err != nil {
		return nil, err
	}
	variants := []variant{{raw: true}, {commit: 0}}
	for _, d := range o.CommitIntervals {
		variants = append(variants, variant{commit: d})
	}
	times := make(map[variant][]float64)
	for rep := range o.Repeats {
		// Rotate the order so that no variant always runs first (or right after
		// the same neighbour).
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			d, err := b.copyOnce(ctx, in, v, "")
			if err != nil {
				return nil, err
			}
			rate := float64(o.Messages) / d.Seconds()
			times[v] = append(times[v], rate)
			b.logf("  run %d/%d %-32s %s  %s", rep+1, o.Repeats, v, fmtDuration(d), fmtRate(rate, o.MessageBytes))
		}
	}
	if o.ProfileDir != "" {
		if err := b.profileCopies(ctx, in); err != nil {
			return nil, err
		}
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}

	med := func(v variant) float64 { return median(times[v]) }
	raw, none := med(variant{raw: true}), med(variant{commit: 0})
	row := func(key, name string, v variant, base float64, baseName string) Row {
		s := med(v)
		return Row{Key: key, Name: name, Sluice: fmtRate(s, o.MessageBytes), Baseline: fmtRate(base, o.MessageBytes) + " " + baseName,
			SluiceValue: s, BaselineValue: base, Unit: "msg/s", Ratio: s / base}
	}
	var rows []Row
	for _, v := range variants[1:] {
		r := row("throughput/"+commitKey(v.commit)+"-vs-raw", "passthrough, "+commitName(v.commit)+" / raw franz-go", v, raw, "(raw)")
		switch v.commit {
		case time.Second:
			atLeast(&r, 0.90)
		case 100 * time.Millisecond:
			atLeast(&r, 0.85)
		}
		rows = append(rows, r)
	}
	for _, v := range variants[2:] {
		rows = append(rows, row("commits/"+commitKey(v.commit)+"-vs-none", "passthrough, "+commitName(v.commit)+" / commits disabled", v, none, "(no commits)"))
	}
	return rows, nil
}

func commitKey(d time.Duration) string {
	if d == 0 {
		return "no-commits"
	}
	return "commit-" + d.String()
}

func commitName(d time.Duration) string {
	if d == 0 {
		return "commits disabled"
	}
	return "commits every " + d.String()
}

// copyOnce copies the input to a fresh output topic with v and returns the time
// from exec to exit. It checks that every message reached the output, then deletes
// the output (and Sluice's checkpoint topic). With profile set, the process writes
// CPU and allocation profiles named after it.
func (b *bencher) copyOnce(ctx context.Context, in string, v variant, profile string) (time.Duration, error) {
	o := b.opts
	n := b.seq()
	out := fmt.Sprintf("bench-out-%d", n)
	job := fmt.Sprintf("bench-%d", n)
	if err := b.createTopic(ctx, out, o.Partitions, nil); err != nil {
		return 0, err
	}
	var p *proc
	var err error
	if v.raw {
		args := []string{modeRawCopy, "--brokers=" + b.addr, "--in=" + in, "--out=" + out}
		if profile != "" {
			args = append(args, "--cpuprofile="+profile+".cpu.pprof")
		}
		p, err = b.start("raw-copy", b.helper, args, b.opts.HelperEnv, nil)
	} else {
		cfg, cerr := b.writeConfig(job, passthroughConfig(b.addr, job, in, out, v.commit))
		if cerr != nil {
			return 0, cerr
		}
		var env []string
		if profile != "" {
			env = []string{"SLUICE_CPUPROFILE=" + profile + ".cpu.pprof", "SLUICE_MEMPROFILE=" + profile + ".allocs.pprof"}
		}
		p, err = b.start("sluice-run", b.sluice, []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, env, nil)
	}
	if err != nil {
		return 0, err
	}
	if err := p.wait(time.Duration(max(600, o.Messages/1000)) * time.Second); err != nil {
		return 0, err
	}
	got, err := b.endTotal(ctx, out)
	if err != nil {
		return 0, err
	}
	if got != int64(o.Messages) {
		return 0, fmt.Errorf("%s copied %d messages, want %d; its log: %s", v, got, o.Messages, p.stderr.path)
	}
	if err := b.deleteTopics(ctx, out, checkpointTopic(job)); err != nil {
		return 0, err
	}
	return p.elapsed(), nil
}

// profileCopies runs one untimed copy of each kind with profiles on.
func (b *bencher) profileCopies(ctx context.Context, in string) error {
	if err := os.MkdirAll(b.opts.ProfileDir, 0o755); err != nil {
		return err
	}
	for _, pv := range []struct {
		name string
		v    variant
	}{{"raw", variant{raw: true}}, {"sluice-commit-1s", variant{commit: time.Second}}, {"sluice-commit-100ms", variant{commit: 100 * time.Millisecond}}} {
		path := filepath.Join(b.opts.ProfileDir, pv.name)
		d, err := b.copyOnce(ctx, in, pv.v, path)
		if err != nil {
			return err
		}
		b.logf("  profiled %-32s %s  %s -> %s.*.pprof", pv.v, fmtDuration(d), fmtRate(float64(b.opts.Messages)/d.Seconds(), b.opts.MessageBytes), path)
	}
	return nil
}

func checkpointTopic(job string) string { return "__samza_checkpoint_" + job + "_1" }

// passthroughConfig is the passthrough job of the throughput and recovery runs.
func passthroughConfig(addr, job, in, out string, commit time.Duration) []string {
	return []string{
		"job.name=" + job,
		"task.class=passthrough",
		"task.inputs=kafka." + in,
		"task.passthrough.output=kafka." + out,
		"systems.kafka.samza.factory=kafka",
		"systems.kafka.consumer.bootstrap.servers=" + addr,
		"systems.kafka.producer.bootstrap.servers=" + addr,
		"systems.kafka.samza.offset.default=oldest",
		"task.checkpoint.factory=kafka",
		"task.checkpoint.system=kafka",
		"task.checkpoint.replication.factor=1",
		fmt.Sprintf("task.commit.ms=%d", commit.Milliseconds()),
	}
}

func (b *bencher) writeConfig(name string, lines []string) (string, error) {
	path := filepath.Join(b.dir, name+".properties")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// nan is math.NaN, for rows without a baseline.
func nan() float64 { return math.NaN() }
