package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

// Keys of deleting committed messages (Samza's samza.delete.committed.messages).
const (
	deleteCommittedSuffix   = "samza.delete.committed.messages"
	deleteIntervalSuffix    = "samza.delete.committed.messages.interval.ms"
	defaultDeleteInterval   = 30 * time.Second
	deleteRequestTimeout    = 30 * time.Second
	otherReadersCheckMaxAge = 5 * time.Minute
)

// deleteSettings say of which input topics the messages below the job's checkpoints
// are deleted.
type deleteSettings struct {
	// all is the system-wide (or default.stream) setting: every input topic, except
	// those another consumer group reads too.
	all bool
	// streams are the per-stream settings: true deletes even if other groups read
	// the topic (the user named it), false never deletes.
	streams  map[string]bool
	interval time.Duration
	// jobKey is "<job.name>-<job.id>": the consumer groups of this job
	// (sluice-job-, sluice-tasks- and sluice-offsets-<jobKey>) are no other readers.
	jobKey string
}

// on reports whether committed messages of topic are deleted, and whether the user
// named the topic itself (asked) rather than every topic of the system.
func (d deleteSettings) on(topic string) (on, asked bool) {
	if v, ok := d.streams[topic]; ok {
		return v, v
	}
	return d.all, false
}

func (d deleteSettings) any() bool {
	return d.all || slices.Contains(slices.Collect(maps.Values(d.streams)), true)
}

// parseDelete reads systems.<s>.samza.delete.committed.messages, its default.stream
// and per-stream forms, and the interval key.
func parseDelete(p *config.Problems, cfg config.Config, sys string, s *settings) {
	prefix := "systems." + sys + "."
	d := deleteSettings{streams: map[string]bool{}, interval: defaultDeleteInterval}
	boolKey := func(key string) (bool, bool) {
		v, ok := cfg.Get(key)
		if !ok {
			return false, false
		}
		b, err := cfg.Bool(key, false)
		if err != nil {
			p.Add(key, v, "must be true or false")
		}
		return b, true
	}
	if b, ok := boolKey(prefix + deleteCommittedSuffix); ok {
		d.all = b
	}
	if b, ok := boolKey(prefix + "default.stream." + deleteCommittedSuffix); ok {
		d.all = b
	}
	for stream, key := range system.StreamKeys(cfg, sys, deleteCommittedSuffix) {
		if b, ok := boolKey(key); ok {
			d.streams[stream] = b
		}
	}
	if cfg.Has(prefix + deleteIntervalSuffix) {
		iv, err := cfg.Millis(prefix+deleteIntervalSuffix, defaultDeleteInterval)
		if err != nil || iv <= 0 {
			v, _ := cfg.Get(prefix + deleteIntervalSuffix)
			p.Add(prefix+deleteIntervalSuffix, v, "must be a positive number of milliseconds")
		} else {
			d.interval = iv
		}
	}
	d.jobKey = cfg.GetOr("job.name", "") + "-" + cfg.GetOr("job.id", "1")
	s.delete = d
}

// deleter deletes the messages of input partitions below the offsets the job has
// checkpointed (Kafka DeleteRecords). Consumers hand it every checkpoint
// (Consumer.OnCheckpoint); it keeps the highest offset per partition and deletes at
// most once per interval, in one request for all partitions, from a timer's goroutine.
type deleter struct {
	s   *System
	set deleteSettings
	log *slog.Logger

	mu      sync.Mutex
	pending map[topicPartition]int64 // delete below these offsets next time
	done    map[topicPartition]int64 // deleted below these offsets
	last    time.Time                // when the last round ran
	timer   *time.Timer              // the next round, when one is due
	closed  bool
	running sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	// readers caches which other groups read each topic, refreshed after
	// otherReadersCheckMaxAge; warned holds the topics already logged as skipped.
	readers   map[string][]string
	checkedAt time.Time
	warned    map[string]bool
}

func newDeleter(s *System) *deleter {
	ctx, cancel := context.WithCancel(context.Background())
	return &deleter{s: s, set: s.set.delete, log: s.log, pending: map[topicPartition]int64{}, done: map[topicPartition]int64{},
		ctx: ctx, cancel: cancel, warned: map[string]bool{}}
}

// note takes the checkpointed offsets (the next offsets to read) of one task.
func (d *deleter) note(offsets map[system.SystemStreamPartition]string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	var bad []string
	for ssp, off := range offsets {
		if on, _ := d.set.on(ssp.Stream); !on {
			continue
		}
		o, err := decimal.Parse(off)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s offset %q: %v", ssp, off, err))
			continue
		}
		tp := topicPartition{ssp.Stream, ssp.Partition}
		if o > d.pending[tp] && o > d.done[tp] {
			d.pending[tp] = o
		}
	}
	if len(d.pending) > 0 && d.timer == nil {
		wait := time.Until(d.last.Add(d.set.interval))
		d.running.Add(1)
		d.timer = time.AfterFunc(max(wait, 0), d.round)
	}
	if len(bad) > 0 {
		return fmt.Errorf("delete committed messages: %s", strings.Join(bad, "; "))
	}
	return nil
}

