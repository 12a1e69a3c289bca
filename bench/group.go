package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const gainedLine = "task group: this container gained tasks"

// groupConfig is a job in group mode (job.coordinator.factory=kafka) with the
// given task lines, commits every second.
func (b *bencher) groupConfig(job, in string, task ...string) []string {
	lines := append(kafkaJob(b.addr, job, in, time.Second),
		"job.coordinator.factory=kafka",
		"job.coordinator.replication.factor=1",
		fmt.Sprintf("job.coordinator.session.timeout.ms=%d", b.opts.GroupSessionTimeout.Milliseconds()),
	)
	return append(lines, task...)
}

// groupTopics are the topics a group-mode job creates besides its output.
func groupTopics(job string) []string {
	return []string{checkpointTopic(job), "__sluice_tasks_" + job + "_1"}
}

// groupSection measures group mode (job.coordinator.factory=kafka): rounds of a
// planned scale-out and a SIGKILL on an input fed at GroupRate, and the throughput
// of copying EndToEndMessages with each count of GroupContainers.
func (b *bencher) groupSection(ctx context.Context) ([]Row, error) {
	o := b.opts
	// The broker's default minimum session timeout is 6 s, as Kafka's.
	if min := o.GroupSessionTimeout.Milliseconds(); min < 6000 {
		v := strconv.FormatInt(min, 10)
		resps, err := b.adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "group.min.session.timeout.ms", Value: &v}})
		if err == nil {
			for _, r := range resps {
				if r.Err != nil {
					err = r.Err
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("lowering the broker's group.min.session.timeout.ms to %s: %w", v, err)
		}
	}
	var rounds []*groupRound
	for rep := range o.Repeats {
		r, err := b.groupRound(ctx, rep)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, r)
	}
	scale, err := b.groupScaling(ctx)
	if err != nil {
		return nil, err
	}

	pick := func(f func(*groupRound) float64) []float64 {
		var xs []float64
		for _, r := range rounds {
			xs = append(xs, f(r))
		}
		return xs
	}
	session := o.GroupSessionTimeout
	failover := median(pick(func(r *groupRound) float64 { return r.failover }))
	handover := median(pick(func(r *groupRound) float64 { return r.handover }))
	var reprocessed int
	for _, r := range rounds {
		reprocessed += r.reprocessed
	}
	rows := []Row{
		{Key: "group/failover", Name: fmt.Sprintf("group: SIGKILL of one of 2 containers to all its tasks processing on the survivor (session timeout %v)", session),
			Sluice: fmtDuration(secs(failover)), SluiceValue: failover, BaselineValue: nan(), Unit: "s", Ratio: nan(),
			Target: "< session + 1 s", Result: verdict(failover < (session + time.Second).Seconds())},
		{Key: "group/handover", Name: "group: planned scale-out (1 to 2 containers), longest pause of a moved task (old owner's last output to new owner's first)",
			Sluice:      fmt.Sprintf("%s (all moved %s after exec)", fmtDuration(secs(handover)), fmtDuration(secs(median(pick(func(r *groupRound) float64 { return r.scaledOut }))))),
			SluiceValue: handover, BaselineValue: nan(), Unit: "s", Ratio: nan(), Target: "< 500 ms", Result: verdict(handover < 0.5)},
		{Key: "group/reprocessed", Name: fmt.Sprintf("group: messages processed twice in the planned scale-outs (%d rounds)", len(rounds)),
			Sluice: group(int64(reprocessed)), SluiceValue: float64(reprocessed), BaselineValue: nan(), Unit: "messages", Ratio: nan(),
			Target: "0", Result: verdict(reprocessed == 0)},
	}
	for _, u := range []struct {
		key, name string
		f         func(*groupRound) unaffected
	}{
		{"group/unaffected-scale-out", "during the scale-out", func(r *groupRound) unaffected { return r.scaleOutKept }},
		{"group/unaffected-failover", "during the failover", func(r *groupRound) unaffected { return r.failoverKept }},
	} {
		during := median(pick(func(r *groupRound) float64 { return u.f(r).during }))
		input := median(pick(func(r *groupRound) float64 { return u.f(r).input }))
		pause := median(pick(func(r *groupRound) float64 { return u.f(r).pause }))
		ratios := pick(func(r *groupRound) float64 { return u.f(r).during / u.f(r).input })
		row := Row{Key: u.key, Name: "group: throughput of the tasks that stay where they are, " + u.name + " / their input rate (their longest pause)",
			Sluice:   fmt.Sprintf("%s msg/s (%s)", group(int64(during)), fmtDuration(secs(pause))),
			Baseline: fmt.Sprintf("%s msg/s (input)", group(int64(input))), SluiceValue: during, BaselineValue: input, Unit: "msg/s", Ratio: median(ratios)}
		atLeast(&row, 0.90)
		rows = append(rows, row)
	}
	one := variant{commit: time.Second, containers: o.GroupContainers[0]}
	rows = append(rows, scale.rateRow(fmt.Sprintf("group/throughput-%d-vs-static", one.containers),
		fmt.Sprintf("group: passthrough of %s messages, %s / the static coordinator", group(int64(scale.n)), containersName(one.containers)),
		one, variant{commit: time.Second}, "(static)", o.MessageBytes))
	for _, k := range o.GroupContainers[1:] {
		v := variant{commit: time.Second, containers: k}
		r := scale.rateRow(fmt.Sprintf("group/throughput-%d-vs-%d", k, one.containers), fmt.Sprintf("group: passthrough, %s / %s", containersName(k), containersName(one.containers)),
			v, one, "("+containersName(one.containers)+")", o.MessageBytes)
		atLeast(&r, 0.90)
		rows = append(rows, r)
	}
	for _, k := range o.GroupContainers[1:] {
		v := variant{commit: time.Second, containers: k}
		rows = append(rows, scale.cpuRow(fmt.Sprintf("group/cpu-%d-vs-%d", k, one.containers), fmt.Sprintf("group: CPU per message, %s / %s", containersName(k), containersName(one.containers)),
			v, one, "("+containersName(one.containers)+")"))
	}
	return rows, nil
}

