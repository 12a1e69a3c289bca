package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// eosIntervals are the task.commit.ms values the exactly-once section measures.
var eosIntervals = []time.Duration{time.Second, 100 * time.Millisecond}

// exactlyOnce compares task.processing.guarantee=exactly-once with at-least-once
// at each commit interval of eosIntervals, in the same alternating rounds: the
// throughput of copying Messages messages (every exactly-once copy checked with a
// read_committed reader), the CPU per message, and the latency from an input's
// producer to its output's visibility to a read_committed reader at a steady,
// low input rate.
func (b *bencher) exactlyOnce(ctx context.Context) ([]Row, error) {
	o := b.opts
	const in = "bench-eos-in"
	if err := b.createTopic(ctx, in, o.Partitions, nil); err != nil {
		return nil, err
	}
	b.logf("filling %s: %s messages of %d bytes over %d partitions", in, group(int64(o.Messages)), o.MessageBytes, o.Partitions)
	if err := b.fill(ctx, in, o.Partitions, o.Messages, o.MessageBytes); err != nil {
		return nil, err
	}
	var variants []variant
	for _, d := range eosIntervals {
		variants = append(variants, variant{commit: d}, variant{commit: d, eos: true})
	}
	rs, err := b.alternate(ctx, in, o.Messages, variants)
	if err != nil {
		return nil, err
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}
	lat, err := b.eosLatency(ctx, variants)
	if err != nil {
		return nil, err
	}

	var rows []Row
	for _, d := range eosIntervals {
		alo, eos := variant{commit: d}, variant{commit: d, eos: true}
		r := rs.rateRow("exactly-once/"+commitKey(d)+"-vs-alo", "exactly-once / at-least-once, passthrough, "+commitName(d), eos, alo, "(at-least-once)", o.MessageBytes)
		if d == time.Second {
			atLeast(&r, 0.90)
		} else {
			atLeast(&r, 0.75)
		}
		rows = append(rows, r)
	}
	for _, d := range eosIntervals {
		alo, eos := variant{commit: d}, variant{commit: d, eos: true}
		rows = append(rows, rs.cpuRow("exactly-once/cpu-"+commitKey(d)+"-vs-alo", "exactly-once / at-least-once, CPU per message, "+commitName(d), eos, alo, "(at-least-once)"))
	}
	for _, d := range eosIntervals {
		alo, eos := variant{commit: d}, variant{commit: d, eos: true}
		med := func(v variant) float64 { return median(lat[v].medians) }
		p99 := func(v variant) float64 { return median(lat[v].p99s) }
		show := func(v variant) string {
			return fmt.Sprintf("%s (p99 %s)", fmtDuration(secs(med(v))), fmtDuration(secs(p99(v))))
		}
		rows = append(rows,
			Row{Key: "exactly-once/latency-" + commitKey(d), Name: fmt.Sprintf("exactly-once / at-least-once, latency to a read_committed reader (input %s msg/s), %s, median", group(int64(o.LatencyRate)), commitName(d)),
				Sluice: show(eos), Baseline: show(alo) + " (at-least-once)", SluiceValue: med(eos), BaselineValue: med(alo), Unit: "s",
				Ratio: pairedRatio(lat[eos].medians, lat[alo].medians)},
			Row{Key: "exactly-once/commit-latency-" + commitKey(d), Name: fmt.Sprintf("exactly-once: latency added (median, exactly-once − at-least-once), %s", commitName(d)),
				Sluice:      fmt.Sprintf("%s (the mean wait for a commit: %s)", fmtDuration(secs(pairedDiff(lat[eos].medians, lat[alo].medians))), fmtDuration(d/2)),
				SluiceValue: pairedDiff(lat[eos].medians, lat[alo].medians), BaselineValue: nan(), Unit: "s", Ratio: nan()})
	}
	return rows, nil
}

// latencies are the latency figures of one variant, one per round.
type latencies struct{ medians, p99s []float64 }

