package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

// committedValues reads topic partition 0 as a read_committed reader would.
func committedValues(t *testing.T, seeds, topic string) []string {
	t.Helper()
	cl, adm := rawClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	var out []string
	for pos := int64(0); pos < end.Offset; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: at %d of %d", topic, pos, end.Offset)
		}
		fs.EachRecord(func(r *kgo.Record) {
			pos = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, string(r.Value))
			}
		})
	}
	return out
}

func send(t *testing.T, tx checkpoint.TaskTransaction, topic string, partition int32, v string) {
	t.Helper()
	if err := tx.Send(t.Context(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: topic}, Partition: partition, Message: []byte(v)}); err != nil {
		t.Fatal(err)
	}
}

// TestTaskTransactionCommitsOutputsAndCheckpointTogether: outputs become visible with
// the checkpoint at Commit; a failed send aborts the transaction, leaving neither; a
// second owner opening the task's transaction fences the first.
func TestTaskTransactionCommitsOutputsAndCheckpointTogether(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "out"))
	m, _ := startManager(t, seeds, "txn", nil)
	ctx := t.Context()
	tx, err := m.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	in := system.NewSSP("kafka", "in", 0)
	send(t, tx, "out", 0, "a")
	send(t, tx, "out", 0, "b")
	if got := committedValues(t, seeds, "out"); len(got) != 0 {
		t.Fatalf("before Commit a read_committed reader sees %v", got)
	}
	if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "2"})); err != nil {
		t.Fatal(err)
	}
	if got := committedValues(t, seeds, "out"); strings.Join(got, ",") != "a,b" {
		t.Fatalf("after Commit: %v, want a,b", got)
	}
	// A send that cannot be delivered (no partition 5) aborts the whole transaction.
	send(t, tx, "out", 0, "c")
	send(t, tx, "out", 5, "d")
	err = tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "4"}))
	if err == nil || !strings.Contains(err.Error(), "aborted") || errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("Commit after a failed send = %v, want an abort", err)
	}
	if got := committedValues(t, seeds, "out"); strings.Join(got, ",") != "a,b" {
		t.Errorf("after the abort: %v, want a,b only", got)
	}
	reader, _ := startManager(t, seeds, "txn", nil)
	if cp, err := reader.Read(ctx, "Partition 0"); err != nil || cp.Offsets[in] != "2" {
		t.Errorf("checkpoint after the abort = %v, %v; want the committed 2", cp.Offsets, err)
	}
	// The transaction works again after an abort.
	send(t, tx, "out", 0, "e")
	if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "5"})); err != nil {
		t.Fatalf("Commit after an abort: %v", err)
	}
	// A new owner fences the old one: its next commit fails as fenced, and nothing
	// of it is visible.
	other, _ := startManager(t, seeds, "txn", nil)
	tx2, err := other.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Close()
	send(t, tx, "out", 0, "zombie")
	if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "9"})); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("the fenced owner's Commit = %v, want an error wrapping checkpoint.ErrFenced", err)
	}
	send(t, tx2, "out", 0, "f")
	if err := tx2.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "6"})); err != nil {
		t.Fatal(err)
	}
	if got := committedValues(t, seeds, "out"); strings.Join(got, ",") != "a,b,e,f" {
		t.Errorf("read_committed: %v, want a,b,e,f (nothing of the zombie)", got)
	}
}

