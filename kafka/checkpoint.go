package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/internal/backoff"
)

// Checkpoint manager defaults.
const (
	// DefaultCheckpointReplicationFactor is task.checkpoint.replication.factor's
	// default, capped at the number of brokers when the topic is created.
	DefaultCheckpointReplicationFactor = 3
	// DefaultCheckpointWriteTimeout is task.checkpoint.write.timeout.ms's default: how
	// long Write keeps retrying before it gives up.
	DefaultCheckpointWriteTimeout = 60 * time.Second
	// RunLockSessionTimeout is how long a container that died without a clean stop
	// keeps holding its run lock (its consumer group membership).
	RunLockSessionTimeout = 10 * time.Second
	// RewriteTransactionTimeout is the transaction timeout of WriteAll (the
	// checkpoint tool's rewrites): the broker aborts the open transaction of a tool
	// killed part way after this long, and readers of the checkpoint topic wait for
	// it meanwhile (see StableWaitTimeout).
	RewriteTransactionTimeout = 10 * time.Second
	// StableWaitTimeout bounds how long reading the checkpoint topic waits for open
	// transactions on it to finish (the broker aborts one RewriteTransactionTimeout
	// after its first record, and may take some seconds more to notice).
	StableWaitTimeout = time.Minute
)

// rewriteTxnPrefix starts the transactional id of WriteAll.
const rewriteTxnPrefix = "sluice-checkpoint-tool-"

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// CheckpointManager stores checkpoints in a compacted, single-partition Kafka topic,
// one record per task per commit, keyed by the task name; see
// docs/checkpoint-format.md for the byte format. It implements checkpoint.Manager,
// checkpoint.Lister, checkpoint.Deleter, checkpoint.RunLocker, checkpoint.RewriteLocker
// and checkpoint.AtomicWriter (WriteAll: one transaction) and is safe for concurrent use.
//
// Start reads the whole topic once, from its log start to the end offset it had at
// Start, committed records only (waiting for open transactions to end); the last
// record of each task wins. Read answers from that snapshot, updated
// by this manager's own Writes and Deletes, and brought up to date with the topic when
// the run lock or the rewrite lock is taken (AcquireRunLock, LockForRewrite).
// Checkpoints that other processes write at any other time are not seen.
type CheckpointManager struct {
	sys          *System
	log          *slog.Logger
	job, jobID   string
	topic        string
	rf           int16
	writeTimeout time.Duration
	exactlyOnce  bool // task.processing.guarantee=exactly-once: the tool's rewrite fences the tasks

	// Test hooks.
	now        func() time.Time
	newID      func(time.Time) string
	seq        atomic.Uint64
	stableWait time.Duration // StableWaitTimeout

	mu      sync.Mutex
	state   int
	cl      *kgo.Client
	txcl    *kgo.Client // WriteAll's transactional client, once used
	txmu    sync.Mutex  // one WriteAll at a time: transactions of one client do not overlap
	adm     *kadm.Client
	entries map[string]*entry
	readEnd int64 // the end offset entries were read up to
}

// entry is a task's latest checkpoint, or why it cannot be read.
type entry struct {
	cp  checkpoint.Checkpoint
	err error  // a *checkpoint.CorruptError
	key string // of the latest record: the task name or its alternate (see altKeySuffix)
}

var (
	_ checkpoint.Manager       = (*CheckpointManager)(nil)
	_ checkpoint.Lister        = (*CheckpointManager)(nil)
	_ checkpoint.Deleter       = (*CheckpointManager)(nil)
	_ checkpoint.AtomicWriter  = (*CheckpointManager)(nil)
	_ checkpoint.RewriteLocker = (*CheckpointManager)(nil)
)

