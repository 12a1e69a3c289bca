package kafka

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
)

// txnTasks are the tasks of the transaction tests; old offsets are "1", new ones
// "100"+i.
var txnTasks = []string{"Partition 0", "Partition 1", "Partition 2"}

func txnSSP(i int) system.SystemStreamPartition { return system.NewSSP("kafka", "in", int32(i)) }

// writeOld stores the old checkpoint of every task with m, as containers do.
func writeOld(t *testing.T, m *CheckpointManager) {
	t.Helper()
	for i, task := range txnTasks {
		if err := m.Write(t.Context(), task, cp(txnSSP(i), "1")); err != nil {
			t.Fatal(err)
		}
	}
}

func newCheckpoints() []checkpoint.TaskCheckpoint {
	var cps []checkpoint.TaskCheckpoint
	for i, task := range txnTasks {
		cps = append(cps, checkpoint.TaskCheckpoint{Task: task, Checkpoint: cp(txnSSP(i), fmt.Sprint(100+i))})
	}
	return cps
}

// txnState says whether m reads the old or the new checkpoint of every task, or a mix.
func txnState(t *testing.T, m *CheckpointManager) string {
	t.Helper()
	var old, nw int
	var b strings.Builder
	for i, task := range txnTasks {
		c, err := m.Read(t.Context(), task)
		if err != nil {
			t.Fatalf("Read(%q): %v", task, err)
		}
		switch c.Offsets[txnSSP(i)] {
		case "1":
			old++
		case fmt.Sprint(100 + i):
			nw++
		}
		fmt.Fprintf(&b, " %s=%s", task, c.Offsets[txnSSP(i)])
	}
	switch {
	case old == len(txnTasks):
		return "old"
	case nw == len(txnTasks):
		return "new"
	}
	return "mixed:" + b.String()
}

// openTxn writes the new checkpoints of every task in a transaction of a raw client
// with the tool's transactional id, and leaves it open, as a tool killed before its
// commit does. It returns the client, to end the transaction with.
func openTxn(t *testing.T, seeds string, m *CheckpointManager, timeout time.Duration) *kgo.Client {
	t.Helper()
	cl, _ := rawClient(t, seeds, kgo.TransactionalID(m.RewriteTransactionalID()), kgo.TransactionTimeout(timeout))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, c := range newCheckpoints() {
		r := &kgo.Record{Topic: m.Topic(), Partition: 0, Key: []byte(c.Task), Value: encode(t, c.Task, c.Checkpoint, "1-1")}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// TestCheckpointReadWaitsForOpenTransaction: a reader started while a rewrite's
// transaction is open neither takes its records early nor misses them: it waits,
// saying so, and then reads every new checkpoint (committed) or every old one
// (aborted). Records written outside the transaction meanwhile are read as well.
func TestCheckpointReadWaitsForOpenTransaction(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			_, seeds := cluster(t)
			w, _ := startManager(t, seeds, "txn", nil)
			writeOld(t, w)
			txcl := openTxn(t, seeds, w, time.Minute)
			// A container's commit of another task, after the open transaction.
			if err := w.Write(t.Context(), "Partition 9", cp(txnSSP(9), "9")); err != nil {
				t.Fatal(err)
			}

			r, logs := newManager(t, seeds, "txn", nil)
			started := make(chan error, 1)
			go func() { started <- r.Start(t.Context()) }()
			waitLog(t, logs, "waiting for a transaction on the checkpoint topic to end")
			select {
			case err := <-started:
				t.Fatalf("Start returned (%v) while the transaction was open", err)
			default:
			}
			how := kgo.TryAbort
			if commit {
				how = kgo.TryCommit
			}
			if err := txcl.EndTransaction(t.Context(), how); err != nil {
				t.Fatal(err)
			}
			if err := <-started; err != nil {
				t.Fatal(err)
			}
			want := "old"
			if commit {
				want = "new"
			}
			if got := txnState(t, r); got != want {
				t.Errorf("after the transaction ended (commit %v): %s, want %s", commit, got, want)
			}
			if c, err := r.Read(t.Context(), "Partition 9"); err != nil || c.Offsets[txnSSP(9)] != "9" {
				t.Errorf("the record written after the transaction: %v, %v", c.Offsets, err)
			}
			contains(t, logs.String(), "the transaction on the checkpoint topic ended")
		})
	}
}

// TestCheckpointReadWaitIsBounded: a transaction that never ends fails the read after
// the bound, naming the transactional id, instead of hanging or reading around it.
func TestCheckpointReadWaitIsBounded(t *testing.T) {
	_, seeds := cluster(t)
	w, _ := startManager(t, seeds, "txn", nil)
	writeOld(t, w)
	openTxn(t, seeds, w, time.Minute)
	r, logs := newManager(t, seeds, "txn", nil)
	// The real bound, on a fake clock: a minute of polls every 50 ms.
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	r.sys.clock = clock
	err := r.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "did not end within 1m0s") || !strings.Contains(err.Error(), r.RewriteTransactionalID()) {
		t.Fatalf("Start = %v, want a timeout naming %s", err, r.RewriteTransactionalID())
	}
	if waits := clock.Waits(); len(waits) != 1200 || clock.Waited() != StableWaitTimeout {
		t.Errorf("waited %v in %d polls, want %v in 1200", clock.Waited(), len(waits), StableWaitTimeout)
	}
	// It logged the wait every 5 s, not at every poll.
	if n := strings.Count(logs.String(), "waiting for a transaction on the checkpoint topic to end"); n != 12 {
		t.Errorf("logged the wait %d times, want 12 (every 5 s of a minute)", n)
	}
}