// round deletes what is pending.
func (d *deleter) round() {
	defer d.running.Done()
	d.mu.Lock()
	todo := d.pending
	d.pending = map[topicPartition]int64{}
	d.last = time.Now()
	ctx := d.ctx
	d.mu.Unlock()

	done, retry := d.deleteBelow(ctx, todo)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.timer = nil
	maps.Copy(d.done, done)
	for tp, o := range retry {
		if o > d.pending[tp] {
			d.pending[tp] = o
		}
	}
	if len(d.pending) > 0 && !d.closed {
		d.running.Add(1)
		d.timer = time.AfterFunc(d.set.interval, d.round)
	}
}

// deleteBelow deletes the records of each partition below its offset, skipping the
// topics that another consumer group reads (unless the user named the topic). It
// returns what it deleted and what to try again.
func (d *deleter) deleteBelow(ctx context.Context, todo map[topicPartition]int64) (done, retry map[topicPartition]int64) {
	done, retry = map[topicPartition]int64{}, map[topicPartition]int64{}
	d.s.mu.Lock()
	adm := d.s.adm
	d.s.mu.Unlock()
	if adm == nil {
		maps.Copy(retry, todo)
		return done, retry
	}
	ctx, cancel := context.WithTimeout(ctx, deleteRequestTimeout)
	defer cancel()
	others, err := d.otherReaders(ctx, adm, todo)
	if err != nil {
		d.log.Warn("not deleting committed messages this time: cannot tell which other consumer groups read the topics", "error", err)
		maps.Copy(retry, todo)
		return done, retry
	}
	req := kadm.Offsets{}
	for tp, o := range todo {
		if _, asked := d.set.on(tp.topic); !asked && len(others[tp.topic]) > 0 {
			groups := others[tp.topic]
			if !d.warned[tp.topic] {
				d.warned[tp.topic] = true
				d.log.Warn("not deleting committed messages of a topic that other consumer groups read too; set its own samza.delete.committed.messages=true to delete them anyway",
					"topic", tp.topic, "groups", strings.Join(groups, ","),
					"key", "systems."+d.s.name+".streams."+tp.topic+"."+deleteCommittedSuffix)
			}
			continue
		}
		req.Add(kadm.Offset{Topic: tp.topic, Partition: tp.partition, At: o})
	}
	if len(req) == 0 {
		return done, retry
	}
	resp, err := adm.DeleteRecords(ctx, req)
	if err != nil {
		d.log.Warn("deleting committed messages failed; trying again later", "error", err)
		maps.Copy(retry, todo)
		return done, retry
	}
	var deleted []string
	resp.Each(func(r kadm.DeleteRecordsResponse) {
		tp := topicPartition{r.Topic, r.Partition}
		switch {
		case r.Err == nil:
			done[tp] = todo[tp]
			deleted = append(deleted, fmt.Sprintf("%s#%d<%d", r.Topic, r.Partition, todo[tp]))
		case r.Err == kerr.OffsetOutOfRange:
			// Below the log start already (retention deleted more), or beyond the end
			// (the topic was recreated): nothing to delete now.
			done[tp] = todo[tp]
		default:
			d.log.Warn("deleting committed messages of a partition failed; trying again later", "topic", r.Topic, "partition", r.Partition, "below", todo[tp], "error", r.Err)
			retry[tp] = todo[tp]
		}
	})
	if len(deleted) > 0 {
		slices.Sort(deleted)
		d.log.Info("deleted committed messages (samza.delete.committed.messages): the records below every partition's checkpointed offset", "partitions", strings.Join(deleted, ","))
	}
	return done, retry
}

// otherReaders returns, per topic of todo that the user did not name, the consumer
// groups other than this job's own that have committed offsets of it.
func (d *deleter) otherReaders(ctx context.Context, adm *kadm.Client, todo map[topicPartition]int64) (map[string][]string, error) {
	need := false
	for tp := range todo {
		if _, asked := d.set.on(tp.topic); !asked {
			need = true
		}
	}
	if !need {
		return nil, nil
	}
	if d.readers != nil && time.Since(d.checkedAt) < otherReadersCheckMaxAge {
		return d.readers, nil
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	// This job's own groups: its run lock, its task group and its checkpoint mirror.
	own := map[string]bool{"sluice-job-" + d.set.jobKey: true, "sluice-tasks-" + d.set.jobKey: true,
		"sluice-offsets-" + d.set.jobKey: true, d.s.mirrorGroup: true}
	var groups []string
	for _, g := range listed.Groups() {
		if !own[g] {
			groups = append(groups, g)
		}
	}
	readers := map[string][]string{}
	if len(groups) > 0 {
		for g, r := range adm.FetchManyOffsets(ctx, groups...) {
			if r.Err != nil {
				return nil, fmt.Errorf("fetch the committed offsets of group %s: %w", g, r.Err)
			}
			for topic := range r.Fetched {
				readers[topic] = append(readers[topic], g)
			}
		}
	}
	for _, gs := range readers {
		slices.Sort(gs)
	}
	d.readers, d.checkedAt = readers, time.Now()
	return readers, nil
}

// close stops the deleter; a round under way is cancelled and waited for.
func (d *deleter) close() {
	d.mu.Lock()
	d.closed = true
	if d.timer != nil && d.timer.Stop() {
		d.running.Done()
	}
	d.mu.Unlock()
	d.cancel()
	d.running.Wait()
}
