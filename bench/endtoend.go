package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// firstPerPartition is how many messages each partition of the start-up input holds.
const firstPerPartition = 1000

// endToEnd times whole processes, as a user runs them: `sluice run
// --exit-when-caught-up` with commits every second against the raw franz-go copy
// program over EndToEndMessages messages (wall time and CPU, exec to exit), and the
// time from exec to the first output record on a small input. The runs alternate,
// Repeats rounds; with Options.CompareBin the other build runs in the same rounds.
func (b *bencher) endToEnd(ctx context.Context) ([]Row, error) {
	o := b.opts
	const in = "bench-e2e-in"
	n := o.EndToEndMessages
	if err := b.createTopic(ctx, in, o.Partitions, nil); err != nil {
		return nil, err
	}
	b.logf("filling %s: %s messages of %d bytes over %d partitions", in, group(int64(n)), o.MessageBytes, o.Partitions)
	if err := b.fill(ctx, in, o.Partitions, n, o.MessageBytes); err != nil {
		return nil, err
	}
	rawV, thisV, otherV := variant{raw: true}, variant{commit: time.Second}, variant{other: true, commit: time.Second}
	variants := []variant{rawV, thisV}
	if o.CompareBin != "" {
		variants = append(variants, otherV)
	}
	rs, err := b.alternate(ctx, in, n, variants)
	if err != nil {
		return nil, err
	}
	if o.ProfileDir != "" {
		if err := b.profileCopies(ctx, in, n, "end-to-end-"); err != nil {
			return nil, err
		}
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}
	first, err := b.firstOutputs(ctx, variants)
	if err != nil {
		return nil, err
	}

	wall := func(v variant) string { return fmtDuration(secs(float64(n) / median(rs.rates[v]))) }
	rateRow := func(key, name string, v, base variant, baseName string) Row {
		r := rs.rateRow(key, name, v, base, baseName, o.MessageBytes)
		r.Sluice = fmt.Sprintf("%s (%s msg/s)", wall(v), group(int64(r.SluiceValue)))
		r.Baseline = wall(base) + " " + baseName
		return r
	}
	firstRow := func(key, name string, v, base variant, baseName string) Row {
		s, bs := median(first[v]), median(first[base])
		diff := pairedDiff(first[v], first[base])
		return Row{Key: key, Name: name, Sluice: fmt.Sprintf("%s (%+.0f ms)", fmtDuration(secs(s)), diff*1e3), Baseline: fmtDuration(secs(bs)) + " " + baseName,
			SluiceValue: s, BaselineValue: bs, Unit: "s", Ratio: pairedRatio(first[v], first[base])}
	}
	size := fmt.Sprintf("%s messages", group(int64(n)))
	var rows []Row
	if o.CompareBin != "" {
		rows = append(rows,
			rateRow("end-to-end/this-vs-other", "end to end, commits every 1s ("+size+"): this sluice / "+o.CompareBin, thisV, otherV, "(other)"),
			rs.cpuRow("end-to-end/cpu-this-vs-other", "end to end, CPU per message: this sluice / "+o.CompareBin, thisV, otherV, "(other)"),
			firstRow("end-to-end/first-this-vs-other", "end to end, exec to first output message: this sluice / "+o.CompareBin, thisV, otherV, "(other)"))
	}
	wallRow := rateRow("end-to-end/wall-vs-raw", "end to end: sluice run --exit-when-caught-up, commits every 1s ("+size+") / raw franz-go", thisV, rawV, "(raw)")
	atLeast(&wallRow, 0.95)
	cpuRow := rs.cpuRow("end-to-end/cpu-vs-raw", "end to end, CPU per message / raw franz-go", thisV, rawV, "(raw)")
	atMost(&cpuRow, 1.05)
	fr := firstRow("end-to-end/first-vs-raw", fmt.Sprintf("end to end, exec to first output message (%s-message input) / raw franz-go", group(int64(firstPerPartition*o.Partitions))), thisV, rawV, "(raw)")
	fr.Target = "<= raw + 50 ms"
	fr.Result = verdict(pairedDiff(first[thisV], first[rawV]) <= 0.050)
	return append(rows, wallRow, cpuRow, fr), nil
}

// pairedDiff returns the median of xs[i]-ys[i].
func pairedDiff(xs, ys []float64) float64 {
	ds := make([]float64, 0, len(xs))
	for i := range min(len(xs), len(ys)) {
		ds = append(ds, xs[i]-ys[i])
	}
	return median(ds)
}