// NewCheckpointManager validates the checkpoint keys of cfg and returns a manager
// over sys's cluster, unconnected. Keys: job.name (required), job.id (default 1),
// task.checkpoint.topic (default __samza_checkpoint_<job.name>_<job.id>),
// task.checkpoint.replication.factor (default 3) and
// task.checkpoint.write.timeout.ms (default 60000). Every problem is reported at
// once. The manager connects with the settings of sys's producer and does not need
// sys to be started. A nil logger discards.
func NewCheckpointManager(sys *System, cfg config.Config, logger *slog.Logger) (*CheckpointManager, error) {
	if sys == nil {
		return nil, errors.New("checkpoint: nil kafka system")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var p config.Problems
	job, hasJob := cfg.Get("job.name")
	if !hasJob || job == "" {
		p.Add("job.name", job, "missing: the Kafka checkpoint topic is named after the job")
	}
	jobID := cfg.GetOr("job.id", "1")
	topic, explicit := cfg.Get("task.checkpoint.topic")
	switch {
	case explicit:
		if err := validTopic(topic); err != nil {
			p.Add("task.checkpoint.topic", topic, "not a legal Kafka topic name: %v", err)
		}
	case job != "":
		topic = "__samza_checkpoint_" + job + "_" + jobID
		if err := validTopic(topic); err != nil {
			key, val := "job.name", job
			if validTopic(job) == nil && validTopic(jobID) != nil {
				key, val = "job.id", jobID
			}
			p.Add(key, val, "the checkpoint topic %q derived from job.name and job.id is not a legal Kafka topic name (%v); rename the job, or set task.checkpoint.topic", topic, err)
		}
	}
	rf, err := cfg.Int("task.checkpoint.replication.factor", DefaultCheckpointReplicationFactor)
	p.AddErr(err)
	if err == nil && (rf < 1 || rf > 32767) {
		v, _ := cfg.Get("task.checkpoint.replication.factor")
		p.Add("task.checkpoint.replication.factor", v, "must be from 1 to 32767")
	}
	wt, err := cfg.Millis("task.checkpoint.write.timeout.ms", DefaultCheckpointWriteTimeout)
	p.AddErr(err)
	if err == nil && wt <= 0 {
		v, _ := cfg.Get("task.checkpoint.write.timeout.ms")
		p.Add("task.checkpoint.write.timeout.ms", v, "must be a positive number of milliseconds")
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	m := &CheckpointManager{
		sys: sys, log: logger.With("checkpoint_topic", topic), job: job, jobID: jobID, topic: topic,
		rf: int16(rf), writeTimeout: wt, now: time.Now, stableWait: StableWaitTimeout, exactlyOnce: exactlyOnce(cfg),
	}
	m.newID = func(t time.Time) string { return checkpoint.NewID(t, m.seq.Add(1)) }
	return m, nil
}

// validTopic checks a name against Kafka's rules: [a-zA-Z0-9._-], at most 249
// characters, not "." or "..".
func validTopic(t string) error {
	switch {
	case t == "":
		return errors.New("empty")
	case t == "." || t == "..":
		return errors.New(`"." and ".." are reserved`)
	case len(t) > maxTopicLen:
		return fmt.Errorf("%d characters, more than Kafka's %d", len(t), maxTopicLen)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("character %q is not allowed (only a-z, A-Z, 0-9, '.', '_' and '-')", c)
		}
	}
	return nil
}

// Topic returns the checkpoint topic's name.
func (m *CheckpointManager) Topic() string { return m.topic }

// where names the record at offset, for errors.
func (m *CheckpointManager) where(offset int64) string {
	return fmt.Sprintf("topic %s partition 0 offset %d", m.topic, offset)
}

// clientOpts are the options of the manager's client: the system's producer
// connection, synchronous acks=all writes to partition 0, and a few retries per
// attempt so that Write sees the broker's error rather than only its own deadline.
func (m *CheckpointManager) clientOpts() []kgo.Opt {
	return append(m.sys.clientOpts(RoleCheckpoint),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.RecordRetries(3),
		kgo.UnknownTopicRetries(2),
		kgo.RecordDeliveryTimeout(m.writeTimeout),
		kgo.MetadataMinAge(adminMetadataMinAge),
	)
}

// Start creates the topic if it is missing (one partition, cleanup.policy=compact,
// the configured replication factor capped at the broker count), refuses a topic
// with more than one partition, warns about one that is not compacted, and reads the
// latest checkpoint of every task.
func (m *CheckpointManager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateStarted:
		return nil
	case stateClosed:
		return errors.New("checkpoint: Start after Close")
	}
	cl, err := kgo.NewClient(m.clientOpts()...)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	m.cl, m.adm = cl, kadm.NewClient(cl)
	td, err := m.ensureTopic(ctx)
	if err == nil {
		m.entries, m.readEnd, err = m.readTopic(ctx, td)
	}
	if err != nil {
		cl.Close()
		m.cl, m.adm = nil, nil
		return err
	}
	m.state = stateStarted
	return nil
}

