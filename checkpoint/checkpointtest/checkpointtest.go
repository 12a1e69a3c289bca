// Package checkpointtest is a conformance suite for checkpoint managers, in the
// manner of testing/slogtest: every checkpoint.Manager runs it from its own tests.
//
//	func TestConformance(t *testing.T) {
//		checkpointtest.Run(t, func(t *testing.T) checkpointtest.Harness {
//			dir := t.TempDir() // a fresh, empty store per subtest
//			return checkpointtest.Harness{
//				Open: func() (checkpoint.Manager, error) { return filesystem.New(dir, "job", "1") },
//				Corrupt: func(t *testing.T, task string) { ... damage task's file ... },
//			}
//		})
//	}
//
// The suite checks what the checkpoint package documents and the container relies
// on: a task never checkpointed reads as checkpoint.ErrNoCheckpoint; a write is read
// back exactly, by the same manager and by a new one over the same store; the last
// write wins; tasks are independent, whatever their names; empty and large
// checkpoints round-trip; concurrent writers of different tasks do not interfere; a
// write replaces the previous checkpoint rather than merging into it; a damaged
// checkpoint is an error wrapping checkpoint.ErrCorrupt, never ErrNoCheckpoint; and,
// for managers that implement checkpoint.Lister, the listed tasks are the written
// ones; for managers that implement checkpoint.Deleter, a deleted task reads as
// never checkpointed, also after a restart, while other tasks keep theirs; and, for
// managers that implement checkpoint.AtomicWriter, WriteAll stores every checkpoint
// it is given, reports each, and stores nothing when it refuses one (a task named
// twice, an empty offset). (That an interrupted WriteAll is all or nothing needs a
// killed process; each manager tests it in its own way.)
//
// For managers that implement checkpoint.RunLocker: a second run lock of the same
// container is refused with checkpoint.ErrContainerRunning, naming the holder's
// process, and the holder keeps its lock; containers with other ids hold theirs
// together; Peers lists the containers holding their lock, and closing a lock
// releases it at once; an id outside 0..Count-1 is an error; with
// checkpoint.RewriteLocker too, a rewrite lock and run locks exclude each other; and,
// when the harness can fence (Harness.Fence), a fenced lock is lost with
// checkpoint.ErrFenced. (That a killed process releases its lock needs a killed
// process; each manager tests it in its own way.)
package checkpointtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

// Harness opens managers over one store.
type Harness struct {
	// Open returns a new, not yet started manager over the harness's store. Every
	// manager it returns sees what earlier ones wrote and closed.
	Open func() (checkpoint.Manager, error)
	// Corrupt, if set, damages the stored latest checkpoint of task so that it cannot
	// be decoded. It is called while no manager of the store is open. The suite then
	// expects a new manager's Start to succeed, Read of task to fail with an error
	// wrapping checkpoint.ErrCorrupt (and not ErrNoCheckpoint), and other tasks to
	// read as before.
	Corrupt func(t *testing.T, task string)
	// Fence, if set, makes another process take container c over, the way the
	// manager's fencing does, while this one holds c's run lock (see
	// checkpoint.RunLock.Lost). The suite then expects the lock to be lost, with an
	// error wrapping checkpoint.ErrFenced. Leave it nil for managers that never lose
	// a lock.
	Fence func(t *testing.T, c checkpoint.Container)
}

// Run runs the suite. newHarness is called once per subtest and must return a harness
// over a fresh, empty store.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"NeverWritten", testNeverWritten},
		{"WriteRead", testWriteRead},
		{"Reopen", testReopen},
		{"LastWriteWins", testLastWriteWins},
		{"ReplaceNotMerge", testReplaceNotMerge},
		{"TasksIndependent", testTasksIndependent},
		{"TaskNames", testTaskNames},
		{"StreamNames", testStreamNames},
		{"Empty", testEmpty},
		{"ManyPartitions", testManyPartitions},
		{"NoAliasing", testNoAliasing},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Lister", testLister},
		{"Corrupt", testCorrupt},
		{"Delete", testDelete},
		{"WriteAll", testWriteAll},
		{"RunLockSameContainer", testRunLockSameContainer},
		{"RunLockPeers", testRunLockPeers},
		{"RunLockRewrite", testRunLockRewrite},
		{"RunLockFenced", testRunLockFenced},
		{"RunLockDynamic", testRunLockDynamic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Open == nil {
				t.Fatal("checkpointtest: Harness.Open is nil")
			}
			tt.fn(t, h)
		})
	}
}

