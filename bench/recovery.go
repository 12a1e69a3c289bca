package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// arrival is the moment a fetch of the output topic returned records, and the
// earliest timestamp among them (the bench-tag task's: when it processed the first
// of them).
type arrival struct {
	at, sent time.Time
}

// watchOutput consumes topic from its end and reports arrivals on the returned
// channel, which holds the first arrival not yet received (later ones are dropped
// until it is).
func (b *bencher) watchOutput(ctx context.Context, topic string, partitions int) (<-chan arrival, func(), error) {
	parts := map[int32]kgo.Offset{}
	for p := range partitions {
		parts[int32(p)] = kgo.NewOffset().AtEnd()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan arrival, 1)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			fs := cl.PollFetches(wctx)
			now := time.Now()
			var first time.Time
			fs.EachRecord(func(r *kgo.Record) {
				if first.IsZero() || r.Timestamp.Before(first) {
					first = r.Timestamp
				}
			})
			if !first.IsZero() {
				select {
				case ch <- arrival{at: now, sent: first}:
				default:
				}
			}
		}
	}()
	stop := func() {
		cancel()
		<-done
		cl.Close()
	}
	return ch, stop, nil
}

// recovery runs a passthrough job (the bench-tag task, through the bench binary's
// sluice mode) on a RecoveryPartitions-partition input fed continuously, kills it
// with SIGKILL while it works, restarts it, and times each restart from exec to the
// first new record in the output (and to when it was processed).
func (b *bencher) recovery(ctx context.Context) ([]Row, error) {
	o := b.opts
	const (
		in, out = "bench-rec-in", "bench-rec-out"
		job     = "bench-recovery"
		runFor  = 1500 * time.Millisecond // between a restart and the next kill
		quiet   = 300 * time.Millisecond  // no output for this long: the killed process is gone
	)
	for _, t := range []string{in, out} {
		if err := b.createTopic(ctx, t, o.RecoveryPartitions, nil); err != nil {
			return nil, err
		}
	}
	// The bench-tag task (a passthrough that stamps each output with the time it
	// processed it) tells when the restart processed its first message.
	lines := setKey(passthroughConfig(b.addr, job, in, out, time.Second), "task.class", tagTaskClass)
	lines = setKey(slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "task.passthrough.output=") }), keyTagOutput, "kafka."+out)
	cfg, err := b.writeConfig(job, lines)
	if err != nil {
		return nil, err
	}
	arrivals, stopWatch, err := b.watchOutput(ctx, out, o.RecoveryPartitions)
	if err != nil {
		return nil, err
	}
	defer stopWatch()
	feed := b.feed(ctx, in, o.RecoveryPartitions, o.RecoveryRate, o.MessageBytes)
	defer feed.stopFeed()
	b.logf("recovery: %d partitions fed %s msg/s; passthrough with commits every 1 s; %d SIGKILL restarts", o.RecoveryPartitions, group(int64(o.RecoveryRate)), o.RecoveryRestarts)

	run := func() (*proc, error) {
		return b.start("sluice-run", b.helper, []string{modeSluice, "run", "--config-path=" + cfg}, b.opts.HelperEnv, nil)
	}
	// waitFirst returns the first arrival after now, while p runs.
	waitFirst := func(p *proc) (arrival, error) {
		select {
		case a := <-arrivals:
			return a, nil
		case <-p.done:
			return arrival{}, fmt.Errorf("sluice run exited (%w) before it processed anything; its log: %s\n%s", p.exitErr(), p.stderr.path, p.stderr.tail())
		case <-time.After(2 * time.Minute):
			return arrival{}, fmt.Errorf("sluice run processed nothing within 2 minutes; its log: %s", p.stderr.path)
		case <-ctx.Done():
			return arrival{}, ctx.Err()
		}
	}
	p, err := run()
	if err != nil {
		return nil, err
	}
	if _, err := waitFirst(p); err != nil {
		return nil, err
	}
	var samples, sentSamples []float64
	for i := range o.RecoveryRestarts {
		time.Sleep(runFor)
		if p.exited() {
			return nil, fmt.Errorf("sluice run exited (%w) before it was killed; its log: %s", p.exitErr(), p.stderr.path)
		}
		p.kill()
		// Let the output settle: what the killed process had already sent lands.
		for settled := false; !settled; {
			select {
			case <-arrivals:
			case <-time.After(quiet):
				settled = true
			}
		}
		began := time.Now()
		if p, err = run(); err != nil {
			return nil, err
		}
		a, err := waitFirst(p)
		if err != nil {
			return nil, err
		}
		d, sent := a.at.Sub(began), a.sent.Sub(began)
		samples = append(samples, d.Seconds())
		sentSamples = append(sentSamples, sent.Seconds())
		b.logf("  restart %d/%d: first new output record %s after exec (processed %s after exec)", i+1, o.RecoveryRestarts, fmtDuration(d), fmtDuration(sent))
	}
	p.kill()
	if err := feed.stopFeed(); err != nil {
		return nil, err
	}
	if err := b.deleteTopics(ctx, in, out, checkpointTopic(job)); err != nil {
		return nil, err
	}
	s := median(samples)
	row := Row{
		Key:         "recovery/sigkill-restart",
		Name:        fmt.Sprintf("recovery: SIGKILL, restart to first output (%d partitions)", o.RecoveryPartitions),
		Sluice:      fmtDuration(secs(s)) + fmt.Sprintf(" (processed at %s)", fmtDuration(secs(median(sentSamples)))),
		SluiceValue: s, BaselineValue: nan(), Unit: "s", Ratio: nan(),
		Target: "< 1 s", Result: verdict(s < 1),
	}
	return []Row{row}, nil
}