// ensureTopic creates or validates the checkpoint topic and returns its details.
func (m *CheckpointManager) ensureTopic(ctx context.Context) (kadm.TopicDetail, error) {
	pingCtx, cancel := context.WithTimeout(ctx, StartTimeout)
	err := ping(pingCtx, m.sys.clock, m.cl, m.sys.set.producer)
	cancel()
	if err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("checkpoint: kafka system %q: %w", m.sys.name, err)
	}
	td, err := m.describeTopic(ctx, true)
	if errors.Is(err, errTopicMissing) {
		if err := m.createTopic(ctx); err != nil {
			return kadm.TopicDetail{}, err
		}
		td, err = m.describeTopic(ctx, false)
	}
	if err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("checkpoint: looking up topic %s: %w", m.topic, err)
	}
	if n := len(td.Partitions); n != 1 {
		return kadm.TopicDetail{}, fmt.Errorf("checkpoint: topic %s has %d partitions, but a checkpoint topic must have exactly 1 "+
			"(checkpoints written to the other partitions would never be read back); set task.checkpoint.topic to a new topic, "+
			"or save the checkpoints with the checkpoint tool, delete the topic and let the job create it again", m.topic, n)
	}
	m.warnIfNotCompacted(ctx)
	return td, nil
}

// describeTopic returns the topic's metadata. With missingOK, a missing topic is
// reported at once as kerr.UnknownTopicOrPartition; otherwise it is retried for a
// short while (a topic just created may take a moment to appear).
func (m *CheckpointManager) describeTopic(ctx context.Context, missingOK bool) (kadm.TopicDetail, error) {
	var td kadm.TopicDetail
	err := metadataRetry(m.sys.clock).Do(ctx, func(ctx context.Context) error {
		if !missingOK {
			// Ask the broker itself, not the client's metadata cache: right after
			// the topic is created the cache still says it is missing (for up to
			// MetadataMinAge), and after a failed fetch the leader may have moved.
			// (kadm sends requests for authorized operations past the cache.)
			ctx = kadm.WithAuthorizedOps(ctx)
		}
		tds, err := m.adm.ListTopics(ctx, m.topic)
		if err != nil {
			return err
		}
		d, ok := tds[m.topic]
		switch {
		case !ok && missingOK:
			return errTopicMissing
		case !ok:
			return kerr.UnknownTopicOrPartition
		case d.Err != nil && missingOK && errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return errTopicMissing // not retried: the caller creates it
		case d.Err != nil:
			return d.Err
		}
		for _, p := range d.Partitions {
			if p.Err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
			}
		}
		td = d
		return nil
	})
	return td, err
}

// errTopicMissing is describeTopic's answer for a missing topic when the caller will
// create it.
var errTopicMissing = errors.New("topic does not exist")

func (m *CheckpointManager) createTopic(ctx context.Context) error {
	var brokers int
	err := metadataRetry(m.sys.clock).Do(ctx, func(ctx context.Context) error {
		md, err := m.adm.BrokerMetadata(ctx)
		brokers = len(md.Brokers)
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: listing brokers to create topic %s: %w", m.topic, err)
	}
	rf := m.rf
	if brokers > 0 && int(rf) > brokers {
		rf = int16(brokers)
		m.log.Warn("checkpoint: the cluster has fewer brokers than task.checkpoint.replication.factor; capping the checkpoint topic's replication factor",
			"replication_factor", m.rf, "brokers", brokers, "using", rf)
	}
	compact := "compact"
	resp, err := m.adm.CreateTopic(ctx, 1, rf, map[string]*string{"cleanup.policy": &compact}, m.topic)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil // another container won the race; validate what it made
	case err != nil:
		msg := ""
		if resp.ErrMessage != "" {
			msg = " (" + resp.ErrMessage + ")"
		}
		return fmt.Errorf("checkpoint: creating topic %s (1 partition, replication factor %d, cleanup.policy=compact)%s: %w", m.topic, rf, msg, err)
	}
	m.log.Info("checkpoint: created the checkpoint topic", "partitions", 1, "replication_factor", rf, "cleanup.policy", compact)
	return nil
}

func (m *CheckpointManager) warnIfNotCompacted(ctx context.Context) {
	rcs, err := m.adm.DescribeTopicConfigs(ctx, m.topic)
	if err == nil {
		var rc kadm.ResourceConfig
		rc, err = rcs.On(m.topic, nil)
		if err == nil && rc.Err != nil {
			err = rc.Err
		}
		if err == nil {
			for _, c := range rc.Configs {
				if c.Key == "cleanup.policy" {
					if v := c.MaybeValue(); !strings.Contains(v, "compact") {
						m.log.Warn("checkpoint: the checkpoint topic is not compacted, so it grows with every commit and startup reads it all; "+
							"set its cleanup.policy to compact (kafka-configs --alter --add-config cleanup.policy=compact)",
							"cleanup.policy", v)
					}
					return
				}
			}
			return
		}
	}
	m.log.Warn("checkpoint: cannot check the checkpoint topic's cleanup.policy", "err", err)
}