// eosLatency runs the passthrough job of each variant on an input fed at
// LatencyRate, starting at the input's end, and measures, for every record that a
// read_committed consumer of the output receives during LatencyWindow (after a
// warm-up), the time from the input record's producer timestamp (which the
// passthrough copies) to its arrival. Repeats rounds, alternating.
func (b *bencher) eosLatency(ctx context.Context, variants []variant) (map[variant]*latencies, error) {
	o := b.opts
	const in = "bench-eos-lat-in"
	if err := b.createTopic(ctx, in, o.Partitions, nil); err != nil {
		return nil, err
	}
	feed := b.feed(ctx, in, o.Partitions, o.LatencyRate, o.MessageBytes)
	defer feed.stopFeed()
	b.logf("  latency: %s fed %s msg/s; the job starts at its end; a read_committed consumer of the output measures %v per run", in, group(int64(o.LatencyRate)), o.LatencyWindow)
	out := map[variant]*latencies{}
	for rep := range o.Repeats {
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			lats, err := b.latencyOnce(ctx, in, v)
			if err != nil {
				return nil, err
			}
			slices.Sort(lats)
			l := out[v]
			if l == nil {
				l = &latencies{}
				out[v] = l
			}
			med, p99 := lats[len(lats)/2], lats[min(len(lats)-1, len(lats)*99/100)]
			l.medians, l.p99s = append(l.medians, med), append(l.p99s, p99)
			b.logf("  run %d/%d %-40s latency median %s, p99 %s, max %s (%d records)", rep+1, o.Repeats, v, fmtDuration(secs(med)), fmtDuration(secs(p99)),
				fmtDuration(secs(lats[len(lats)-1])), len(lats))
		}
	}
	if err := feed.stopFeed(); err != nil {
		return nil, err
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}
	return out, nil
}

// latencyOnce runs the job of v until a read_committed consumer of its output has
// measured LatencyWindow (at least three commit intervals), after a warm-up, and
// returns the latencies in seconds. It stops the job with SIGTERM.
func (b *bencher) latencyOnce(ctx context.Context, in string, v variant) ([]float64, error) {
	o := b.opts
	seq := b.seq()
	out, job := fmt.Sprintf("bench-eos-lat-out-%d", seq), fmt.Sprintf("bench-eos-lat-%d", seq)
	if err := b.createTopic(ctx, out, o.Partitions, nil); err != nil {
		return nil, err
	}
	lines := setKey(passthroughConfig(b.addr, job, in, out, v.commit), "systems.kafka.samza.offset.default", "upcoming")
	if v.eos {
		lines = append(lines, "task.processing.guarantee=exactly-once")
	}
	cfg, err := b.writeConfig(job, lines)
	if err != nil {
		return nil, err
	}
	parts := map[int32]kgo.Offset{}
	for p := range o.Partitions {
		parts[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{out: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		from, to time.Time // the window; zero until the first record arrived
		lats     []float64
		full     = make(chan struct{})
		started  = make(chan struct{})
		once     sync.Once
	)
	// Under exactly-once records arrive in bursts, one per commit: the window starts
	// half an interval after the first burst and holds whole intervals, at least
	// three, so that it holds a fixed number of commits.
	warm := max(v.commit/2, 100*time.Millisecond)
	window := max(o.LatencyWindow, 3*v.commit)
	if v.commit > 0 {
		window = (window + v.commit - 1) / v.commit * v.commit
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			fs := cl.PollFetches(wctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if from.IsZero() {
					from = now.Add(warm)
					to = from.Add(window)
					close(started)
				}
				if !now.Before(from) && now.Before(to) {
					lats = append(lats, now.Sub(r.Timestamp).Seconds())
				}
			})
			if !to.IsZero() && !now.Before(to) {
				once.Do(func() { close(full) })
			}
			mu.Unlock()
		}
	}()
	stopWatch := func() { cancel(); <-done }
	defer stopWatch()
	p, err := b.start("sluice-run", b.sluice, []string{"run", "--config-path=" + cfg}, nil, nil)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	for _, ch := range []chan struct{}{started, full} {
		select {
		case <-ch:
		case <-p.done:
			return nil, fmt.Errorf("%s exited (%w) while its latency was measured; its log: %s\n%s", v, p.exitErr(), p.stderr.path, p.stderr.tail())
		case <-time.After(2*time.Minute + window):
			return nil, fmt.Errorf("%s: no output to measure within 2 minutes; its log: %s", v, p.stderr.path)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(time.Minute); err != nil {
		return nil, err
	}
	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	if len(lats) == 0 {
		return nil, fmt.Errorf("%s: no record arrived in the %v measured; its log: %s", v, window, p.stderr.path)
	}
	if err := b.deleteTopics(ctx, out, checkpointTopic(job)); err != nil {
		return nil, err
	}
	return lats, nil
}

// setKey returns lines with key's line set to key=value (appended if missing).
func setKey(lines []string, key, value string) []string {
	out := slices.Clone(lines)
	for i, l := range out {
		if k, _, ok := strings.Cut(l, "="); ok && k == key {
			out[i] = key + "=" + value
			return out
		}
	}
	return append(out, key+"="+value)
}