// firstOutputs times, for each variant, from exec to the moment a consumer of the
// output receives its first record, copying a small input (firstPerPartition
// messages per partition) to one output topic that a consumer follows throughout.
// Before each run the consumer has seen every record of the runs before, so the
// first it sees after the exec is the run's. Repeats rounds, alternating, after
// one untimed run that warms the consumer up.
func (b *bencher) firstOutputs(ctx context.Context, variants []variant) (map[variant][]float64, error) {
	o := b.opts
	const in, out = "bench-first-in", "bench-first-out"
	n := int64(firstPerPartition * o.Partitions)
	for _, t := range []string{in, out} {
		if err := b.createTopic(ctx, t, o.Partitions, nil); err != nil {
			return nil, err
		}
	}
	if err := b.fill(ctx, in, o.Partitions, int(n), o.MessageBytes); err != nil {
		return nil, err
	}
	w, err := b.watchCount(ctx, out, o.Partitions, false)
	if err != nil {
		return nil, err
	}
	defer w.close()
	var total int64
	runOne := func(v variant) (first, exit time.Duration, err error) {
		if err := w.waitSeen(total, 30*time.Second); err != nil {
			return 0, 0, err
		}
		w.arm()
		job := fmt.Sprintf("bench-first-%d", b.seq())
		p, err := b.startCopy(in, out, job, v, "")
		if err != nil {
			return 0, 0, err
		}
		at, err := w.first(p, 2*time.Minute)
		if err != nil {
			return 0, 0, err
		}
		if err := p.wait(2 * time.Minute); err != nil {
			return 0, 0, err
		}
		total += n
		if err := w.waitSeen(total, 30*time.Second); err != nil {
			return 0, 0, fmt.Errorf("%s: %w; its log: %s", v, err, p.stderr.path)
		}
		if !v.raw {
			if err := b.deleteTopics(ctx, checkpointTopic(job)); err != nil {
				return 0, 0, err
			}
		}
		return at.Sub(p.started), p.elapsed(), nil
	}
	b.logf("  exec to first output message: %s messages over %d partitions, one output topic followed throughout", group(n), o.Partitions)
	if _, _, err := runOne(variant{raw: true}); err != nil { // warm-up
		return nil, err
	}
	firsts := map[variant][]float64{}
	for rep := range o.Repeats {
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			d, exit, err := runOne(v)
			if err != nil {
				return nil, err
			}
			firsts[v] = append(firsts[v], d.Seconds())
			b.logf("  run %d/%d %-40s first output %s after exec (exit after %s)", rep+1, o.Repeats, v, fmtDuration(d), fmtDuration(exit))
		}
	}
	if err := b.deleteTopics(ctx, in, out); err != nil {
		return nil, err
	}
	return firsts, nil
}

// countWatch follows a topic from its start and counts the records it receives;
// armed, it notes when the next records arrive.
type countWatch struct {
	cl      *kgo.Client
	cancel  context.CancelFunc
	done    chan struct{}
	changed chan struct{} // signalled (without blocking) after every fetch with records

	mu      sync.Mutex
	seen    int64
	armed   bool
	firstAt time.Time
}

// watchCount starts following topic (committed: as a read_committed consumer).
func (b *bencher) watchCount(ctx context.Context, topic string, partitions int, committed bool) (*countWatch, error) {
	parts := map[int32]kgo.Offset{}
	for p := range partitions {
		parts[int32(p)] = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(time.Second)}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", topic, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &countWatch{cl: cl, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	go func() {
		defer close(w.done)
		for wctx.Err() == nil {
			fs := cl.PollFetches(wctx)
			now := time.Now()
			k := int64(fs.NumRecords())
			if k == 0 {
				continue
			}
			w.mu.Lock()
			w.seen += k
			if w.armed && w.firstAt.IsZero() {
				w.firstAt = now
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

func (w *countWatch) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

// arm makes the next fetch with records count as the first.
func (w *countWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.firstAt = true, time.Time{}
}

// waitSeen waits until the watch has seen want records; more is an error.
func (w *countWatch) waitSeen(want int64, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		seen := w.seen
		w.mu.Unlock()
		switch {
		case seen == want:
			return nil
		case seen > want:
			return fmt.Errorf("the output holds %d records, want %d", seen, want)
		}
		select {
		case <-w.changed:
		case <-deadline.C:
			return fmt.Errorf("the output holds %d records after %v, want %d", seen, limit, want)
		}
	}
}

// first waits for the first arrival since arm while p runs (or has just exited).
func (w *countWatch) first(p *proc, limit time.Duration) (time.Time, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	exited := p.done
	for {
		w.mu.Lock()
		at := w.firstAt
		w.mu.Unlock()
		if !at.IsZero() {
			return at, nil
		}
		select {
		case <-w.changed:
		case <-exited:
			if p.err != nil {
				return time.Time{}, fmt.Errorf("%s failed: %w; its log: %s\n%s", p.name, p.err, p.stderr.path, p.stderr.tail())
			}
			exited = nil // it exited cleanly: its output is on its way to the watch
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("no output of %s within %v; its log: %s", p.name, limit, p.stderr.path)
		}
	}
}