// managed closes its manager once, early or at cleanup.
type managed struct {
	checkpoint.Manager
	once sync.Once
	err  error
}

func (m *managed) Close() error {
	m.once.Do(func() { m.err = m.Manager.Close() })
	return m.err
}

// open opens and starts a manager that is closed at the end of the test.
func open(t *testing.T, h Harness) *managed {
	t.Helper()
	m, err := h.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mm := &managed{Manager: m}
	t.Cleanup(func() {
		if err := mm.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return mm
}

// reopen closes m and returns a new started manager over the same store.
func reopen(t *testing.T, h Harness, m *managed) *managed {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return open(t, h)
}

func write(t *testing.T, m checkpoint.Manager, task string, cp checkpoint.Checkpoint) {
	t.Helper()
	if err := m.Write(t.Context(), task, cp); err != nil {
		t.Fatalf("Write(%q): %v", task, err)
	}
}

// expect reads task and fails the test unless it holds want.
func expect(t *testing.T, m checkpoint.Manager, task string, want checkpoint.Checkpoint) {
	t.Helper()
	got, err := m.Read(t.Context(), task)
	if err != nil {
		t.Fatalf("Read(%q): %v", task, err)
	}
	if !got.Equal(want) {
		t.Fatalf("Read(%q) = %v, want %v", task, got.Offsets, want.Offsets)
	}
}

func expectNone(t *testing.T, m checkpoint.Manager, task string) {
	t.Helper()
	got, err := m.Read(t.Context(), task)
	if !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Fatalf("Read(%q) = %v, %v; want an error wrapping checkpoint.ErrNoCheckpoint", task, got.Offsets, err)
	}
	if errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("Read(%q) error %v wraps both ErrNoCheckpoint and ErrCorrupt", task, err)
	}
}

func ssp(stream string, p int32) system.SystemStreamPartition {
	return system.NewSSP("kafka", stream, p)
}

func cpOf(kv ...any) checkpoint.Checkpoint {
	offsets := make(map[system.SystemStreamPartition]string)
	for i := 0; i+1 < len(kv); i += 2 {
		offsets[kv[i].(system.SystemStreamPartition)] = kv[i+1].(string)
	}
	return checkpoint.Checkpoint{Offsets: offsets}
}

func testNeverWritten(t *testing.T, h Harness) {
	m := open(t, h)
	expectNone(t, m, "Partition 0")
	write(t, m, "Partition 1", cpOf(ssp("PageViewEvent", 1), "5"))
	expectNone(t, m, "Partition 0")
	m = reopen(t, h, m)
	expectNone(t, m, "Partition 0")
}

func testWriteRead(t *testing.T, h Harness) {
	m := open(t, h)
	want := cpOf(ssp("PageViewEvent", 0), "1234", ssp("Clicks", 0), "0")
	write(t, m, "Partition 0", want)
	expect(t, m, "Partition 0", want)
}

func testReopen(t *testing.T, h Harness) {
	m := open(t, h)
	want := cpOf(ssp("PageViewEvent", 0), "1234", system.NewSSP("other", "Clicks", 0), "77")
	write(t, m, "Partition 0", want)
	m = reopen(t, h, m)
	expect(t, m, "Partition 0", want)
}