// Read returns task's latest checkpoint, with its record (topic, partition, offset)
// as its Source: ErrNoCheckpoint if it has none (never written, or its latest record
// is a tombstone), a *checkpoint.CorruptError naming the record if its latest record
// cannot be decoded.
func (m *CheckpointManager) Read(_ context.Context, task string) (checkpoint.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.startedLocked(); err != nil {
		return checkpoint.Checkpoint{}, err
	}
	e, ok := m.entries[task]
	switch {
	case !ok:
		return checkpoint.Checkpoint{}, fmt.Errorf("task %q in topic %s: %w", task, m.topic, checkpoint.ErrNoCheckpoint)
	case e.err != nil:
		return checkpoint.Checkpoint{}, e.err
	}
	cp := checkpoint.New(e.cp.Offsets)
	cp.Source, cp.Written = e.cp.Source, e.cp.Written
	return cp, nil
}

// Tasks returns, sorted, every task whose latest record is not a tombstone (corrupt
// ones included).
func (m *CheckpointManager) Tasks(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.startedLocked(); err != nil {
		return nil, err
	}
	tasks := make([]string, 0, len(m.entries))
	for t := range m.entries {
		tasks = append(tasks, t)
	}
	slices.Sort(tasks)
	return tasks, nil
}

func (m *CheckpointManager) startedLocked() error {
	switch m.state {
	case stateNew:
		return errors.New("checkpoint: the Kafka checkpoint manager is not started")
	case stateClosed:
		return errors.New("checkpoint: the Kafka checkpoint manager is closed")
	}
	return nil
}

// startedClient returns the manager's client, or an error when it is not started.
func (m *CheckpointManager) startedClient() (*kgo.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.startedLocked(); err != nil {
		return nil, err
	}
	return m.cl, nil
}

// Write stores cp as task's latest checkpoint: one record, produced with acks=all
// and waited for. Failures are retried with capped exponential backoff for up to
// task.checkpoint.write.timeout.ms; then Write returns an error wrapping
// checkpoint.ErrRetriesExhausted and the last failure.
func (m *CheckpointManager) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	cl, err := m.startedClient()
	if err != nil {
		return err
	}
	now := m.now()
	value, err := checkpoint.Encode(task, cp, m.newID(now), now)
	if err != nil {
		return err
	}
	offset, err := m.produce(ctx, cl, task, value)
	if err != nil {
		return err
	}
	stored := checkpoint.New(cp.Offsets)
	stored.Source, stored.Written = m.where(offset), now
	m.mu.Lock()
	if m.entries != nil {
		m.entries[task] = &entry{cp: stored, key: task}
	}
	m.mu.Unlock()
	return nil
}

// Delete removes task's checkpoint: it writes a tombstone (a record with task's key
// and no value), with the same acknowledgement and retries as Write. Readers then find
// no checkpoint of task, and compaction eventually removes its records.
func (m *CheckpointManager) Delete(ctx context.Context, task string) error {
	cl, err := m.startedClient()
	if err != nil {
		return err
	}
	if task == "" {
		return errors.New("checkpoint: delete: empty task name")
	}
	// Both keys of the task (see altKeySuffix), the plain one last, so that no older
	// record of either can come back once the tombstones are cleaned.
	if _, err := m.produce(ctx, cl, task+altKeySuffix, nil); err != nil {
		return err
	}
	if _, err := m.produce(ctx, cl, task, nil); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.entries, task)
	m.mu.Unlock()
	return nil
}

// writeRetry is how a checkpoint write retries: every failure but a closed client,
// waiting 0.1, 0.2, 0.4 s ... (at most 5 s) in between, for up to
// task.checkpoint.write.timeout.ms (the budget; also the bound of each attempt).
func writeRetry(budget time.Duration) backoff.Policy {
	return backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 5 * time.Second, Budget: budget}
}

