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
	other  bool // the sluice binary of Options.CompareBin
}

func (v variant) String() string {
	switch {
	case v.raw:
		return "raw franz-go"
	case v.other:
		return "other sluice, commits every " + v.commit.String()
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
	otherV := variant{other: true, commit: time.Second}
	if o.CompareBin != "" {
		variants = append(variants, otherV)
	}
	// rates[v][rep] and cpus[v][rep]: messages per second (exec to exit) and CPU
	// time of variant v in round rep.
	rates := make(map[variant][]float64)
	cpus := make(map[variant][]float64)
	for rep := range o.Repeats {
		// Rotate the order so that no variant always runs first (or right after
		// the same neighbour).
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			d, cpu, err := b.copyOnce(ctx, in, v, "")
			if err != nil {
				return nil, err
			}
			rate := float64(o.Messages) / d.Seconds()
			rates[v] = append(rates[v], rate)
			cpus[v] = append(cpus[v], cpu.Seconds())
			b.logf("  run %d/%d %-32s %s  %s  CPU %s (%.2f µs/msg)", rep+1, o.Repeats, v, fmtDuration(d), fmtRate(rate, o.MessageBytes),
				fmtDuration(cpu), cpu.Seconds()*1e6/float64(o.Messages))
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

	// The ratio of a row is the median of the ratios of the runs of one round
	// (paired: they ran back to back, so drift of the machine cancels out), not the
	// ratio of the medians.
	rawV, noneV := variant{raw: true}, variant{commit: 0}
	row := func(key, name string, v, base variant, baseName string) Row {
		s, bs := median(rates[v]), median(rates[base])
		return Row{Key: key, Name: name, Sluice: fmtRate(s, o.MessageBytes), Baseline: fmtRate(bs, o.MessageBytes) + " " + baseName,
			SluiceValue: s, BaselineValue: bs, Unit: "msg/s", Ratio: pairedRatio(rates[v], rates[base])}
	}
	cpuRow := func(v variant) Row {
		per := func(v variant) float64 { return median(cpus[v]) * 1e6 / float64(o.Messages) }
		s, bs := per(v), per(rawV)
		return Row{Key: "cpu/" + commitKey(v.commit) + "-vs-raw", Name: "CPU per message, " + commitName(v.commit) + " / raw franz-go",
			Sluice: fmt.Sprintf("%.2f µs", s), Baseline: fmt.Sprintf("%.2f µs (raw)", bs),
			SluiceValue: s / 1e6, BaselineValue: bs / 1e6, Unit: "s", Ratio: pairedRatio(cpus[v], cpus[rawV])}
	}
	var rows []Row
	if o.CompareBin != "" {
		variants = variants[:len(variants)-1]
		thisV := variant{commit: time.Second}
		rows = append(rows,
			row("compare/this-vs-other", "passthrough, commits every 1s: this sluice / "+o.CompareBin, thisV, otherV, "(other)"),
			Row{Key: "compare/cpu-this-vs-other", Name: "CPU per message, commits every 1s: this sluice / " + o.CompareBin,
				Sluice:      fmt.Sprintf("%.2f µs", median(cpus[thisV])*1e6/float64(o.Messages)),
				Baseline:    fmt.Sprintf("%.2f µs (other)", median(cpus[otherV])*1e6/float64(o.Messages)),
				SluiceValue: median(cpus[thisV]) / float64(o.Messages), BaselineValue: median(cpus[otherV]) / float64(o.Messages),
				Unit: "s", Ratio: pairedRatio(cpus[thisV], cpus[otherV])})
	}
	for _, v := range variants[1:] {
		r := row("throughput/"+commitKey(v.commit)+"-vs-raw", "passthrough, "+commitName(v.commit)+" / raw franz-go", v, rawV, "(raw)")
		switch v.commit {
		case time.Second:
			atLeast(&r, 0.90)
		case 100 * time.Millisecond:
			atLeast(&r, 0.85)
		}
		rows = append(rows, r)
	}
	for _, v := range variants[2:] {
		rows = append(rows, row("commits/"+commitKey(v.commit)+"-vs-none", "passthrough, "+commitName(v.commit)+" / commits disabled", v, noneV, "(no commits)"))
	}
	for _, v := range variants[1:] {
		rows = append(rows, cpuRow(v))
	}
	return rows, nil
}

// pairedRatio returns the median of xs[i]/ys[i].
func pairedRatio(xs, ys []float64) float64 {
	rs := make([]float64, 0, len(xs))
	for i := range min(len(xs), len(ys)) {
		if ys[i] != 0 {
			rs = append(rs, xs[i]/ys[i])
		}
	}
	if len(rs) == 0 {
		return nan()
	}
	return median(rs)
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
func (b *bencher) copyOnce(ctx context.Context, in string, v variant, profile string) (elapsed, cpu time.Duration, err error) {
	o := b.opts
	n := b.seq()
	out := fmt.Sprintf("bench-out-%d", n)
	job := fmt.Sprintf("bench-%d", n)
	if err := b.createTopic(ctx, out, o.Partitions, nil); err != nil {
		return 0, 0, err
	}
	var p *proc
	if v.raw {
		args := []string{modeRawCopy, "--brokers=" + b.addr, "--in=" + in, "--out=" + out}
		if profile != "" {
			args = append(args, "--cpuprofile="+profile+".cpu.pprof")
		}
		p, err = b.start("raw-copy", b.helper, args, b.opts.HelperEnv, nil)
	} else {
		cfg, cerr := b.writeConfig(job, passthroughConfig(b.addr, job, in, out, v.commit))
		if cerr != nil {
			return 0, 0, cerr
		}
		var env []string
		if profile != "" {
			env = []string{"SLUICE_CPUPROFILE=" + profile + ".cpu.pprof", "SLUICE_MEMPROFILE=" + profile + ".allocs.pprof"}
		}
		bin := b.sluice
		if v.other {
			bin = o.CompareBin
		}
		p, err = b.start("sluice-run", bin, []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, env, nil)
	}
	if err != nil {
		return 0, 0, err
	}
	if err := p.wait(time.Duration(max(600, o.Messages/1000)) * time.Second); err != nil {
		return 0, 0, err
	}
	got, err := b.endTotal(ctx, out)
	if err != nil {
		return 0, 0, err
	}
	if got != int64(o.Messages) {
		return 0, 0, fmt.Errorf("%s copied %d messages, want %d; its log: %s", v, got, o.Messages, p.stderr.path)
	}
	if err := b.deleteTopics(ctx, out, checkpointTopic(job)); err != nil {
		return 0, 0, err
	}
	return p.elapsed(), p.cpu(), nil
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
		d, _, err := b.copyOnce(ctx, in, pv.v, path)
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
