package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

// DefaultTransactionTimeout bounds an exactly-once task's open transaction
// (systems.<s>.producer.transaction.timeout.ms): the broker aborts it after this long,
// and readers of the checkpoint topic, which wait for open transactions, wait no
// longer. Kafka Streams uses the same 10 s.
const DefaultTransactionTimeout = 10 * time.Second

var _ checkpoint.Transactor = (*CheckpointManager)(nil)

// TaskTransactionalID is the transactional id of task's producer under exactly-once:
// sluice-<job.name>-<job.id>-<task>. Whoever runs the task next uses it too, so that
// opening it fences the previous owner and aborts its open transaction.
func (m *CheckpointManager) TaskTransactionalID(task string) string {
	return "sluice-" + m.job + "-" + m.jobID + "-" + strings.ReplaceAll(task, " ", "_")
}

// OpenTaskTransaction opens the transactional producer of task (see
// TaskTransactionalID) and begins its first transaction. Opening it fences any other
// process that had it (a previous owner, a zombie, a duplicate container): their
// open transaction is aborted and their later writes fail. Call Refresh after, so
// that Read sees the task's last committed checkpoint. The messages sent through the
// returned producer and the task's checkpoint become visible together, at Commit,
// to readers with isolation.level=read_committed; the producer sends only to topics
// of the checkpoint topic's system.
func (m *CheckpointManager) OpenTaskTransaction(ctx context.Context, task string) (checkpoint.TaskTransaction, error) {
	if _, err := m.startedClient(); err != nil {
		return nil, err
	}
	id := m.TaskTransactionalID(task)
	opts := append(m.sys.clientOpts(RoleCheckpoint),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(m.sys.set.transactionTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(envelopePartitioner{}),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from each record's
		// timestamp, which is the copied message's, however old (a backfill would
		// time out at once and abort every transaction). Send bounds delivery with
		// the record's context instead, as the shared producer does.
	)
	if s := m.sys.set; s.hasLinger {
		opts = append(opts, kgo.ProducerLinger(s.linger))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka system %q: transactional producer %s: %w", m.sys.name, id, err)
	}
	pctx, cancel := context.WithTimeout(ctx, m.writeTimeout)
	defer cancel()
	if _, _, err := cl.ProducerID(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka system %q: initialising the transactional producer %s of task %s: %w", m.sys.name, id, task, err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka system %q: transaction of task %s: %w", m.sys.name, task, err)
	}
	return &taskTxn{m: m, task: task, id: id, cl: cl}, nil
}

// taskTxn is the transactional producer of one exactly-once task.
type taskTxn struct {
	m    *CheckpointManager
	task string
	id   string
	cl   *kgo.Client

	mu      sync.Mutex
	sendErr error // the first failed send of the open transaction
	closed  bool
}

func (t *taskTxn) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	name := t.m.sys.name
	switch {
	case env.Stream.System != name:
		return fmt.Errorf("kafka system %q: an exactly-once task sends only to topics of the checkpoint topic's system, not to %s", name, env.Stream)
	case env.Stream.Stream == "":
		return fmt.Errorf("kafka system %q: cannot send to an empty stream name", name)
	case !env.PartitionByKey && env.Partition < 0:
		return fmt.Errorf("kafka system %q: cannot send to %s partition %d", name, env.Stream, env.Partition)
	}
	r := &kgo.Record{Topic: env.Stream.Stream, Key: env.Key, Value: env.Message, Partition: env.Partition, Timestamp: env.Timestamp}
	for _, h := range env.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if env.PartitionByKey {
		r.Partition = byKey
	}
	if ctx.Done() == nil {
		// delivery.timeout.ms from now (see deliveryDeadlines); a context that can
		// be cancelled bounds the record itself, and the transaction's timeout the
		// whole.
		ctx = t.m.sys.deadlines.current()
	}
	t.cl.Produce(ctx, r, t.delivered)
	return nil
}

func (t *taskTxn) delivered(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sendErr == nil {
		p := &Producer{s: t.m.sys}
		t.sendErr = p.deliveryError(r, err)
	}
}

