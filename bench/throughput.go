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
// with a commit interval (0: periodic commits disabled), at-least-once or
// exactly-once.
type variant struct {
	raw    bool
	commit time.Duration
	other  bool // the sluice binary of Options.CompareBin
	eos    bool // task.processing.guarantee=exactly-once
	// metrics serves /metrics (--http-listen on a free loopback port): every metric
	// is kept, as when Prometheus scrapes the job.
	metrics bool
	// containers > 0 runs that many containers in group mode
	// (job.coordinator.factory=kafka), all started at once.
	containers int
}

func (v variant) String() string {
	switch {
	case v.raw:
		return "raw franz-go"
	case v.other:
		return "other sluice, commits every " + v.commit.String()
	case v.containers > 0:
		return fmt.Sprintf("sluice group of %d, commits every %v", v.containers, v.commit)
	case v.eos:
		return "sluice exactly-once, commits every " + v.commit.String()
	case v.metrics:
		return "sluice with metrics, commits every " + v.commit.String()
	case v.commit == 0:
		return "sluice, commits disabled"
	}
	return "sluice, commits every " + v.commit.String()
}

// runs holds the figures of alternating runs: per variant, one per round.
type runs struct {
	n     int                   // messages per run
	rates map[variant][]float64 // messages per second, exec to exit
	cpus  map[variant][]float64 // CPU seconds (user + system)
}

// alternate copies in (n messages) with every variant once per round, Repeats
// rounds, rotating the order every round so that no variant always runs first
// (or right after the same neighbour).
func (b *bencher) alternate(ctx context.Context, in string, n int, variants []variant) (*runs, error) {
	o := b.opts
	r := &runs{n: n, rates: map[variant][]float64{}, cpus: map[variant][]float64{}}
	for rep := range o.Repeats {
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			d, cpu, err := b.copyOnce(ctx, in, n, v, "")
			if err != nil {
				return nil, err
			}
			rate := float64(n) / d.Seconds()
			r.rates[v] = append(r.rates[v], rate)
			r.cpus[v] = append(r.cpus[v], cpu.Seconds())
			b.logf("  run %d/%d %-40s %s  %s  CPU %s (%.2f µs/msg)", rep+1, o.Repeats, v, fmtDuration(d), fmtRate(rate, o.MessageBytes),
				fmtDuration(cpu), cpu.Seconds()*1e6/float64(n))
		}
	}
	return r, nil
}

// rateRow compares the throughput of v with that of base: medians of the runs, and
// the median of the ratios of the runs of one round (paired: they ran back to back,
// so drift of the machine cancels out), not the ratio of the medians.
func (r *runs) rateRow(key, name string, v, base variant, baseName string, msgBytes int) Row {
	s, bs := median(r.rates[v]), median(r.rates[base])
	return Row{Key: key, Name: name, Sluice: fmtRate(s, msgBytes), Baseline: fmtRate(bs, msgBytes) + " " + baseName,
		SluiceValue: s, BaselineValue: bs, Unit: "msg/s", Ratio: pairedRatio(r.rates[v], r.rates[base])}
}