func testLastWriteWins(t *testing.T, h Harness) {
	m := open(t, h)
	var last checkpoint.Checkpoint
	for i := range 50 {
		last = cpOf(ssp("PageViewEvent", 0), strconv.Itoa(1000+i), ssp("Clicks", 0), strconv.Itoa(50-i))
		write(t, m, "Partition 0", last)
	}
	expect(t, m, "Partition 0", last)
	m = reopen(t, h, m)
	expect(t, m, "Partition 0", last)
}

func testReplaceNotMerge(t *testing.T, h Harness) {
	m := open(t, h)
	write(t, m, "Partition 0", cpOf(ssp("PageViewEvent", 0), "10", ssp("Clicks", 0), "20"))
	want := cpOf(ssp("PageViewEvent", 0), "11")
	write(t, m, "Partition 0", want)
	expect(t, m, "Partition 0", want)
	m = reopen(t, h, m)
	expect(t, m, "Partition 0", want)
}

func testTasksIndependent(t *testing.T, h Harness) {
	m := open(t, h)
	want := map[string]checkpoint.Checkpoint{}
	for p := range int32(5) {
		task := fmt.Sprintf("Partition %d", p)
		want[task] = cpOf(ssp("PageViewEvent", p), strconv.Itoa(int(p)*100))
		write(t, m, task, want[task])
	}
	// Rewrite one task; the others must not change.
	want["Partition 2"] = cpOf(ssp("PageViewEvent", 2), "999")
	write(t, m, "Partition 2", want["Partition 2"])
	for task, cp := range want {
		expect(t, m, task, cp)
	}
	m = reopen(t, h, m)
	for task, cp := range want {
		expect(t, m, task, cp)
	}
	expectNone(t, m, "Partition 5")
}

// trickyTaskNames are task names that a careless store would confuse or fail on.
var trickyTaskNames = []string{
	"Partition 0",
	"Partition 00",
	"partition 0",
	"a/b",
	"../escape",
	"a\\b",
	"100%",
	"%41",
	"a-b",
	"a-b-c",
	"-",
	".",
	"..",
	"a.checkpoint",
	"täsk ✓ 分区",
	"tab\tand\nnewline",
	"quote\"'",
}

func testTaskNames(t *testing.T, h Harness) {
	m := open(t, h)
	want := map[string]checkpoint.Checkpoint{}
	for i, task := range trickyTaskNames {
		want[task] = cpOf(ssp("PageViewEvent", int32(i)), strconv.Itoa(i+1))
		write(t, m, task, want[task])
	}
	for task, cp := range want {
		expect(t, m, task, cp)
	}
	m = reopen(t, h, m)
	for task, cp := range want {
		expect(t, m, task, cp)
	}
}

func testStreamNames(t *testing.T, h Harness) {
	m := open(t, h)
	want := cpOf(
		system.NewSSP("kafka", "page.view.events", 0), "1",
		system.NewSSP("kafka", "page.view.events", 7), "2",
		system.NewSSP("kafka", "page", 7), "3",
		system.NewSSP("kafka", "page.view", 2147483647), "4",
		system.NewSSP("inmem", "page.view.events", 7), "5",
		system.NewSSP("kafka", "Stream with spaces/and-slashes%", 3), "6",
		system.NewSSP("kafka", "Clicks", 12), "18446744073709551615",
		system.NewSSP("kafka", "opaque", 1), "offset: not a number ✓",
	)
	write(t, m, "Partition 7", want)
	expect(t, m, "Partition 7", want)
	m = reopen(t, h, m)
	expect(t, m, "Partition 7", want)
}

func testEmpty(t *testing.T, h Harness) {
	m := open(t, h)
	write(t, m, "empty map", cpOf())
	write(t, m, "nil map", checkpoint.Checkpoint{})
	m = reopen(t, h, m)
	for _, task := range []string{"empty map", "nil map"} {
		got, err := m.Read(t.Context(), task)
		if err != nil {
			t.Fatalf("Read(%q): %v", task, err)
		}
		if len(got.Offsets) != 0 {
			t.Fatalf("Read(%q) = %v, want no offsets", task, got.Offsets)
		}
	}
}

