package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// memSample is a process's memory when the backlog first reached a mark.
type memSample struct {
	backlog   int64
	rss, peak int64 // VmRSS and VmHWM, bytes
}

// memory runs a job whose task is SlowFactor times slower than its input, then the
// same with a plain franz-go loop. Each starts on an input that already holds a
// tenth of MemoryBacklog (so that its very first fetches are full and its buffers
// fill at once: the memory it needs at its worst shows from the start), and is fed
// at MemoryRate until its backlog reaches MemoryBacklog; its memory is sampled on
// the way, at twice the initial backlog and at MemoryBacklog: memory that grew
// with the backlog would grow by the bytes of the backlog added in between.
func (b *bencher) memory(ctx context.Context) ([]Row, error) {
	o := b.opts
	prefill := int64(o.MemoryBacklog) / 10
	marks := []int64{2 * prefill, int64(o.MemoryBacklog)}
	// Each task takes partitions*factor/rate seconds per message, so together they
	// handle rate/factor messages a second.
	delay := time.Duration(float64(time.Second) * float64(o.Partitions*o.SlowFactor) / float64(o.MemoryRate))
	b.logf("memory: %d partitions holding %s messages, then fed %s msg/s; the task takes %v per message (%dx slower than the input); until the backlog reaches %s",
		o.Partitions, group(prefill), group(int64(o.MemoryRate)), delay, o.SlowFactor, group(int64(o.MemoryBacklog)))
	sluice, err := b.slowRun(ctx, false, delay, prefill, marks)
	if err != nil {
		return nil, err
	}
	raw, err := b.slowRun(ctx, true, delay, prefill, marks)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for i, m := range marks {
		s, r := float64(sluice[i].rss), float64(raw[i].rss)
		rows = append(rows, Row{
			Key:    fmt.Sprintf("memory/rss-at-%dx", m/prefill),
			Name:   fmt.Sprintf("memory: RSS at backlog %s (task %dx slower) / raw franz-go", group(m), o.SlowFactor),
			Sluice: fmtBytes(s), Baseline: fmtBytes(r) + " (raw)", SluiceValue: s, BaselineValue: r, Unit: "bytes", Ratio: s / r,
		})
	}
	last := len(marks) - 1
	s, r := float64(sluice[last].peak), float64(raw[last].peak)
	rows = append(rows, Row{
		Key:    "memory/peak",
		Name:   fmt.Sprintf("memory: peak RSS up to backlog %s / raw franz-go", group(marks[last])),
		Sluice: fmtBytes(s), Baseline: fmtBytes(r) + " (raw)", SluiceValue: s, BaselineValue: r, Unit: "bytes", Ratio: s / r,
	})
	// How much of the backlog added between the marks shows in memory: a process
	// that held its backlog would be at 1 or more (the messages plus their
	// overhead); a flat one near 0. (Both drift a little: garbage accumulates
	// between the rare garbage collections of a slow process.)
	growth := func(m []memSample) float64 {
		return float64(m[last].rss-m[0].rss) / float64((m[last].backlog-m[0].backlog)*int64(o.MessageBytes))
	}
	gs, gr := growth(sluice), growth(raw)
	ratio := gs / gr
	if gr == 0 {
		ratio = nan()
	}
	flat := Row{
		Key:    "memory/flat",
		Name:   fmt.Sprintf("memory: RSS growth / backlog growth in bytes, backlog %s to %s", group(marks[0]), group(marks[last])),
		Sluice: fmt.Sprintf("%.3f", gs), Baseline: fmt.Sprintf("%.3f (raw)", gr), SluiceValue: gs, BaselineValue: gr, Unit: "bytes/byte",
		Ratio: ratio, Target: "sluice <= 0.10", Result: verdict(gs <= 0.10),
	}
	return append(rows, flat), nil
}