// cpuRow compares the CPU per message of v with that of base, paired by round.
func (r *runs) cpuRow(key, name string, v, base variant, baseName string) Row {
	per := func(v variant) float64 { return median(r.cpus[v]) / float64(r.n) }
	s, bs := per(v), per(base)
	return Row{Key: key, Name: name, Sluice: fmt.Sprintf("%.2f µs", s*1e6), Baseline: fmt.Sprintf("%.2f µs %s", bs*1e6, baseName),
		SluiceValue: s, BaselineValue: bs, Unit: "s", Ratio: pairedRatio(r.cpus[v], r.cpus[base])}
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
	metricsV := variant{metrics: true, commit: time.Second}
	variants = append(variants, metricsV)
	otherV := variant{other: true, commit: time.Second}
	if o.CompareBin != "" {
		variants = append(variants, otherV)
	}
	rs, err := b.alternate(ctx, in, o.Messages, variants)
	if err != nil {
		return nil, err
	}
	if o.ProfileDir != "" {
		if err := b.profileCopies(ctx, in, o.Messages, ""); err != nil {
			return nil, err
		}
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}

	rawV, noneV := variant{raw: true}, variant{commit: 0}
	var rows []Row
	if o.CompareBin != "" {
		variants = variants[:len(variants)-1]
		thisV := variant{commit: time.Second}
		rows = append(rows,
			rs.rateRow("compare/this-vs-other", "passthrough, commits every 1s: this sluice / "+o.CompareBin, thisV, otherV, "(other)", o.MessageBytes),
			rs.cpuRow("compare/cpu-this-vs-other", "CPU per message, commits every 1s: this sluice / "+o.CompareBin, thisV, otherV, "(other)"))
	}
	variants = variants[:len(variants)-1] // the metrics variant: its own rows
	oneSecV := variant{commit: time.Second}
	m := rs.rateRow("metrics/on-vs-off", "passthrough, commits every 1s: metrics served (--http-listen) / not", metricsV, oneSecV, "(no metrics)", o.MessageBytes)
	atLeast(&m, 0.98)
	rows = append(rows, m, rs.cpuRow("metrics/cpu-on-vs-off", "CPU per message, commits every 1s: metrics served / not", metricsV, oneSecV, "(no metrics)"))
	for _, v := range variants[1:] {
		r := rs.rateRow("throughput/"+commitKey(v.commit)+"-vs-raw", "passthrough, "+commitName(v.commit)+" / raw franz-go", v, rawV, "(raw)", o.MessageBytes)
		switch v.commit {
		case time.Second:
			atLeast(&r, 0.90)
		case 100 * time.Millisecond:
			atLeast(&r, 0.85)
		}
		rows = append(rows, r)
	}
	for _, v := range variants[2:] {
		rows = append(rows, rs.rateRow("commits/"+commitKey(v.commit)+"-vs-none", "passthrough, "+commitName(v.commit)+" / commits disabled", v, noneV, "(no commits)", o.MessageBytes))
	}
	for _, v := range variants[1:] {
		rows = append(rows, rs.cpuRow("cpu/"+commitKey(v.commit)+"-vs-raw", "CPU per message, "+commitName(v.commit)+" / raw franz-go", v, rawV, "(raw)"))
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

// copyOnce copies n messages of in to a fresh output topic with v and returns the
// time from exec to exit. It checks that every message reached the output exactly
// once (for exactly-once, as a read_committed reader sees it), then deletes the
// output (and Sluice's checkpoint topic). With profile set, the process writes CPU
// and allocation profiles named after it.
func (b *bencher) copyOnce(ctx context.Context, in string, n int, v variant, profile string) (elapsed, cpu time.Duration, err error) {
	o := b.opts
	seq := b.seq()
	out := fmt.Sprintf("bench-out-%d", seq)
	job := fmt.Sprintf("bench-%d", seq)
	if err := b.createTopic(ctx, out, o.Partitions, nil); err != nil {
		return 0, 0, err
	}
	if v.containers > 0 {
		return b.groupCopy(ctx, in, out, job, n, v)
	}
	p, err := b.startCopy(in, out, job, v, profile)
	if err != nil {
		return 0, 0, err
	}
	if err := p.wait(time.Duration(max(600, n/1000)) * time.Second); err != nil {
		return 0, 0, err
	}
	var got int64
	if v.eos {
		got, err = b.countCommitted(ctx, out)
	} else {
		got, err = b.endTotal(ctx, out)
	}
	if err != nil {
		return 0, 0, err
	}
	if got != int64(n) {
		return 0, 0, fmt.Errorf("%s copied %d messages, want %d; its log: %s", v, got, n, p.stderr.path)
	}
	if err := b.deleteTopics(ctx, out, checkpointTopic(job)); err != nil {
		return 0, 0, err
	}
	return p.elapsed(), p.cpu(), nil
}

// startCopy starts the process of v that copies in to out until it reached the end
// offsets in had at its start (Sluice: job job, --exit-when-caught-up).
func (b *bencher) startCopy(in, out, job string, v variant, profile string) (*proc, error) {
	if v.raw {
		args := []string{modeRawCopy, "--brokers=" + b.addr, "--in=" + in, "--out=" + out}
		if profile != "" {
			args = append(args, "--cpuprofile="+profile+".cpu.pprof")
		}
		return b.start("raw-copy", b.helper, args, b.opts.HelperEnv, nil)
	}
	lines := passthroughConfig(b.addr, job, in, out, v.commit)
	if v.eos {
		lines = append(lines, "task.processing.guarantee=exactly-once")
	}
	cfg, err := b.writeConfig(job, lines)
	if err != nil {
		return nil, err
	}
	var env []string
	if profile != "" {
		env = []string{"SLUICE_CPUPROFILE=" + profile + ".cpu.pprof", "SLUICE_MEMPROFILE=" + profile + ".allocs.pprof"}
	}
	bin := b.sluice
	if v.other {
		bin = b.opts.CompareBin
	}
	args := []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}
	if v.metrics {
		args = append(args, "--http-listen=127.0.0.1:0")
	}
	return b.start("sluice-run", bin, args, env, nil)
}

// profileCopies runs one untimed copy of each kind with profiles on, their files
// named prefix + the kind.
func (b *bencher) profileCopies(ctx context.Context, in string, n int, prefix string) error {
	if err := os.MkdirAll(b.opts.ProfileDir, 0o755); err != nil {
		return err
	}
	for _, pv := range []struct {
		name string
		v    variant
	}{{"raw", variant{raw: true}}, {"sluice-commit-1s", variant{commit: time.Second}}, {"sluice-commit-100ms", variant{commit: 100 * time.Millisecond}},
		{"sluice-metrics-commit-1s", variant{metrics: true, commit: time.Second}}} {
		path := filepath.Join(b.opts.ProfileDir, prefix+pv.name)
		d, _, err := b.copyOnce(ctx, in, n, pv.v, path)
		if err != nil {
			return err
		}
		b.logf("  profiled %-32s %s  %s -> %s.*.pprof", pv.v, fmtDuration(d), fmtRate(float64(n)/d.Seconds(), b.opts.MessageBytes), path)
	}
	return nil
}

func checkpointTopic(job string) string { return "__samza_checkpoint_" + job + "_1" }

// passthroughConfig is the passthrough job of the throughput and recovery runs.
func passthroughConfig(addr, job, in, out string, commit time.Duration) []string {
	return append(kafkaJob(addr, job, in, commit), "task.class=passthrough", "task.passthrough.output=kafka."+out)
}

// kafkaJob is a job reading in on the broker at addr from the oldest message, with
// Kafka checkpoints committed every commit: the lines every Sluice job of the bench
// shares; the caller adds its task.
func kafkaJob(addr, job, in string, commit time.Duration) []string {
	return []string{
		"job.name=" + job,
		"task.inputs=kafka." + in,
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