// TestCheckpointWriteAllKilledBeforeCommit: a tool killed with its transaction open
// leaves every old checkpoint in place: the broker aborts the transaction when it
// times out, and the next tool's LockForRewrite fences and aborts it at once.
func TestCheckpointWriteAllKilledBeforeCommit(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		_, seeds := cluster(t)
		w, _ := startManager(t, seeds, "txn", nil)
		writeOld(t, w)
		openTxn(t, seeds, w, time.Second) // and never ended: the broker aborts it
		r, logs := startManager(t, seeds, "txn", nil)
		if got := txnState(t, r); got != "old" {
			t.Errorf("after the broker aborted the transaction: %s, want old", got)
		}
		contains(t, logs.String(), "waiting for a transaction")
	})
	t.Run("fenced", func(t *testing.T) {
		_, seeds := cluster(t)
		w, _ := startManager(t, seeds, "txn", nil)
		writeOld(t, w)
		tool, _ := startManager(t, seeds, "txn", nil)
		// A tool killed after the next one started reading, its member gone from the
		// run-lock group but its transaction still open: without the fence, reading
		// on would wait for the broker's timeout (a minute here), longer than
		// stableWait.
		openTxn(t, seeds, w, time.Minute)
		tool.stableWait = 5 * time.Second
		l, err := tool.LockForRewrite(t.Context())
		if err != nil {
			t.Fatalf("LockForRewrite: %v", err)
		}
		defer l.Close()
		if got := txnState(t, tool); got != "old" {
			t.Errorf("after the fence: %s, want old", got)
		}
		r, _ := startManager(t, seeds, "txn", nil)
		if got := txnState(t, r); got != "old" {
			t.Errorf("a new reader after the fence: %s, want old", got)
		}
	})
}

// TestCheckpointWriteAllInvisibleUntilCommit: WriteAll's records are acknowledged
// before it commits, but a reader that starts then waits and takes all of them once
// it commits, none before.
func TestCheckpointWriteAllInvisibleUntilCommit(t *testing.T) {
	_, seeds := cluster(t)
	tool, _ := startManager(t, seeds, "txn", nil)
	writeOld(t, tool)
	paused, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var calls []string
	go func() {
		done <- tool.WriteAll(t.Context(), newCheckpoints(), func(task string, n int) {
			calls = append(calls, fmt.Sprintf("%d %s", n, task))
			if n == len(txnTasks) {
				close(paused)
				<-resume
			}
		})
	}()
	<-paused
	r, logs := newManager(t, seeds, "txn", nil)
	started := make(chan error, 1)
	go func() { started <- r.Start(t.Context()) }()
	waitLog(t, logs, "waiting for a transaction on the checkpoint topic to end")
	close(resume)
	if err := <-done; err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if got := txnState(t, r); got != "new" {
		t.Errorf("reader started before the commit: %s, want new", got)
	}
	if got := txnState(t, tool); got != "new" {
		t.Errorf("the writer: %s, want new", got)
	}
	if got := fmt.Sprint(calls); got != "[1 Partition 0 2 Partition 1 3 Partition 2]" {
		t.Errorf("after calls: %s", got)
	}
	c, err := r.Read(t.Context(), "Partition 1")
	if err != nil || !strings.HasPrefix(c.Source, "topic __samza_checkpoint_txn_1 partition 0 offset ") {
		t.Errorf("Source = %q, %v", c.Source, err)
	}
}

// TestCheckpointWriteAllFailureAborts: a record that cannot be written aborts the
// whole transaction: the records of the other tasks are never seen.
func TestCheckpointWriteAllFailureAborts(t *testing.T) {
	_, seeds := cluster(t)
	tool, _ := startManager(t, seeds, "txn", map[string]string{"task.checkpoint.write.timeout.ms": "2000"})
	writeOld(t, tool)
	cps := newCheckpoints()
	huge := map[system.SystemStreamPartition]string{}
	for p := range 200_000 { // a document of several MB: more than a record may hold
		huge[system.NewSSP("kafka", "in", int32(p))] = "100000001"
	}
	cps[1].Checkpoint = checkpoint.New(huge)
	err := tool.WriteAll(t.Context(), cps, func(string, int) { t.Error("after called for a failed write") })
	if !errors.Is(err, checkpoint.ErrNothingWritten) || !strings.Contains(err.Error(), "the transaction is aborted") {
		t.Fatalf("WriteAll = %v, want ErrNothingWritten and an aborted transaction", err)
	}
	if got := txnState(t, tool); got != "old" {
		t.Errorf("the writer after the failure: %s, want old", got)
	}
	r, _ := startManager(t, seeds, "txn", nil)
	if got := txnState(t, r); got != "old" {
		t.Errorf("a reader after the failure: %s, want old", got)
	}
	// The manager can write all or nothing again.
	if err := tool.WriteAll(t.Context(), newCheckpoints(), nil); err != nil {
		t.Fatalf("WriteAll after an aborted one: %v", err)
	}
	r, _ = startManager(t, seeds, "txn", nil)
	if got := txnState(t, r); got != "new" {
		t.Errorf("after the second WriteAll: %s, want new", got)
	}
}

func waitLog(t *testing.T, logs *logBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q:\n%s", s, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