func testManyPartitions(t *testing.T, h Harness) {
	m := open(t, h)
	want := cpOf()
	for p := range int32(1000) {
		want.Offsets[ssp("PageViewEvent", p)] = strconv.Itoa(int(p) * 1000)
	}
	write(t, m, "Partition 0", want)
	expect(t, m, "Partition 0", want)
	m = reopen(t, h, m)
	expect(t, m, "Partition 0", want)
}

func testNoAliasing(t *testing.T, h Harness) {
	m := open(t, h)
	cp := cpOf(ssp("PageViewEvent", 0), "1")
	want := checkpoint.New(cp.Offsets)
	write(t, m, "Partition 0", cp)
	cp.Offsets[ssp("PageViewEvent", 0)] = "changed after Write"
	cp.Offsets[ssp("Clicks", 0)] = "added after Write"
	expect(t, m, "Partition 0", want)

	got, err := m.Read(t.Context(), "Partition 0")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	maps.DeleteFunc(got.Offsets, func(system.SystemStreamPartition, string) bool { return true })
	expect(t, m, "Partition 0", want)
}

func testConcurrentWriters(t *testing.T, h Harness) {
	const writers, writes = 8, 20
	m := open(t, h)
	ctx := t.Context()
	task := func(w int) string { return fmt.Sprintf("Partition %d", w) }
	last := func(w int) checkpoint.Checkpoint {
		return cpOf(ssp("PageViewEvent", int32(w)), strconv.Itoa(writes-1), ssp("Clicks", int32(w)), strconv.Itoa(w))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				cp := cpOf(ssp("PageViewEvent", int32(w)), strconv.Itoa(i), ssp("Clicks", int32(w)), strconv.Itoa(w))
				if err := m.Write(ctx, task(w), cp); err != nil {
					t.Errorf("Write(%q) #%d: %v", task(w), i, err)
					return
				}
				// Reads from other goroutines interleave with the writes.
				if _, err := m.Read(ctx, task((w+1)%writers)); err != nil && !errors.Is(err, checkpoint.ErrNoCheckpoint) {
					t.Errorf("Read(%q) during writes: %v", task((w+1)%writers), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		expect(t, m, task(w), last(w))
	}
	m = reopen(t, h, m)
	for w := range writers {
		expect(t, m, task(w), last(w))
	}
}

func testLister(t *testing.T, h Harness) {
	m := open(t, h)
	l, ok := m.Manager.(checkpoint.Lister)
	if !ok {
		t.Skip("the manager does not implement checkpoint.Lister")
	}
	tasks, err := l.Tasks(t.Context())
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	if len(tasks) != 0 {
		t.Fatalf("Tasks of an empty store = %q, want none", tasks)
	}
	want := slices.Clone(trickyTaskNames)
	for i, task := range want {
		write(t, m, task, cpOf(ssp("PageViewEvent", int32(i)), "1"))
		write(t, m, task, cpOf(ssp("PageViewEvent", int32(i)), "2"))
	}
	slices.Sort(want)
	check := func(m checkpoint.Manager) {
		t.Helper()
		got, err := m.(checkpoint.Lister).Tasks(t.Context())
		if err != nil {
			t.Fatalf("Tasks: %v", err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Tasks = %q, want %q", got, want)
		}
	}
	check(m.Manager)
	m = reopen(t, h, m)
	check(m.Manager)
}

func testCorrupt(t *testing.T, h Harness) {
	if h.Corrupt == nil {
		t.Skip("the harness cannot corrupt a checkpoint")
	}
	m := open(t, h)
	good := cpOf(ssp("PageViewEvent", 1), "2")
	write(t, m, "Partition 0", cpOf(ssp("PageViewEvent", 0), "1"))
	write(t, m, "Partition 1", good)
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	h.Corrupt(t, "Partition 0")
	m = open(t, h)
	got, err := m.Read(t.Context(), "Partition 0")
	switch {
	case err == nil:
		t.Fatalf("Read of a corrupted checkpoint = %v, want an error", got.Offsets)
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
		t.Fatalf("Read of a corrupted checkpoint: %v; it must not wrap ErrNoCheckpoint", err)
	case !errors.Is(err, checkpoint.ErrCorrupt):
		t.Fatalf("Read of a corrupted checkpoint: %v; want an error wrapping ErrCorrupt", err)
	}
	// The damage is confined to the one task.
	expect(t, m, "Partition 1", good)
}

func testDelete(t *testing.T, h Harness) {
	m := open(t, h)
	d, ok := m.Manager.(checkpoint.Deleter)
	if !ok {
		t.Skip("the manager does not implement checkpoint.Deleter")
	}
	if err := d.Delete(t.Context(), "Partition 9"); err != nil {
		t.Fatalf("Delete of a task never written: %v", err)
	}
	keep := cpOf(ssp("PageViewEvent", 1), "7")
	write(t, m, "Partition 0", cpOf(ssp("PageViewEvent", 0), "5"))
	write(t, m, "Partition 1", keep)
	if err := d.Delete(t.Context(), "Partition 0"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	check := func(m checkpoint.Manager) {
		t.Helper()
		expectNone(t, m, "Partition 0")
		expect(t, m, "Partition 1", keep)
		if l, ok := m.(checkpoint.Lister); ok {
			tasks, err := l.Tasks(t.Context())
			if err != nil {
				t.Fatalf("Tasks: %v", err)
			}
			if !slices.Equal(tasks, []string{"Partition 1"}) {
				t.Fatalf("Tasks after Delete = %q, want only Partition 1", tasks)
			}
		}
	}
	check(m.Manager)
	m = reopen(t, h, m)
	check(m.Manager)
	// Deleting twice is harmless, and a deleted task can be written again.
	if err := m.Manager.(checkpoint.Deleter).Delete(t.Context(), "Partition 0"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	again := cpOf(ssp("PageViewEvent", 0), "2")
	write(t, m, "Partition 0", again)
	m = reopen(t, h, m)
	expect(t, m, "Partition 0", again)
}

func testWriteAll(t *testing.T, h Harness) {
	m := open(t, h)
	aw, ok := m.Manager.(checkpoint.AtomicWriter)
	if !ok {
		t.Skip("the manager does not implement checkpoint.AtomicWriter")
	}
	write(t, m, "Partition 0", cpOf(ssp("PageViewEvent", 0), "1"))
	write(t, m, "Partition 1", cpOf(ssp("PageViewEvent", 1), "2"))
	want := []checkpoint.TaskCheckpoint{
		{Task: "Partition 0", Checkpoint: cpOf(ssp("PageViewEvent", 0), "10", ssp("Clicks", 0), "3")},
		{Task: "Partition 1", Checkpoint: cpOf()},
		{Task: "a-b-c", Checkpoint: cpOf(ssp("PageViewEvent", 2), "30")}, // never written before
	}
	var calls []string
	err := aw.WriteAll(t.Context(), want, func(task string, n int) { calls = append(calls, fmt.Sprintf("%d %s", n, task)) })
	if err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	if got := fmt.Sprint(calls); got != "[1 Partition 0 2 Partition 1 3 a-b-c]" {
		t.Errorf("after was called with %s, want each task once, in order, counting", got)
	}
	check := func(m checkpoint.Manager) {
		t.Helper()
		for _, tc := range want {
			expect(t, m, tc.Task, tc.Checkpoint)
		}
	}
	check(m)
	m = reopen(t, h, m)
	check(m)

	// Refused before anything is written.
	aw = m.Manager.(checkpoint.AtomicWriter)
	for name, cps := range map[string][]checkpoint.TaskCheckpoint{
		"a task named twice": {{Task: "Partition 0", Checkpoint: cpOf(ssp("PageViewEvent", 0), "11")}, {Task: "Partition 0", Checkpoint: cpOf(ssp("PageViewEvent", 0), "12")}},
		"an empty offset":    {{Task: "Partition 1", Checkpoint: cpOf(ssp("PageViewEvent", 1), "13")}, {Task: "Partition 9", Checkpoint: cpOf(ssp("PageViewEvent", 9), "")}},
	} {
		err := aw.WriteAll(t.Context(), cps, func(string, int) { t.Errorf("%s: after called", name) })
		if !errors.Is(err, checkpoint.ErrNothingWritten) {
			t.Errorf("WriteAll with %s = %v, want an error wrapping ErrNothingWritten", name, err)
		}
	}
	check(m)
	expectNone(t, m, "Partition 9")
	if err := aw.WriteAll(t.Context(), nil, nil); err != nil {
		t.Errorf("WriteAll of nothing: %v", err)
	}
	m = reopen(t, h, m)
	check(m)
	expectNone(t, m, "Partition 9")
}

// runLocker opens and starts a manager, and returns it as a checkpoint.RunLocker; it
// skips the test for managers that are not.
func runLocker(t *testing.T, h Harness) checkpoint.RunLocker {
	t.Helper()
	m := open(t, h)
	rl, ok := m.Manager.(checkpoint.RunLocker)
	if !ok {
		t.Skip("the manager does not implement checkpoint.RunLocker")
	}
	return rl
}

// acquire takes c's run lock, which is closed at the end of the test.
func acquire(t *testing.T, rl checkpoint.RunLocker, c checkpoint.Container) checkpoint.RunLock {
	t.Helper()
	l, err := rl.AcquireRunLock(t.Context(), c)
	if err != nil {
		t.Fatalf("AcquireRunLock(%+v): %v", c, err)
	}
	if l == nil {
		t.Fatalf("AcquireRunLock(%+v) returned no lock and no error", c)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// expectHeld fails the test if l was lost.
func expectHeld(t *testing.T, l checkpoint.RunLock, what string) {
	t.Helper()
	select {
	case <-l.Lost():
		t.Fatalf("%s: the lock was lost: %v", what, l.Err())
	default:
	}
	if err := l.Err(); err != nil {
		t.Fatalf("%s: Err = %v while the lock is held", what, err)
	}
}

func expectPeers(t *testing.T, l checkpoint.RunLock, want ...int) {
	t.Helper()
	got, err := l.Peers(t.Context())
	if err != nil {
		t.Fatalf("Peers: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Peers = %v, want %v", got, want)
	}
}

func testRunLockSameContainer(t *testing.T, h Harness) {
	first := runLocker(t, h)
	c := checkpoint.Container{ID: 1, Count: 3}
	l := acquire(t, first, c)

	second := runLocker(t, h)
	got, err := second.AcquireRunLock(t.Context(), c)
	if err == nil {
		got.Close()
		t.Fatal("a second run lock of the same container was granted")
	}
	if !errors.Is(err, checkpoint.ErrContainerRunning) {
		t.Fatalf("a second run lock of the same container: %v; want an error wrapping checkpoint.ErrContainerRunning", err)
	}
	for _, want := range []string{"container 1", fmt.Sprintf("process %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name the holder (%q)", err, want)
		}
	}
	// The refusal takes nothing from the holder.
	expectHeld(t, l, "after a second process was refused")
	expectPeers(t, l, 1)

	// Ids outside 0..Count-1 are refused, whatever runs.
	for _, bad := range []checkpoint.Container{{ID: 3, Count: 3}, {ID: -1, Count: 3}, {ID: 0, Count: 0}} {
		if l, err := second.AcquireRunLock(t.Context(), bad); err == nil {
			l.Close()
			t.Errorf("AcquireRunLock(%+v) succeeded", bad)
		} else if errors.Is(err, checkpoint.ErrContainerRunning) {
			t.Errorf("AcquireRunLock(%+v) = %v, want an error about the id", bad, err)
		}
	}

	// Once the holder closes its lock, the container can run again at once.
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	again := acquire(t, second, c)
	expectHeld(t, again, "the lock taken after the holder closed its own")
}

func testRunLockPeers(t *testing.T, h Harness) {
	a := acquire(t, runLocker(t, h), checkpoint.Container{ID: 0, Count: 3})
	expectPeers(t, a, 0)
	c := acquire(t, runLocker(t, h), checkpoint.Container{ID: 2, Count: 3})
	expectPeers(t, a, 0, 2)
	expectPeers(t, c, 0, 2)
	expectHeld(t, a, "with a peer running")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectPeers(t, a, 0)
	b := acquire(t, runLocker(t, h), checkpoint.Container{ID: 1, Count: 3})
	expectPeers(t, b, 0, 1)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectPeers(t, b, 1)
}

func testRunLockRewrite(t *testing.T, h Harness) {
	rl := runLocker(t, h)
	m := open(t, h)
	rw, ok := m.Manager.(checkpoint.RewriteLocker)
	if !ok {
		t.Skip("the manager does not implement checkpoint.RewriteLocker")
	}
	c := checkpoint.Container{ID: 0, Count: 2}
	w, err := rw.LockForRewrite(t.Context())
	if err != nil {
		t.Fatalf("LockForRewrite with nothing running: %v", err)
	}
	if l, err := rl.AcquireRunLock(t.Context(), c); !errors.Is(err, checkpoint.ErrRewriting) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("AcquireRunLock during a rewrite = %v, want an error wrapping checkpoint.ErrRewriting", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing the rewrite lock: %v", err)
	}
	l := acquire(t, rl, c)
	if w, err := rw.LockForRewrite(t.Context()); !errors.Is(err, checkpoint.ErrJobRunning) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("LockForRewrite while a container runs = %v, want an error wrapping checkpoint.ErrJobRunning", err)
	}
	expectHeld(t, l, "after a refused rewrite")
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w, err = rw.LockForRewrite(t.Context())
	if err != nil {
		t.Fatalf("LockForRewrite once the container stopped: %v", err)
	}
	w.Close()
}

func testRunLockFenced(t *testing.T, h Harness) {
	if h.Fence == nil {
		t.Skip("the harness cannot fence a run lock")
	}
	c := checkpoint.Container{ID: 0, Count: 1}
	l := acquire(t, runLocker(t, h), c)
	h.Fence(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case <-l.Lost():
	case <-ctx.Done():
		t.Fatal("the lock of a fenced container was not lost within 30 s")
	}
	if err := l.Err(); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("Err of a fenced lock = %v, want an error wrapping checkpoint.ErrFenced", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close of a lost lock: %v", err)
	}
}

// testRunLockDynamic: containers without an id (job.coordinator.factory=kafka) hold run
// locks side by side, and each marks the job as running for the checkpoint tool.
func testRunLockDynamic(t *testing.T, h Harness) {
	rl := runLocker(t, h)
	m := open(t, h)
	rw, ok := m.Manager.(checkpoint.RewriteLocker)
	if !ok {
		t.Skip("the manager does not implement checkpoint.RewriteLocker")
	}
	c := checkpoint.Container{Dynamic: true}
	a := acquire(t, rl, c)
	b := acquire(t, rl, c)
	for _, l := range []checkpoint.RunLock{a, b} {
		if w, err := rw.LockForRewrite(t.Context()); !errors.Is(err, checkpoint.ErrJobRunning) {
			if err == nil {
				w.Close()
			}
			t.Fatalf("LockForRewrite while a dynamic container runs = %v, want an error wrapping checkpoint.ErrJobRunning", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	w, err := rw.LockForRewrite(t.Context())
	if err != nil {
		t.Fatalf("LockForRewrite once the dynamic containers stopped: %v", err)
	}
	w.Close()
}