// produce writes one record, retrying under writeRetry until it is acknowledged, and
// returns its offset. Giving up, it returns an error wrapping
// checkpoint.ErrRetriesExhausted (and backoff.ErrExhausted), so that the container
// does not retry the write again.
func (m *CheckpointManager) produce(ctx context.Context, cl *kgo.Client, task string, value []byte) (int64, error) {
	r := backoff.Retrier{
		Policy:    writeRetry(m.writeTimeout),
		Clock:     m.sys.clock,
		Retriable: func(err error) bool { return !errors.Is(err, kgo.ErrClientClosed) },
		OnRetry: func(attempt int, wait time.Duration, err error) {
			m.log.Warn("checkpoint: write failed; retrying", "task", task, "attempt", attempt, "retry_in", wait, "err", err)
		},
	}
	var (
		rec      *kgo.Record
		attempts int
	)
	err := r.Do(ctx, func(ctx context.Context) error {
		attempts++
		rec = &kgo.Record{Topic: m.topic, Partition: 0, Key: []byte(task), Value: value}
		return cl.ProduceSync(ctx, rec).FirstErr()
	})
	switch {
	case err == nil:
		if attempts > 1 {
			m.log.Info("checkpoint: write succeeded after retries", "task", task, "attempts", attempts)
		}
		return rec.Offset, nil
	case errors.Is(err, backoff.ErrExhausted):
		return 0, fmt.Errorf("checkpoint: writing task %q to topic %s (task.checkpoint.write.timeout.ms=%d): %w: %w",
			task, m.topic, m.writeTimeout.Milliseconds(), checkpoint.ErrRetriesExhausted, err)
	}
	return 0, fmt.Errorf("checkpoint: writing task %q to topic %s: %w", task, m.topic, err)
}

// RewriteTransactionalID returns the transactional id WriteAll writes under:
// sluice-checkpoint-tool-<job.name>-<job.id>. Every checkpoint tool run of the job
// uses it, so the next run fences a tool killed part way and aborts its open
// transaction (LockForRewrite does it first thing).
func (m *CheckpointManager) RewriteTransactionalID() string {
	return rewriteTxnPrefix + m.job + "-" + m.jobID
}

// rewriteClient returns WriteAll's transactional client, creating it and loading its
// producer id on first use: that fences earlier clients with the same transactional
// id and aborts a transaction they left open.
func (m *CheckpointManager) rewriteClient(ctx context.Context) (*kgo.Client, error) {
	m.mu.Lock()
	if err := m.startedLocked(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	cl := m.txcl
	if cl == nil {
		var err error
		cl, err = kgo.NewClient(append(m.clientOpts(),
			kgo.TransactionalID(m.RewriteTransactionalID()),
			kgo.TransactionTimeout(RewriteTransactionTimeout),
		)...)
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		m.txcl = cl
	}
	m.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, m.writeTimeout)
	defer cancel()
	if _, _, err := cl.ProducerID(pctx); err != nil {
		err = fmt.Errorf("checkpoint: initialising the transactional producer %s: %w", m.RewriteTransactionalID(), err)
		if ke, ok := errors.AsType[*kerr.Error](err); ok && !ke.Retriable {
			// Not authorised for the transactional id, transactions not supported, ...
			return nil, fmt.Errorf("%w: %w", checkpoint.ErrAtomicUnavailable, err)
		}
		return nil, err
	}
	return cl, nil
}

// fenceTasks opens and closes the transactional producer of every task of cps (see
// TaskTransactionalID), so that a container still running one of them (the tool was
// run with --force) can commit none of its work after the rewrite: its next commit
// fails as fenced, and it stops.
func (m *CheckpointManager) fenceTasks(ctx context.Context, cps []checkpoint.TaskCheckpoint) error {
	for _, tc := range cps {
		cl, err := kgo.NewClient(append(m.clientOpts(), kgo.TransactionalID(m.TaskTransactionalID(tc.Task)))...)
		if err != nil {
			return fmt.Errorf("checkpoint: fencing the transactions of task %s: %w", tc.Task, err)
		}
		pctx, cancel := context.WithTimeout(ctx, m.writeTimeout)
		_, _, err = cl.ProducerID(pctx)
		cancel()
		cl.Close()
		if err != nil {
			return fmt.Errorf("checkpoint: fencing the transactions of task %s (transactional id %s): %w", tc.Task, m.TaskTransactionalID(tc.Task), err)
		}
	}
	return nil
}

