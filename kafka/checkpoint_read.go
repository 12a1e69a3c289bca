package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/backoff"
)

// Reading the checkpoint topic.
//
// The reader issues its own Fetch requests for partition 0 and decodes them with
// kgo.ProcessFetchPartition rather than running a kgo consumer, because it must
// know exactly where it stands: it stops when the position reaches the end offset
// captured before reading, even when the records just before that offset have been
// compacted away and nothing arrives to say so. It never relies on an empty poll.
//
// It reads committed records only (read_committed: the broker returns records up to
// the last stable offset, with the list of aborted transactions, which
// ProcessFetchPartition drops), so that the records of an open or aborted
// transaction (a checkpoint tool's rewrite, see WriteAll) are never taken. The end
// offset it reads up to is the high watermark, so a transaction open when reading
// starts is waited for, up to StableWaitTimeout, rather than skipped: its checkpoints
// are either all taken (committed) or all not (aborted). Records written outside
// transactions (sluice run's commits) are stable as soon as they are written.
const (
	checkpointFetchBytes = 4 << 20
	maxReadRestarts      = 3
)

// fetchRetry is how the reader retries failed fetches: 10 consecutive failures at
// most, waiting 50 ms, 100 ms, 200 ms ... (at most 1 s) in between (5.55 s of waits
// in all); a fetch that makes progress starts it afresh.
var fetchRetry = backoff.Policy{Initial: 50 * time.Millisecond, Multiplier: 2, Max: time.Second, Attempts: 10}

// stablePoll is how often the reader looks again for an open transaction to end.
const stablePoll = 50 * time.Millisecond

// rawEntry is the latest record of one task seen so far: only its bytes, decoded
// once at the end.
type rawEntry struct {
	key       string // the record key: the task name, or its alternate (see altKey)
	offset    int64
	tombstone bool
	value     []byte
}

// readTopic reads partition 0 from its log start to the end offset it has now, and
// returns the latest checkpoint of every task and that end offset.
func (m *CheckpointManager) readTopic(ctx context.Context, td kadm.TopicDetail) (map[string]*entry, int64, error) {
	began := time.Now()
	var (
		raw     map[string]*rawEntry
		start   int64
		end     int64
		records int64
		err     error
	)
	for restarts := 0; ; restarts++ {
		start, end, err = m.bounds(ctx)
		if err != nil {
			return nil, 0, err
		}
		raw = make(map[string]*rawEntry)
		records, err = m.scan(ctx, td, start, end, raw)
		if !errors.Is(err, errLogStartMoved) || restarts >= maxReadRestarts {
			break
		}
		m.log.Warn("checkpoint: records were deleted from the checkpoint topic while it was being read; reading it again")
	}
	if err != nil {
		return nil, 0, err
	}

	entries := make(map[string]*entry, len(raw))
	corrupt := 0
	for task, e := range raw {
		if e.tombstone {
			continue // a tombstone: the task has no checkpoint
		}
		entries[task] = m.decode(task, e)
		if entries[task].err != nil {
			corrupt++
		}
	}
	log := m.log.Info
	if corrupt > 0 {
		log = m.log.Warn
	}
	log("checkpoint: read the checkpoint topic", "start_offset", start, "end_offset", end, "records", records,
		"tasks", len(entries), "corrupt", corrupt, "took", time.Since(began).Round(time.Millisecond))
	return entries, end, nil
}

// decode decodes the latest record of task, which is not a tombstone.
func (m *CheckpointManager) decode(task string, e *rawEntry) *entry {
	doc, cp, err := checkpoint.Decode(e.value)
	if err == nil && doc.Task != task {
		err = fmt.Errorf("the document is for task %q but the record key is %q", doc.Task, task)
	}
	if err != nil {
		return &entry{err: &checkpoint.CorruptError{Where: m.where(e.offset), Err: err}}
	}
	cp.Source = m.where(e.offset)
	return &entry{cp: cp, key: e.key}
}

// altKeySuffix makes a task's alternate record key. Under exactly-once a task's
// checkpoint records alternate between its two keys, the task name and the alternate,
// so that the record of a transaction still open never has the key of the task's last
// committed record: a broker that compacted past the first unstable offset (franz-go's
// kfake, the embedded broker, does) could otherwise drop the committed record behind
// the open one, and lose the checkpoint if that transaction then aborted. Kafka itself
// never cleans past the first unstable offset; there the alternation costs one more
// record per task.
const altKeySuffix = "#1"

// taskOfKey returns the task a checkpoint record key belongs to.
func taskOfKey(key string) string {
	if t, ok := strings.CutSuffix(key, altKeySuffix); ok {
		return t
	}
	return key
}

// Refresh reads the checkpoint records written since the manager last read the topic
// (at Start, or the last Refresh), so that Read answers with the checkpoints stored
// now: a container calls it before it adds a task while running, whose previous
// owner may have checkpointed it since.
func (m *CheckpointManager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refreshLocked(ctx); err != nil {
		return fmt.Errorf("checkpoint: reading the checkpoints written since the last read: %w", err)
	}
	return nil
}