// Flush waits for the sends of the open transaction and returns the first failure.
// They become visible only at Commit.
func (t *taskTxn) Flush(ctx context.Context) error {
	if err := t.cl.Flush(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sendErr
}

// Commit writes cp as the task's checkpoint in the open transaction, commits it with
// every message sent since the last Commit, and begins the next one. An error means
// nothing of the transaction is visible (it was aborted); one wrapping
// checkpoint.ErrFenced means another process owns the task now.
func (t *taskTxn) Commit(ctx context.Context, cp checkpoint.Checkpoint) error {
	now := t.m.now()
	value, err := checkpoint.Encode(t.task, cp, t.m.newID(now), now)
	if err != nil {
		return t.abort(ctx, err)
	}
	// Never the key of the task's last committed record (see altKeySuffix).
	key := t.task
	t.m.mu.Lock()
	if e, ok := t.m.entries[t.task]; ok && e.key == t.task {
		key = t.task + altKeySuffix
	}
	t.m.mu.Unlock()
	rec := &kgo.Record{Topic: t.m.topic, Partition: 0, Key: []byte(key), Value: value}
	pctx := ctx
	if pctx.Done() == nil {
		pctx = t.m.sys.deadlines.current() // delivery.timeout.ms from now, as for the outputs
	}
	t.cl.Produce(pctx, rec, func(r *kgo.Record, err error) { t.delivered(r, err) })
	if err := t.Flush(ctx); err != nil {
		return t.abort(ctx, err)
	}
	// Once the sends are in, the transaction is ended whatever ctx says: cancelling
	// EndTransaction leaves its outcome unknown.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.m.writeTimeout)
	defer cancel()
	if err := t.cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return t.abort(ctx, fmt.Errorf("committing the transaction: %w", err))
	}
	stored := checkpoint.New(cp.Offsets)
	stored.Source = t.m.where(rec.Offset)
	t.m.mu.Lock()
	if t.m.entries != nil {
		t.m.entries[t.task] = &entry{cp: stored, key: key}
	}
	t.m.mu.Unlock()
	if err := t.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka system %q: task %s: beginning the next transaction: %w", t.m.sys.name, t.task, err)
	}
	return nil
}

// Abort aborts the open transaction: nothing sent since the last Commit becomes
// visible. The producer can be used again.
func (t *taskTxn) Abort(ctx context.Context) error {
	if err := t.endAbort(ctx); err != nil {
		return err
	}
	return t.cl.BeginTransaction()
}

// abort aborts after cause and returns cause, marked fenced when the producer was.
func (t *taskTxn) abort(ctx context.Context, cause error) error {
	if aerr := t.endAbort(ctx); aerr != nil && !fenced(cause) {
		cause = errors.Join(cause, aerr)
	}
	if fenced(cause) {
		return fmt.Errorf("kafka system %q: task %s: another process opened its transactional producer %s, so it runs the task now: %w: %w", t.m.sys.name, t.task, t.id, checkpoint.ErrFenced, cause)
	}
	if err := t.cl.BeginTransaction(); err != nil && !fenced(err) {
		cause = errors.Join(cause, err)
	}
	return fmt.Errorf("kafka system %q: task %s: the transaction was aborted, nothing of it is visible: %w", t.m.sys.name, t.task, cause)
}

func (t *taskTxn) endAbort(ctx context.Context) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.m.writeTimeout)
	defer cancel()
	if err := t.cl.AbortBufferedRecords(actx); err != nil {
		return err
	}
	t.mu.Lock()
	t.sendErr = nil
	t.mu.Unlock()
	return t.cl.EndTransaction(actx, kgo.TryAbort)
}

// fenced reports errors that say another producer owns the transactional id now.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// Close aborts the open transaction, if the process still owns it, and closes the
// producer.
func (t *taskTxn) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), t.m.writeTimeout)
	defer cancel()
	_ = t.cl.AbortBufferedRecords(ctx)
	_ = t.cl.EndTransaction(ctx, kgo.TryAbort)
	t.cl.Close()
	return nil
}