// WriteAll stores the checkpoints of several tasks all or nothing: one record per
// task, all in one Kafka transaction under RewriteTransactionalID, committed once
// every record is acknowledged (after is called for each then). Readers of the topic
// read committed records only, so they see the old checkpoints until the commit and
// the new ones after it; a transaction left open by a killed process is aborted by
// the broker (RewriteTransactionTimeout) or by the next WriteAll's producer. Sluice
// run's own Writes stay outside transactions.
//
// A task named twice, or a checkpoint Write would refuse, is an error and nothing is
// written. When a record fails, the transaction is aborted and the error wraps
// checkpoint.ErrNothingWritten. When the commit itself fails, the outcome is unknown
// (all or nothing). A cluster that refuses the transactional producer gives an error
// wrapping checkpoint.ErrAtomicUnavailable.
func (m *CheckpointManager) WriteAll(ctx context.Context, cps []checkpoint.TaskCheckpoint, after func(task string, n int)) error {
	nothing := func(err error) error { return fmt.Errorf("%w: %w", checkpoint.ErrNothingWritten, err) }
	if _, err := m.startedClient(); err != nil {
		return nothing(err)
	}
	if len(cps) == 0 {
		return nil
	}
	now := m.now()
	recs := make([]*kgo.Record, 0, len(cps))
	seen := make(map[string]bool, len(cps))
	for _, tc := range cps {
		if seen[tc.Task] {
			return nothing(fmt.Errorf("checkpoint: write: task %q named twice", tc.Task))
		}
		seen[tc.Task] = true
		value, err := checkpoint.Encode(tc.Task, tc.Checkpoint, m.newID(now), now)
		if err != nil {
			return nothing(err)
		}
		recs = append(recs, &kgo.Record{Topic: m.topic, Partition: 0, Key: []byte(tc.Task), Value: value})
	}
	cl, err := m.rewriteClient(ctx)
	if err != nil {
		return nothing(err)
	}
	if m.exactlyOnce {
		if err := m.fenceTasks(ctx, cps); err != nil {
			return nothing(err)
		}
	}
	m.txmu.Lock()
	defer m.txmu.Unlock()
	txn := fmt.Sprintf("the transaction (transactional id %s) that writes the checkpoints of %d tasks to topic %s", m.RewriteTransactionalID(), len(cps), m.topic)
	if err := cl.BeginTransaction(); err != nil {
		return nothing(fmt.Errorf("checkpoint: beginning %s: %w", txn, err))
	}
	// Once begun, the transaction is ended whatever the caller's context says:
	// cancelling an EndTransaction leaves its outcome unknown.
	endCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), m.writeTimeout)
	}
	wctx, cancel := context.WithTimeout(ctx, m.writeTimeout)
	err = cl.ProduceSync(wctx, recs...).FirstErr()
	cancel()
	if err != nil {
		actx, cancel := endCtx()
		defer cancel()
		if aerr := cl.EndTransaction(actx, kgo.TryAbort); aerr != nil {
			m.log.Warn("checkpoint: aborting the rewrite's transaction failed; the broker aborts it when it times out, and until then readers of the checkpoint topic wait",
				"transactional_id", m.RewriteTransactionalID(), "timeout", RewriteTransactionTimeout, "err", aerr)
		}
		return nothing(fmt.Errorf("checkpoint: writing in %s: %w; the transaction is aborted", txn, err))
	}
	if after != nil {
		for i, r := range recs {
			after(string(r.Key), i+1)
		}
	}
	ectx, cancel := endCtx()
	defer cancel()
	if err := cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return fmt.Errorf("checkpoint: committing %s: %w; whether it committed is unknown, but it is all or nothing: print the checkpoints to see which", txn, err)
	}
	m.mu.Lock()
	if m.entries != nil {
		for i, r := range recs {
			cp := checkpoint.New(cps[i].Checkpoint.Offsets)
			cp.Source = m.where(r.Offset)
			m.entries[cps[i].Task] = &entry{cp: cp, key: cps[i].Task}
		}
	}
	m.mu.Unlock()
	m.log.Info("checkpoint: wrote the checkpoints of several tasks in one transaction", "tasks", len(cps), "transactional_id", m.RewriteTransactionalID())
	return nil
}

// Close releases the manager's clients. It is idempotent.
func (m *CheckpointManager) Close() error {
	m.mu.Lock()
	cl, txcl := m.cl, m.txcl
	m.cl, m.txcl, m.adm, m.state = nil, nil, nil, stateClosed
	m.mu.Unlock()
	if txcl != nil {
		txcl.Close()
	}
	if cl != nil {
		cl.Close()
	}
	return nil
}