// slowRun fills a fresh input with prefill messages, starts a slow consumer on it
// (Sluice's bench-slow task, or raw franz-go), feeds the input at MemoryRate and
// returns the consumer's memory at each mark of the backlog (input end offsets minus
// output end offsets: every processed message is sent on).
func (b *bencher) slowRun(ctx context.Context, raw bool, delay time.Duration, prefill int64, marks []int64) ([]memSample, error) {
	o := b.opts
	n := b.seq()
	in, out := fmt.Sprintf("bench-mem-in-%d", n), fmt.Sprintf("bench-mem-out-%d", n)
	job := fmt.Sprintf("bench-memory-%d", n)
	for _, t := range []string{in, out} {
		if err := b.createTopic(ctx, t, o.Partitions, nil); err != nil {
			return nil, err
		}
	}
	if err := b.fill(ctx, in, o.Partitions, int(prefill), o.MessageBytes); err != nil {
		return nil, err
	}
	ready := make(chan struct{}, 1)
	readyLine := "container starting"
	if raw {
		readyLine = "raw-slow: consuming"
	}
	watch := func(line string) {
		if strings.Contains(line, readyLine) {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}
	var p *proc
	var err error
	name := "sluice"
	if raw {
		name = "raw franz-go"
		p, err = b.start("raw-slow", b.helper, []string{modeRawSlow, "--brokers=" + b.addr, "--in=" + in, "--out=" + out,
			"--delay=" + (delay / time.Duration(o.Partitions)).String(), "--partitions=" + itoa(o.Partitions)}, o.HelperEnv, watch)
	} else {
		cfg, cerr := b.writeConfig(job, append(kafkaJob(b.addr, job, in, time.Second),
			"task.class="+slowTaskClass,
			keySlowOutput+"=kafka."+out,
			fmt.Sprintf("%s=%d", keySlowDelay, delay.Microseconds()),
		))
		if cerr != nil {
			return nil, cerr
		}
		p, err = b.start("sluice-slow", b.helper, []string{modeSluice, "run", "--config-path=" + cfg}, o.HelperEnv, watch)
	}
	if err != nil {
		return nil, err
	}
	defer p.kill()
	select {
	case <-ready:
	case <-p.done:
		return nil, fmt.Errorf("the slow %s job exited (%w); its log: %s\n%s", name, p.exitErr(), p.stderr.path, p.stderr.tail())
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("the slow %s job did not start within a minute; its log: %s", name, p.stderr.path)
	}
	time.Sleep(500 * time.Millisecond) // let the consumers start

	feed := b.feed(ctx, in, o.Partitions, o.MemoryRate, o.MessageBytes)
	defer feed.stopFeed()

	samples := make([]memSample, len(marks))
	var processed int64
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	lastLog := time.Now()
	for next := 0; next < len(marks); {
		select {
		case <-tk.C:
		case <-p.done:
			return nil, fmt.Errorf("the slow %s job exited (%w); its log: %s\n%s", name, p.exitErr(), p.stderr.path, p.stderr.tail())
		case <-feed.done:
			if err := feed.stopFeed(); err != nil {
				return nil, err
			}
			return nil, errors.New("feeding the input stopped early")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		rss, peak, err := p.memory()
		if err != nil {
			return nil, err
		}
		inEnd, err := b.endTotal(ctx, in)
		if err != nil {
			return nil, err
		}
		outEnd, err := b.endTotal(ctx, out)
		if err != nil {
			return nil, err
		}
		backlog := inEnd - outEnd
		processed = outEnd
		for next < len(marks) && backlog >= marks[next] {
			samples[next] = memSample{backlog: backlog, rss: rss, peak: peak}
			b.logf("  %-12s backlog %9s: RSS %s, peak %s; %s processed", name, group(backlog), fmtBytes(float64(rss)), fmtBytes(float64(peak)), group(outEnd))
			next++
		}
		if time.Since(lastLog) >= 5*time.Second {
			b.logf("  %-12s backlog %9s: RSS %s, peak %s", name, group(backlog), fmtBytes(float64(rss)), fmtBytes(float64(peak)))
			lastLog = time.Now()
		}
	}
	p.kill()
	if err := feed.stopFeed(); err != nil {
		return nil, err
	}
	if processed == 0 {
		return nil, fmt.Errorf("the slow %s job processed nothing; its log: %s", name, p.stderr.path)
	}
	topics := []string{in, out}
	if !raw {
		topics = append(topics, checkpointTopic(job))
	}
	if err := b.deleteTopics(ctx, topics...); err != nil {
		return nil, err
	}
	return samples, nil
}