// TestCompactionDuringAnOpenTransaction proves that kfake (the embedded broker)
// compacts past the first unstable offset: a committed record is dropped behind a
// newer record of the same key in a transaction still open, and when that transaction
// aborts the key is gone (Kafka never cleans past the first unstable offset). Sluice's
// exactly-once checkpoints survive it all the same, because a task's open transaction
// never uses the key of its last committed record (altKeySuffix).
func TestCompactionDuringAnOpenTransaction(t *testing.T) {
	c, seeds := cluster(t)
	ctx := t.Context()
	const topic = "compacted"
	cl, adm := rawClient(t, seeds)
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(cl *kgo.Client, key, value string) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(cl, "k", "committed")
	txcl, _ := rawClient(t, seeds, kgo.TransactionalID("compaction-probe"))
	if err := txcl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(txcl, "k", "open")
	produce(cl, "other", "last") // compaction keeps the last batch: make it another
	c.Compact()
	if err := txcl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	values := committedValues(t, seeds, topic)
	if slices.Contains(values, "committed") {
		t.Skipf("kfake kept the committed record (%v): it no longer compacts past open transactions", values)
	}
	t.Logf("kfake dropped the committed record behind the open transaction: read_committed sees %v", values)

	// The same with Sluice: a task commits twice, then its third transaction is
	// open while the broker compacts, then aborts.
	m, _ := startManager(t, seeds, "compaction", nil)
	tx, err := m.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	in := system.NewSSP("kafka", "in", 0)
	for _, off := range []string{"1", "2"} {
		if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: off})); err != nil {
			t.Fatal(err)
		}
	}
	// An open transaction holding the task's next checkpoint record.
	inner := tx.(*taskTxn)
	key := "Partition 0"
	if e := m.entries["Partition 0"]; e.key == key {
		key += altKeySuffix
	}
	inner.cl.Produce(ctx, &kgo.Record{Topic: m.topic, Key: []byte(key), Value: []byte("{}")}, nil)
	if err := inner.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Compaction keeps the last batch: have another task's record come last.
	if err := m.Write(ctx, "Partition 9", checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 9): "5"})); err != nil {
		t.Fatal(err)
	}
	c.Compact()
	if err := tx.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	reader, _ := startManager(t, seeds, "compaction", nil)
	got, err := reader.Read(ctx, "Partition 0")
	if err != nil || got.Offsets[in] != "2" {
		t.Fatalf("after compaction and an abort, the checkpoint is %v, %v; want the last committed 2", got.Offsets, err)
	}
}

// TestRewriteFencesRunningOwners: under exactly-once the checkpoint tool's rewrite
// fences the tasks it writes, so that a container still running one (the tool ran
// with --force) commits nothing more of it.
func TestRewriteFencesRunningOwners(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "out"))
	eos := map[string]string{"task.processing.guarantee": "exactly-once"}
	owner, _ := startManager(t, seeds, "fence", eos)
	ctx := t.Context()
	tx, err := owner.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	in := system.NewSSP("kafka", "in", 0)
	tool, _ := startManager(t, seeds, "fence", eos)
	if err := tool.WriteAll(ctx, []checkpoint.TaskCheckpoint{{Task: "Partition 0", Checkpoint: checkpoint.New(map[system.SystemStreamPartition]string{in: "0"})}}, nil); err != nil {
		t.Fatal(err)
	}
	send(t, tx, "out", 0, "late")
	if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{in: "7"})); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("the running owner's commit after the rewrite = %v, want it fenced", err)
	}
	reader, _ := startManager(t, seeds, "fence", nil)
	if cp, err := reader.Read(ctx, "Partition 0"); err != nil || cp.Offsets[in] != "0" {
		t.Errorf("checkpoint = %v, %v; want the rewritten 0", cp.Offsets, err)
	}
}

// TestTaskTransactionSendsOldRecords: a record keeps the timestamp of the message it
// copies, however old; its transaction commits all the same (delivery.timeout.ms counts
// from the send, not from the record's timestamp).
func TestTaskTransactionSendsOldRecords(t *testing.T) {
	_, seeds := cluster(t, kfake.SeedTopics(1, "out"))
	m, _ := startManager(t, seeds, "old", map[string]string{"systems.kafka.producer.delivery.timeout.ms": "2000"})
	ctx := t.Context()
	tx, err := m.OpenTaskTransaction(ctx, "Partition 0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	old := time.Now().Add(-time.Hour)
	for _, v := range []string{"a", "b"} {
		// A context that is never done, as the container's: delivery.timeout.ms bounds it.
		if err := tx.Send(context.Background(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "kafka", Stream: "out"}, Message: []byte(v), Timestamp: old}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx, checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 0): "2"})); err != nil {
		t.Fatalf("Commit of records an hour old: %v", err)
	}
	if got := committedValues(t, seeds, "out"); strings.Join(got, ",") != "a,b" {
		t.Errorf("committed %v, want a,b", got)
	}
}
