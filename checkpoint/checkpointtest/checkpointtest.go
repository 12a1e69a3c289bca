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
package checkpointtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"

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