func containersName(k int) string {
	if k == 1 {
		return "1 container"
	}
	return fmt.Sprintf("%d containers", k)
}

// groupScaling copies EndToEndMessages in group mode with each count of
// GroupContainers (all started at once, --exit-when-caught-up), Repeats rounds,
// alternating.
func (b *bencher) groupScaling(ctx context.Context) (*runs, error) {
	o := b.opts
	const in = "bench-group-in"
	n := o.EndToEndMessages
	if err := b.createTopic(ctx, in, o.Partitions, nil); err != nil {
		return nil, err
	}
	b.logf("group throughput: filling %s: %s messages of %d bytes over %d partitions", in, group(int64(n)), o.MessageBytes, o.Partitions)
	if err := b.fill(ctx, in, o.Partitions, n, o.MessageBytes); err != nil {
		return nil, err
	}
	variants := []variant{{commit: time.Second}} // the static coordinator, for comparison
	for _, k := range o.GroupContainers {
		variants = append(variants, variant{commit: time.Second, containers: k})
	}
	rs, err := b.alternate(ctx, in, n, variants)
	if err != nil {
		return nil, err
	}
	if err := b.deleteTopics(ctx, in); err != nil {
		return nil, err
	}
	return rs, nil
}

// groupCopy is copyOnce for a group of v.containers containers: they start at
// once, each with --exit-when-caught-up; the time is from the first exec to the
// last exit, the CPU that of all of them.
func (b *bencher) groupCopy(ctx context.Context, in, out, job string, n int, v variant) (elapsed, cpu time.Duration, err error) {
	lines := b.groupConfig(job, in, "task.class=passthrough", "task.passthrough.output=kafka."+out)
	cfg, err := b.writeConfig(job, lines)
	if err != nil {
		return 0, 0, err
	}
	var ps []*proc
	defer func() {
		for _, p := range ps {
			p.kill()
		}
	}()
	for range v.containers {
		p, err := b.start("sluice-run", b.sluice, []string{"run", "--config-path=" + cfg, "--exit-when-caught-up"}, nil, nil)
		if err != nil {
			return 0, 0, err
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.wait(time.Duration(max(600, n/1000)) * time.Second); err != nil {
			return 0, 0, err
		}
	}
	first, last := ps[0].started, ps[0].ended // read after every one exited
	for _, p := range ps {
		if p.started.Before(first) {
			first = p.started
		}
		if p.ended.After(last) {
			last = p.ended
		}
		cpu += p.cpu()
	}
	got, err := b.endTotal(ctx, out)
	if err != nil {
		return 0, 0, err
	}
	if got != int64(n) {
		return 0, 0, fmt.Errorf("%s copied %d messages, want %d; their logs: %s ...", v, got, n, ps[0].stderr.path)
	}
	if err := b.deleteTopics(ctx, append(groupTopics(job), out)...); err != nil {
		return 0, 0, err
	}
	return last.Sub(first), cpu, nil
}

// unaffected is how the tasks that stayed with their container fared while others
// moved: their messages per second during the move, their input's rate (the input
// is fed at a steady rate, so a task that kept up processes that much), and the
// longest gap between two of their outputs during it.
type unaffected struct {
	during, input, pause float64
}

// groupRound is what one round of scale-out and failover measured (seconds).
type groupRound struct {
	scaledOut    float64 // exec of the new container to every moved task processing there
	handover     float64 // the longest pause of a moved task
	reprocessed  int     // inputs processed twice before the SIGKILL
	failover     float64 // SIGKILL to every task of the killed container processing on the survivor
	scaleOutKept unaffected
	failoverKept unaffected
}

// groupMember is a container of a group round, with a count of its "gained tasks"
// log lines.
type groupMember struct {
	p      *proc
	gained atomic.Int32
	signal chan struct{}
}

func (b *bencher) startMember(cfg string) (*groupMember, error) {
	m := &groupMember{signal: make(chan struct{}, 1)}
	watch := func(line string) {
		if strings.Contains(line, gainedLine) {
			m.gained.Add(1)
			select {
			case m.signal <- struct{}{}:
			default:
			}
		}
	}
	p, err := b.start("sluice-group", b.helper, []string{modeSluice, "run", "--config-path=" + cfg}, b.opts.HelperEnv, watch)
	if err != nil {
		return nil, err
	}
	m.p = p
	return m, nil
}

// waitGained waits until m logged n times that it gained tasks.
func (m *groupMember) waitGained(ctx context.Context, n int32, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for m.gained.Load() < n {
		select {
		case <-m.signal:
		case <-m.p.done:
			return fmt.Errorf("a container exited (%w) before it gained tasks; its log: %s\n%s", m.p.exitErr(), m.p.stderr.path, m.p.stderr.tail())
		case <-deadline.C:
			return fmt.Errorf("a container did not gain tasks (%d times) within %v; its log: %s", n, limit, m.p.stderr.path)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// outRecord is an output record of the bench-tag task.
type outRecord struct {
	seq uint64    // the input's sequence number (its key)
	pid int       // the process that processed it
	at  time.Time // when
}

// groupRound runs one round on fresh topics fed at GroupRate: container A alone
// for GroupSteady, then B starts (a planned scale-out: A hands some tasks over),
// both run for GroupSteady, then A is killed with SIGKILL and B takes its tasks
// once A's session expired. The bench-tag task stamps each output with the process
// and time that processed it, from which the output tells every figure.
func (b *bencher) groupRound(ctx context.Context, rep int) (*groupRound, error) {
	o := b.opts
	seq := b.seq()
	in, out, job := fmt.Sprintf("bench-group-in-%d", seq), fmt.Sprintf("bench-group-out-%d", seq), fmt.Sprintf("bench-group-%d", seq)
	for _, t := range []string{in, out} {
		if err := b.createTopic(ctx, t, o.Partitions, nil); err != nil {
			return nil, err
		}
	}
	cfg, err := b.writeConfig(job, b.groupConfig(job, in, "task.class="+tagTaskClass, keyTagOutput+"=kafka."+out))
	if err != nil {
		return nil, err
	}
	feed := b.feedKeyed(ctx, in, o.Partitions, o.GroupRate, o.MessageBytes, true)
	defer feed.stopFeed()
	a, err := b.startMember(cfg)
	if err != nil {
		return nil, err
	}
	defer a.p.kill()
	if err := a.waitGained(ctx, 1, time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(o.GroupSteady)
	t1 := time.Now()
	bm, err := b.startMember(cfg)
	if err != nil {
		return nil, err
	}
	defer bm.p.kill()
	if err := bm.waitGained(ctx, 1, time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(o.GroupSteady)
	if a.p.exited() {
		return nil, fmt.Errorf("container A exited (%w) before it was killed; its log: %s", a.p.exitErr(), a.p.stderr.path)
	}
	t0 := time.Now()
	a.p.kill()
	if err := bm.waitGained(ctx, 2, time.Minute+o.GroupSessionTimeout); err != nil {
		return nil, err
	}
	time.Sleep(o.GroupSteady)
	if err := feed.stopFeed(); err != nil {
		return nil, err
	}
	_ = bm.p.cmd.Process.Signal(syscall.SIGTERM)
	if err := bm.p.wait(time.Minute); err != nil {
		return nil, err
	}

	parts := map[int32][]outRecord{}
	var perr error
	if err := b.readTopic(ctx, out, false, func(r *kgo.Record) {
		rec := outRecord{at: r.Timestamp}
		if len(r.Key) == 8 {
			rec.seq = binary.BigEndian.Uint64(r.Key)
		}
		for _, h := range r.Headers {
			if h.Key == headerPID {
				rec.pid, _ = strconv.Atoi(string(h.Value))
			}
		}
		if len(r.Key) != 8 || rec.pid == 0 {
			perr = fmt.Errorf("output record %s[%d]@%d has no sequence key or %s header", r.Topic, r.Partition, r.Offset, headerPID)
		}
		parts[r.Partition] = append(parts[r.Partition], rec)
	}); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	r, err := analyseRound(parts, a.p.cmd.Process.Pid, bm.p.cmd.Process.Pid, t1, t0, float64(o.GroupRate)/float64(o.Partitions))
	if err != nil {
		return nil, fmt.Errorf("round %d: %w (logs %s, %s)", rep+1, err, a.p.stderr.path, bm.p.stderr.path)
	}
	b.logf("  round %d/%d: scale-out: longest pause of a moved task %s, all moved %s after exec, %d processed twice; kept tasks %.0f msg/s (input %.0f), longest pause %s",
		rep+1, o.Repeats, fmtDuration(secs(r.handover)), fmtDuration(secs(r.scaledOut)), r.reprocessed, r.scaleOutKept.during, r.scaleOutKept.input, fmtDuration(secs(r.scaleOutKept.pause)))
	b.logf("  round %d/%d: SIGKILL: the killed container's tasks processing again after %s; kept tasks %.0f msg/s (input %.0f), longest pause %s",
		rep+1, o.Repeats, fmtDuration(secs(r.failover)), r.failoverKept.during, r.failoverKept.input, fmtDuration(secs(r.failoverKept.pause)))
	if err := b.deleteTopics(ctx, append(groupTopics(job), in, out)...); err != nil {
		return nil, err
	}
	return r, nil
}

// analyseRound computes a round's figures from the output records of each
// partition (in offset order): pidA ran alone until t1, when pidB started; pidA
// was killed at t0. Each partition's input grew by rate messages a second.
func analyseRound(parts map[int32][]outRecord, pidA, pidB int, t1, t0 time.Time, rate float64) (*groupRound, error) {
	r := &groupRound{}
	var moved, keptA, keptB, killedTasks []int32
	firstB := map[int32]int{} // index of the first record pidB processed before t0
	for p, recs := range parts {
		ib := slices.IndexFunc(recs, func(x outRecord) bool { return x.pid == pidB })
		switch {
		case ib < 0:
			return nil, fmt.Errorf("partition %d: the survivor processed nothing", p)
		case recs[ib].at.Before(t0):
			moved = append(moved, p)
			firstB[p] = ib
		default:
			keptA = append(keptA, p)
		}
	}
	if len(moved) == 0 || len(keptA) == 0 {
		return nil, fmt.Errorf("the scale-out moved %d of %d tasks", len(moved), len(parts))
	}
	// Scale-out: the pause of each moved task, from its last output by A to its
	// first by B, and how long after B's exec the last one resumed.
	var end time.Time
	for _, p := range moved {
		recs, ib := parts[p], firstB[p]
		ia := slices.IndexFunc(recs, func(x outRecord) bool { return x.pid == pidA })
		if ia < 0 || ia > ib {
			return nil, fmt.Errorf("partition %d: processed by the new container before the old one", p)
		}
		last := recs[ib-1]
		if last.pid != pidA {
			return nil, fmt.Errorf("partition %d: output of pid %d between the two containers'", p, last.pid)
		}
		r.handover = max(r.handover, recs[ib].at.Sub(last.at).Seconds())
		if recs[ib].at.After(end) {
			end = recs[ib].at
		}
		// After the move, A must not process the partition again before it is
		// killed.
		for _, x := range recs[ib:] {
			if x.pid == pidA {
				return nil, fmt.Errorf("partition %d: the old container processed it after it moved", p)
			}
		}
	}
	r.scaledOut = end.Sub(t1).Seconds()
	// Duplicates before the SIGKILL: a planned move reprocesses nothing.
	for _, recs := range parts {
		seen := map[uint64]bool{}
		for _, x := range recs {
			if x.at.Before(t0) {
				if seen[x.seq] {
					r.reprocessed++
				}
				seen[x.seq] = true
			}
		}
	}
	r.scaleOutKept = keptFigures(parts, keptA, t1, end, rate)

	// Failover: A's tasks at the kill (those it kept) resume on B.
	killedTasks = keptA
	var resumed time.Time
	for _, p := range killedTasks {
		recs := parts[p]
		ib := slices.IndexFunc(recs, func(x outRecord) bool { return x.pid == pidB })
		if recs[ib].at.After(resumed) {
			resumed = recs[ib].at
		}
	}
	r.failover = resumed.Sub(t0).Seconds()
	keptB = moved
	r.failoverKept = keptFigures(parts, keptB, t0, resumed, rate)
	return r, nil
}

// keptFigures measures the partitions kept during [from, to): their messages per
// second then, against their input's, and the longest gap between two consecutive
// outputs of one of them that overlaps the window.
func keptFigures(parts map[int32][]outRecord, kept []int32, from, to time.Time, rate float64) unaffected {
	u := unaffected{input: rate * float64(len(kept))}
	var during int
	for _, p := range kept {
		recs := parts[p]
		for i, x := range recs {
			if !x.at.Before(from) && x.at.Before(to) {
				during++
			}
			if i > 0 && x.at.After(from) && recs[i-1].at.Before(to) {
				u.pause = max(u.pause, x.at.Sub(recs[i-1].at).Seconds())
			}
		}
	}
	if w := to.Sub(from).Seconds(); w > 0 {
		u.during = float64(during) / w
	}
	return u
}