// refreshLocked brings the snapshot Read answers from up to date with the topic: it
// reads the records written since the last read (by the checkpoint tool, say), or the
// whole topic again when some of those records are gone already. m.mu is held.
func (m *CheckpointManager) refreshLocked(ctx context.Context) error {
	if err := m.startedLocked(); err != nil {
		return err
	}
	start, end, err := m.bounds(ctx)
	if err != nil {
		return err
	}
	if end <= m.readEnd {
		return nil
	}
	td, err := m.describeTopic(ctx, false)
	if err != nil {
		return fmt.Errorf("checkpoint: looking up topic %s: %w", m.topic, err)
	}
	if start <= m.readEnd {
		raw := make(map[string]*rawEntry)
		records, err := m.scan(ctx, td, m.readEnd, end, raw)
		switch {
		case err == nil:
			for task, e := range raw {
				if e.tombstone {
					delete(m.entries, task)
				} else {
					m.entries[task] = m.decode(task, e)
				}
			}
			m.log.Info("checkpoint: read the checkpoint records written since start", "start_offset", m.readEnd, "end_offset", end, "records", records)
			m.readEnd = end
			return nil
		case !errors.Is(err, errLogStartMoved):
			return err
		}
	}
	entries, end, err := m.readTopic(ctx, td)
	if err != nil {
		return err
	}
	m.entries, m.readEnd = entries, end
	return nil
}

// bounds returns partition 0's log start and end offsets.
func (m *CheckpointManager) bounds(ctx context.Context) (start, end int64, err error) {
	starts, ends, err := listOffsets(ctx, m.adm, m.topic)
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint: %w", err)
	}
	so, ok1 := starts.Lookup(m.topic, 0)
	eo, ok2 := ends.Lookup(m.topic, 0)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("checkpoint: topic %s has no partition 0", m.topic)
	}
	return so.Offset, max(eo.Offset, so.Offset), nil
}

var errLogStartMoved = errors.New("the log start moved past the reader")

// scan fetches [start, end) into raw and returns the number of records read.
func (m *CheckpointManager) scan(ctx context.Context, td kadm.TopicDetail, start, end int64, raw map[string]*rawEntry) (int64, error) {
	var (
		next     = start
		records  int64
		leader   = td.Partitions[0].Leader
		decomp   = kgo.DefaultDecompressor()
		retries  = fetchRetry.Start(m.sys.clock)
		unstable = unstableWait{clock: m.sys.clock}
	)
	fail := func(err error) error {
		if !retriable(err) && !isNetErr(err) {
			return fmt.Errorf("checkpoint: reading topic %s partition 0 at offset %d: %w", m.topic, next, err)
		}
		wait, gaveUp := retries.Failed(err)
		if gaveUp != nil {
			return fmt.Errorf("checkpoint: reading topic %s partition 0 at offset %d: %w", m.topic, next, gaveUp)
		}
		m.log.Debug("checkpoint: fetch failed; retrying", "offset", next, "err", err, "retry_in", wait)
		if err := retries.Wait(ctx, wait); err != nil {
			return err
		}
		// The leader may have moved.
		if d, derr := m.describeTopic(ctx, false); derr == nil && len(d.Partitions) > 0 {
			td, leader = d, d.Partitions[0].Leader
		}
		return nil
	}
	for next < end {
		if err := ctx.Err(); err != nil {
			return records, err
		}
		rp, throttle, err := m.fetch(ctx, td, leader, next)
		if err == nil && rp.ErrorCode != 0 {
			err = kerr.ErrorForCode(rp.ErrorCode)
		}
		if errors.Is(err, kerr.OffsetOutOfRange) && rp != nil && rp.LogStartOffset > next {
			return records, errLogStartMoved
		}
		if err != nil {
			if err := fail(err); err != nil {
				return records, err
			}
			continue
		}
		fp, after := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: next, Topic: m.topic, Partition: 0, IsolationLevel: kgo.ReadCommitted(),
		}, rp, decomp, nil)
		if fp.Err != nil && len(fp.Records) == 0 {
			return records, &checkpoint.CorruptError{Where: m.where(next), Err: fmt.Errorf("undecodable record batch: %w", fp.Err)}
		}
		for _, r := range fp.Records {
			if r.Offset >= end {
				break
			}
			if err := m.apply(r, raw); err != nil {
				return records, err
			}
			records++
		}
		if after <= next && throttle > 0 && len(rp.RecordBatches) == 0 {
			// A quota-throttled broker answers empty; wait as asked.
			if err := backoff.Sleep(ctx, m.sys.clock, throttle); err != nil {
				return records, err
			}
			continue
		}
		if after <= next && len(rp.RecordBatches) == 0 {
			lso := rp.LastStableOffset
			if lso < 0 {
				lso = rp.HighWatermark // a broker that does not say
			}
			switch {
			case lso > next:
				// Nothing stable between next and the last stable offset: those
				// records are gone (compacted).
				next = min(lso, end)
				retries.Reset()
				continue
			case next < min(rp.HighWatermark, end):
				// A transaction is open at next: wait until it ends.
				if err := unstable.wait(ctx, m, next, end); err != nil {
					return records, err
				}
				continue
			}
		}
		unstable.done(m)
		if after <= next {
			// Nothing at or after next up to the high watermark: the rest of
			// [next, end) is gone (compacted tombstones, truncation).
			if rp.HighWatermark <= next || len(rp.RecordBatches) == 0 {
				if rp.HighWatermark < end {
					m.log.Warn("checkpoint: the checkpoint topic ends before the end offset captured at start", "high_watermark", rp.HighWatermark, "end_offset", end)
				}
				break
			}
			if err := fail(errors.New("fetch made no progress")); err != nil {
				return records, err
			}
			continue
		}
		next = after
		retries.Reset()
	}
	return records, nil
}

// unstableWait is the reader waiting for open transactions to end: a poll every
// stablePoll for up to StableWaitTimeout in all (m.stableWait).
type unstableWait struct {
	clock  backoff.Clock
	polls  *backoff.Loop // nil when not waiting
	logged time.Duration // when it last logged, into the wait
}

// wait waits a little for the last stable offset to move past next, logging now and
// then, and fails once it has waited m.stableWait in all.
func (w *unstableWait) wait(ctx context.Context, m *CheckpointManager, next, end int64) error {
	first := w.polls == nil
	if first {
		w.polls = backoff.Policy{Initial: stablePoll, Budget: m.stableWait}.Start(w.clock)
	}
	d, err := w.polls.Failed(errTxnOpen)
	if err != nil {
		return fmt.Errorf("checkpoint: reading topic %s partition 0: a transaction open at offset %d did not end within %v "+
			"(a checkpoint tool killed while rewriting the checkpoints, transactional id %s, is aborted by the broker after %v; another transactional producer writes to the topic?)",
			m.topic, next, m.stableWait, m.RewriteTransactionalID(), RewriteTransactionTimeout)
	}
	if waited := w.polls.Elapsed(); first || waited-w.logged >= 5*time.Second {
		w.logged = waited
		m.log.Warn("checkpoint: waiting for a transaction on the checkpoint topic to end before reading on (a checkpoint tool is rewriting the checkpoints, or was killed while it did)",
			"last_stable_offset", next, "end_offset", end, "waited", waited.Round(time.Millisecond), "timeout", m.stableWait)
	}
	if err := w.polls.Wait(ctx, d); err != nil {
		return ctx.Err()
	}
	return nil
}

// errTxnOpen is the failure an unstableWait's poll notes.
var errTxnOpen = errors.New("a transaction is open")

// done notes that the reader is no longer waiting, and logs how long it did.
func (w *unstableWait) done(m *CheckpointManager) {
	if w.polls == nil {
		return
	}
	m.log.Info("checkpoint: the transaction on the checkpoint topic ended; reading on", "waited", w.polls.Elapsed().Round(time.Millisecond))
	w.polls, w.logged = nil, 0
}

// apply records r as its task's latest record.
func (m *CheckpointManager) apply(r *kgo.Record, raw map[string]*rawEntry) error {
	if r.Key == nil {
		return &checkpoint.CorruptError{Where: m.where(r.Offset), Err: errors.New(
			"the record has no key (checkpoint records are keyed by task name); the topic holds records that Sluice did not write: point task.checkpoint.topic elsewhere or remove them")}
	}
	task := taskOfKey(string(r.Key))
	e := raw[task]
	if e == nil {
		e = &rawEntry{}
		raw[task] = e
	}
	e.key = string(r.Key)
	e.offset = r.Offset
	e.tombstone = r.Value == nil
	e.value = append(e.value[:0], r.Value...)
	return nil
}

// fetch issues one Fetch of partition 0 at offset to the leader.
// It also returns how long the broker asked us to wait (quota throttling).
func (m *CheckpointManager) fetch(ctx context.Context, td kadm.TopicDetail, leader int32, offset int64) (*kmsg.FetchResponseTopicPartition, time.Duration, error) {
	if leader < 0 {
		return nil, 0, kerr.LeaderNotAvailable
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.IsolationLevel = 1 // read_committed
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = checkpointFetchBytes
	req.SessionEpoch = -1 // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = m.topic
	rt.TopicID = td.ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = checkpointFetchBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	kresp, err := m.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	throttle := time.Duration(resp.ThrottleMillis) * time.Millisecond
	if resp.ErrorCode != 0 {
		return nil, throttle, kerr.ErrorForCode(resp.ErrorCode)
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != m.topic && t.TopicID != td.ID {
			continue
		}
		for j := range t.Partitions {
			if t.Partitions[j].Partition == 0 {
				return &t.Partitions[j], throttle, nil
			}
		}
	}
	return nil, throttle, errors.New("the fetch response does not include partition 0")
}

// isNetErr reports errors worth a retry that are not Kafka error codes: broken
// connections and the like.
func isNetErr(err error) bool {
	var ke *kerr.Error
	return !errors.As(err, &ke) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
