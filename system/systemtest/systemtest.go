// Package systemtest is a conformance suite for message systems, in the manner of
// checkpoint/checkpointtest: every system.System runs it from its own tests, over its
// real backend (Kafka's runs it against a broker on real TCP).
//
//	func TestConformance(t *testing.T) {
//		systemtest.Run(t, systemtest.Harness{
//			Name: "mem",
//			Open: func(t *testing.T, keys map[string]string) (system.System, systemtest.Backend) {
//				... a new, empty backend, and a started system named "mem" over it ...
//			},
//		})
//	}
//
// The suite checks what the system package documents and the container relies on:
//
//   - Ordering: a consumer returns the messages of each partition it reads in offset
//     order, across Polls, none skipped or repeated, and nothing of a partition it
//     does not read.
//   - Start offsets: a partition registered before Start is read from exactly the
//     registered offset: the oldest, one in the middle, or the upcoming one.
//   - Pause and resume (system.Pauser): a paused partition yields nothing appended
//     after the pause while the others keep flowing, and after Resume reading carries
//     on exactly after the last message Poll returned.
//   - Adding and removing partitions (system.PartitionChanger): before and after Start;
//     adding a partition read already is an error; once RemovePartitions returns, no
//     Poll returns a message of the partition, even one fetched before; a removed
//     partition added again at another offset is read from exactly there, and is not
//     paused; removing a partition not read is no error; partitions of a grown stream
//     can be added; all of it while another goroutine polls.
//   - Producing: Flush returns once what was sent is stored, in the order sent; by-key
//     partitioning is consistent.
//   - Sticky delivery failures: once a delivery failed, every later Flush of that
//     producer fails, also when the cause is gone; other producers are unaffected; a
//     system.FailureNotifier hears of the failure, and a late registration at once.
//   - Out-of-range policies: a partition whose next offset was deleted (or lies beyond
//     the end) follows systems.<name>.consumer.auto.offset.reset, or the stream's own
//     systems.<name>.streams.<stream>.consumer.auto.offset.reset: oldest (earliest)
//     moves to the oldest message, upcoming (latest) to the next one appended, fail
//     (none) makes Poll fail, and keep failing, with an error naming the partition and
//     the offset; a system.ResetCounter counts the moves and the messages skipped.
//   - Headers and timestamps survive both ways: appended and read by a consumer, sent
//     by a producer and stored; a zero Timestamp is stamped with the time of sending.
//   - PartitionMetadata: oldest, newest and upcoming of empty, filled, truncated and
//     grown partitions; a missing stream is an error.
//   - Admin offset arithmetic: CompareOffsets, OffsetAfter and Distance agree with the
//     order of the offsets the system gave, and refuse "not an offset" with an error
//     naming it.
//   - system.CheckpointListener, if the consumer implements it, accepts checkpoints.
//
// Timestamps the suite uses are whole milliseconds, as Kafka keeps them. Waits are
// bounded by Timeout; the few checks that something does not happen watch for Quiet.
package systemtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/system"
)

// Message is one message of a stream as the backend holds it.
type Message struct {
	// Offset is the message's offset: returned by Backend.Append, set by Backend.Read.
	Offset  string
	Key     []byte
	Value   []byte
	Headers []system.Header
	// Timestamp is the message's time. Append stamps a zero Timestamp with the
	// current time.
	Timestamp time.Time
}

// Backend is what a system reads and writes, reached directly, not through the system:
// a Kafka cluster, an inmem.Store. Its methods are called from the test's goroutine.
type Backend interface {
	// CreateStream creates an empty stream with the given number of partitions.
	CreateStream(ctx context.Context, stream string, partitions int) error
	// Append appends msgs to partition of stream, in order, and returns their offsets.
	Append(ctx context.Context, stream string, partition int32, msgs ...Message) ([]string, error)
	// Read returns every message partition of stream holds, in order, with offsets.
	Read(ctx context.Context, stream string, partition int32) ([]Message, error)
	// DeleteBefore deletes the messages of partition before offset, as retention does.
	DeleteBefore(ctx context.Context, stream string, partition int32, offset string) error
	// Grow raises the partition count of stream to partitions; Append to the new
	// partitions works once it returns.
	Grow(ctx context.Context, stream string, partitions int) error
	// FailDeliveries makes the delivery of every message the system's producers send
	// from now on fail, until restore is called; messages sent after restore are
	// delivered again.
	FailDeliveries(t *testing.T) (restore func())
}

// Harness gives the suite a fresh system for each of its tests.
type Harness struct {
	// Name is the name of the systems Open returns: the System of every stream and
	// partition the suite uses, and <name> in the keys it passes.
	Name string
	// Open returns a new, empty backend and a started system named Name over it,
	// configured with keys (full keys, such as systems.<name>.consumer.auto.offset.reset)
	// besides those it needs to reach the backend. It fails t if it cannot. The suite
	// closes the system when the test ends; the harness cleans up the backend.
	Open func(t *testing.T, keys map[string]string) (system.System, Backend)
}

// Timeout bounds every wait of the suite for something to happen.
var Timeout = 20 * time.Second

// Quiet is how long the suite watches a consumer to see that nothing more arrives.
var Quiet = 300 * time.Millisecond

// Run runs the suite, each test over a system of its own from h.Open.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil || h.Name == "" {
		t.Fatal("systemtest: Harness.Open and Harness.Name must be set")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"Ordering", testOrdering},
		{"StartOffsets", testStartOffsets},
		{"PauseResume", testPauseResume},
		{"AddRemovePartitions", testAddRemove},
		{"AddRemoveWhilePolling", testAddRemoveWhilePolling},
		{"Produce", testProduce},
		{"StickyDeliveryFailure", testStickyFailure},
		{"OutOfRange", testOutOfRange},
		{"HeadersAndTimestamps", testHeadersAndTimestamps},
		{"PartitionMetadata", testPartitionMetadata},
		{"AdminOffsets", testAdminOffsets},
		{"CheckpointListener", testCheckpointListener},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

// env is one test's system and backend.
type env struct {
	t    *testing.T
	name string
	sys  system.System
	be   Backend
}

func open(t *testing.T, h Harness, keys map[string]string) *env {
	t.Helper()
	sys, be := h.Open(t, keys)
	if sys == nil || be == nil {
		t.Fatal("systemtest: Harness.Open returned no system or no backend")
	}
	t.Cleanup(func() {
		if err := sys.Close(); err != nil {
			t.Errorf("System.Close: %v", err)
		}
	})
	return &env{t: t, name: h.Name, sys: sys, be: be}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), Timeout)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) ssp(stream string, p int32) system.SystemStreamPartition {
	return system.NewSSP(e.name, stream, p)
}

func (e *env) create(stream string, partitions int) {
	e.t.Helper()
	if err := e.be.CreateStream(e.ctx(), stream, partitions); err != nil {
		e.t.Fatalf("Backend.CreateStream(%q, %d): %v", stream, partitions, err)
	}
}

// msgs returns n messages for stream partition p, numbered from first.
func msgs(stream string, p int32, first, n int) []Message {
	out := make([]Message, n)
	for i := range out {
		k := first + i
		out[i] = Message{
			Key:       fmt.Appendf(nil, "k%d", k%7),
			Value:     fmt.Appendf(nil, "%s#%d-%d", stream, p, k),
			Timestamp: time.UnixMilli(1_700_000_000_000 + int64(k)),
		}
	}
	return out
}

// append appends ms and returns them with their offsets.
func (e *env) append(stream string, p int32, ms ...Message) []Message {
	e.t.Helper()
	offs, err := e.be.Append(e.ctx(), stream, p, ms...)
	if err != nil {
		e.t.Fatalf("Backend.Append to %s: %v", e.ssp(stream, p), err)
	}
	if len(offs) != len(ms) {
		e.t.Fatalf("Backend.Append to %s returned %d offsets for %d messages", e.ssp(stream, p), len(offs), len(ms))
	}
	out := slices.Clone(ms)
	for i := range out {
		out[i].Offset = offs[i]
	}
	return out
}

func (e *env) read(stream string, p int32) []Message {
	e.t.Helper()
	ms, err := e.be.Read(e.ctx(), stream, p)
	if err != nil {
		e.t.Fatalf("Backend.Read of %s: %v", e.ssp(stream, p), err)
	}
	return ms
}

func (e *env) deleteBefore(stream string, p int32, offset string) {
	e.t.Helper()
	if err := e.be.DeleteBefore(e.ctx(), stream, p, offset); err != nil {
		e.t.Fatalf("Backend.DeleteBefore(%s, %s): %v", e.ssp(stream, p), offset, err)
	}
}

// grow raises the partition count of stream to n and waits until the admin shows them
// (a system may cache metadata for a moment).
func (e *env) grow(stream string, n int) map[system.SystemStreamPartition]system.PartitionMetadata {
	e.t.Helper()
	if err := e.be.Grow(e.ctx(), stream, n); err != nil {
		e.t.Fatalf("Backend.Grow(%q, %d): %v", stream, n, err)
	}
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		md := e.meta(stream)
		if len(md) == n {
			return md
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("Partitions(%q) after growing it to %d: %v", stream, n, md)
		}
		<-tick.C
	}
}

func (e *env) meta(streams ...string) map[system.SystemStreamPartition]system.PartitionMetadata {
	e.t.Helper()
	md, err := e.sys.Admin().Partitions(e.ctx(), streams...)
	if err != nil {
		e.t.Fatalf("Admin.Partitions(%q): %v", streams, err)
	}
	return md
}

// consumer returns a new consumer with ssps registered at their offsets, started
// unless start is false, and closed when the test ends.
func (e *env) consumer(offsets map[system.SystemStreamPartition]string, start bool) system.Consumer {
	e.t.Helper()
	c, err := e.sys.NewConsumer()
	if err != nil {
		e.t.Fatalf("NewConsumer: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	for _, ssp := range slices.SortedFunc(maps.Keys(offsets), system.SystemStreamPartition.Compare) {
		if err := c.Register(ssp, offsets[ssp]); err != nil {
			e.t.Fatalf("Register(%s, %s): %v", ssp, offsets[ssp], err)
		}
	}
	if start {
		if err := c.Start(e.ctx()); err != nil {
			e.t.Fatalf("consumer Start: %v", err)
		}
	}
	return c
}

func (e *env) producer() system.Producer {
	e.t.Helper()
	p, err := e.sys.NewProducer()
	if err != nil {
		e.t.Fatalf("NewProducer: %v", err)
	}
	e.t.Cleanup(func() { p.Close() })
	return p
}

func (e *env) send(p system.Producer, env system.OutgoingEnvelope) {
	e.t.Helper()
	if err := p.Send(e.ctx(), env); err != nil {
		e.t.Fatalf("Send to %s: %v", env.Stream, err)
	}
}

// tracker checks what a consumer returns against what the partitions hold: every
// partition's messages in order from where it is read, none skipped or repeated.
type tracker struct {
	t    *testing.T
	want map[system.SystemStreamPartition][]Message // what each partition holds, from where it is read
	next map[system.SystemStreamPartition]int       // index in want of the next message expected
}

func newTracker(t *testing.T) *tracker {
	return &tracker{t: t, want: map[system.SystemStreamPartition][]Message{}, next: map[system.SystemStreamPartition]int{}}
}

// expect says that ssp is read from ms[0] on (and resets where it stands).
func (tr *tracker) expect(ssp system.SystemStreamPartition, ms []Message) {
	tr.want[ssp] = slices.Clone(ms)
	tr.next[ssp] = 0
}

// more adds messages appended to ssp.
func (tr *tracker) more(ssp system.SystemStreamPartition, ms []Message) {
	tr.want[ssp] = append(tr.want[ssp], ms...)
}

func (tr *tracker) check(envs []system.IncomingEnvelope) {
	tr.t.Helper()
	for _, env := range envs {
		want, ok := tr.want[env.SSP]
		if !ok {
			tr.t.Fatalf("Poll returned a message of %s (offset %s, %q), which the consumer does not read", env.SSP, env.Offset, env.Message)
		}
		i := tr.next[env.SSP]
		if i >= len(want) {
			tr.t.Fatalf("%s: Poll returned offset %s (%q) after the last expected message %s", env.SSP, env.Offset, env.Message, lastOffset(want))
		}
		if w := want[i]; env.Offset != w.Offset || !bytes.Equal(env.Message, w.Value) || !bytes.Equal(env.Key, w.Key) {
			tr.t.Fatalf("%s: Poll returned offset %s (%q), want offset %s (%q): messages must come in order, none skipped or repeated", env.SSP, env.Offset, env.Message, w.Offset, w.Value)
		}
		tr.next[env.SSP] = i + 1
	}
}

func lastOffset(ms []Message) string {
	if len(ms) == 0 {
		return "(none)"
	}
	return ms[len(ms)-1].Offset
}

// done reports whether every expected message of every ssp has been seen.
func (tr *tracker) done(ssps ...system.SystemStreamPartition) bool {
	for _, ssp := range ssps {
		if tr.next[ssp] < len(tr.want[ssp]) {
			return false
		}
	}
	return true
}

func (tr *tracker) status() string {
	var b strings.Builder
	for _, ssp := range slices.SortedFunc(maps.Keys(tr.want), system.SystemStreamPartition.Compare) {
		fmt.Fprintf(&b, " %s: %d of %d;", ssp, tr.next[ssp], len(tr.want[ssp]))
	}
	return b.String()
}

// pollUntil polls c, checking every message with tr, until cond holds.
func pollUntil(t *testing.T, c system.Consumer, tr *tracker, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	for !cond() {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll (read so far:%s): %v", tr.status(), err)
		}
		tr.check(envs)
	}
}

// quiet polls c for Quiet, checking every message with tr, and fails if any message of
// ssps arrives.
func quiet(t *testing.T, c system.Consumer, tr *tracker, ssps ...system.SystemStreamPartition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Quiet)
	defer cancel()
	for {
		envs, err := c.Poll(ctx)
		for _, env := range envs {
			if slices.Contains(ssps, env.SSP) {
				t.Fatalf("Poll returned %s offset %s (%q); want nothing of it", env.SSP, env.Offset, env.Message)
			}
		}
		tr.check(envs)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Poll: %v", err)
			}
			return
		}
	}
}

func testOrdering(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("events", 3)
	p0, p1, p2 := e.ssp("events", 0), e.ssp("events", 1), e.ssp("events", 2)
	tr := newTracker(t)
	held := map[int32][]Message{}
	for p := range int32(3) {
		held[p] = e.append("events", p, msgs("events", p, 0, 50)...)
	}
	tr.expect(p0, held[0])
	tr.expect(p2, held[2])
	c := e.consumer(map[system.SystemStreamPartition]string{p0: held[0][0].Offset, p2: held[2][0].Offset}, true)
	pollUntil(t, c, tr, func() bool { return tr.done(p0, p2) })
	// More arrives in rounds while the consumer reads; order holds across Polls.
	for round := 1; round <= 4; round++ {
		for p := range int32(3) {
			ms := e.append("events", p, msgs("events", p, round*50, 50)...)
			if p != 1 {
				tr.more(e.ssp("events", p), ms)
			}
		}
		pollUntil(t, c, tr, func() bool { return tr.done(p0, p2) })
	}
	quiet(t, c, tr, p0, p1, p2)
}

func testStartOffsets(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("starts", 3)
	held := map[int32][]Message{}
	for p := range int32(3) {
		held[p] = e.append("starts", p, msgs("starts", p, 0, 10)...)
	}
	e.deleteBefore("starts", 0, held[0][3].Offset)
	md := e.meta("starts")
	oldest, middle, upcoming := e.ssp("starts", 0), e.ssp("starts", 1), e.ssp("starts", 2)
	if md[oldest].Oldest != held[0][3].Offset {
		t.Fatalf("oldest offset of %s after deleting before %s = %q", oldest, held[0][3].Offset, md[oldest].Oldest)
	}
	tr := newTracker(t)
	tr.expect(oldest, held[0][3:])
	tr.expect(middle, held[1][5:])
	tr.expect(upcoming, nil)
	c := e.consumer(map[system.SystemStreamPartition]string{
		oldest:   md[oldest].Oldest,
		middle:   held[1][5].Offset,
		upcoming: md[upcoming].Upcoming,
	}, true)
	pollUntil(t, c, tr, func() bool { return tr.done(oldest, middle) })
	quiet(t, c, tr, upcoming)
	tr.more(upcoming, e.append("starts", 2, msgs("starts", 2, 10, 2)...))
	pollUntil(t, c, tr, func() bool { return tr.done(upcoming) })
	quiet(t, c, tr, oldest, middle, upcoming)
}

func testPauseResume(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("paused", 2)
	p0, p1 := e.ssp("paused", 0), e.ssp("paused", 1)
	tr := newTracker(t)
	for p := range int32(2) {
		var all []Message
		for i := range 6 {
			all = append(all, e.append("paused", p, msgs("paused", p, i*50, 50)...)...)
		}
		tr.expect(e.ssp("paused", p), all)
	}
	c := e.consumer(map[system.SystemStreamPartition]string{p0: tr.want[p0][0].Offset, p1: tr.want[p1][0].Offset}, true)
	pauser, ok := c.(system.Pauser)
	if !ok {
		t.Skip("the consumer does not implement system.Pauser")
	}
	pollUntil(t, c, tr, func() bool { return tr.next[p0] > 0 })
	pauser.Pause(p0)
	// The other partition keeps flowing; messages of the paused one that were on
	// their way may still come, in order.
	pollUntil(t, c, tr, func() bool { return tr.done(p1) })
	// Nothing appended after the pause is read while it lasts.
	atPause := len(tr.want[p0])
	tr.more(p0, e.append("paused", 0, msgs("paused", 0, 300, 20)...))
	tr.more(p1, e.append("paused", 1, msgs("paused", 1, 300, 20)...))
	pollUntil(t, c, tr, func() bool { return tr.done(p1) })
	quiet(t, c, tr, p1)
	if tr.next[p0] > atPause {
		t.Fatalf("%s: read offset %s, appended after the pause, while paused", p0, tr.want[p0][atPause].Offset)
	}
	// Resume wakes a waiting Poll, and reading carries on exactly after the last
	// message returned.
	got := make(chan []system.IncomingEnvelope, 1)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		envs, err := c.Poll(ctx)
		if err != nil {
			errc <- err
			return
		}
		got <- envs
	}()
	pauser.Resume(p0)
	select {
	case envs := <-got:
		tr.check(envs)
	case err := <-errc:
		t.Fatalf("Poll after Resume: %v", err)
	}
	pollUntil(t, c, tr, func() bool { return tr.done(p0, p1) })
	quiet(t, c, tr, p0, p1)
}

func changer(t *testing.T, c system.Consumer) system.PartitionChanger {
	t.Helper()
	pc, ok := c.(system.PartitionChanger)
	if !ok {
		t.Skip("the consumer does not implement system.PartitionChanger")
	}
	return pc
}

func add(t *testing.T, pc system.PartitionChanger, offsets map[system.SystemStreamPartition]string) {
	t.Helper()
	if err := pc.AddPartitions(offsets); err != nil {
		t.Fatalf("AddPartitions(%v): %v", offsets, err)
	}
}

func remove(t *testing.T, pc system.PartitionChanger, ssps ...system.SystemStreamPartition) {
	t.Helper()
	if err := pc.RemovePartitions(ssps...); err != nil {
		t.Fatalf("RemovePartitions(%v): %v", ssps, err)
	}
}

func testAddRemove(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("tasks", 3)
	p0, p1, p2, p3 := e.ssp("tasks", 0), e.ssp("tasks", 1), e.ssp("tasks", 2), e.ssp("tasks", 3)
	held := map[int32][]Message{}
	for p := range int32(3) {
		held[p] = e.append("tasks", p, msgs("tasks", p, 0, 30)...)
	}
	c := e.consumer(nil, false)
	pc := changer(t, c)
	tr := newTracker(t)

	// Before Start.
	add(t, pc, map[system.SystemStreamPartition]string{p0: held[0][0].Offset})
	tr.expect(p0, held[0])
	if err := c.Start(e.ctx()); err != nil {
		t.Fatalf("consumer Start: %v", err)
	}
	pollUntil(t, c, tr, func() bool { return tr.done(p0) })

	// After Start, from an offset in the middle.
	add(t, pc, map[system.SystemStreamPartition]string{p1: held[1][10].Offset})
	tr.expect(p1, held[1][10:])
	pollUntil(t, c, tr, func() bool { return tr.done(p1) })

	// A partition read already cannot be added again.
	for _, ssp := range []system.SystemStreamPartition{p0, p1} {
		if err := pc.AddPartitions(map[system.SystemStreamPartition]string{ssp: held[ssp.Partition][0].Offset}); err == nil {
			t.Fatalf("AddPartitions of %s, which is read already, succeeded", ssp)
		}
	}

	// Remove p0 with much of it unread: nothing more of it comes, not even what was
	// fetched before, while p1 keeps flowing.
	for i := range 8 {
		tr.more(p0, e.append("tasks", 0, msgs("tasks", 0, 30+i*100, 100)...))
		tr.more(p1, e.append("tasks", 1, msgs("tasks", 1, 30+i*100, 100)...))
	}
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	envs, err := c.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	tr.check(envs)
	remove(t, pc, p0)
	readP0 := tr.next[p0]
	delete(tr.want, p0) // any message of p0 now fails the check
	tr.more(p1, e.append("tasks", 1, msgs("tasks", 1, 830, 10)...))
	pollUntil(t, c, tr, func() bool { return tr.done(p1) })
	e.append("tasks", 0, msgs("tasks", 0, 830, 10)...) // more of p0, not to be read
	quiet(t, c, tr, p0)
	t.Logf("%s removed after reading %d messages", p0, readP0)

	// Removing what is not read is no error.
	remove(t, pc, p0)
	remove(t, pc, p2)

	// Added again at an earlier offset, it is read from exactly there.
	all0 := e.read("tasks", 0)
	tr.expect(p0, all0[5:])
	add(t, pc, map[system.SystemStreamPartition]string{p0: all0[5].Offset})
	pollUntil(t, c, tr, func() bool { return tr.done(p0, p1) })

	// A paused partition that is removed and added again is read: its pause is forgotten.
	if pauser, ok := c.(system.Pauser); ok {
		pauser.Pause(p1)
		remove(t, pc, p1)
		all1 := e.read("tasks", 1)
		tr.expect(p1, all1[len(all1)-5:])
		add(t, pc, map[system.SystemStreamPartition]string{p1: all1[len(all1)-5].Offset})
		pollUntil(t, c, tr, func() bool { return tr.done(p1) })
	}

	// A partition that appears when the stream grows can be added.
	md := e.grow("tasks", 4)
	add(t, pc, map[system.SystemStreamPartition]string{p3: md[p3].Upcoming, p2: held[2][29].Offset})
	tr.expect(p2, held[2][29:])
	tr.expect(p3, e.append("tasks", 3, msgs("tasks", 3, 0, 5)...))
	pollUntil(t, c, tr, func() bool { return tr.done(p0, p1, p2, p3) })
	quiet(t, c, tr, p0, p1, p2, p3)
}

// testAddRemoveWhilePolling adds and removes a partition from the test's goroutine
// while another goroutine polls: once RemovePartitions has returned, no Poll begun
// later returns a message of the partition, and each time it is added again it is read
// from exactly the offset it was added at.
func testAddRemoveWhilePolling(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("busy", 2)
	p0, p1 := e.ssp("busy", 0), e.ssp("busy", 1)
	var held []Message
	for i := range 10 {
		held = append(held, e.append("busy", 1, msgs("busy", 1, i*200, 200)...)...)
	}
	c := e.consumer(map[system.SystemStreamPartition]string{p0: e.meta("busy")[p0].Upcoming}, true)
	pc := changer(t, c)

	// phase is 2k+1 from just before p1 is added in round k, and 2k+2 from when its
	// removal in round k has returned; 0 before round 0.
	const rounds = 6
	start := func(k int64) string { return held[k*300].Offset }
	var (
		phase     atomic.Int64
		seenRound = atomic.Int64{} // the last round whose first message the poller saw, plus one
		clean     atomic.Int64     // the even phase of the last Poll begun and ended in it
		failure   atomic.Pointer[string]
	)
	notify := make(chan struct{}, 1)
	stopped := make(chan struct{})
	stop := make(chan struct{})
	signal := func() {
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		failure.CompareAndSwap(nil, &msg)
	}
	go func() {
		defer close(stopped)
		fresh, next := true, int64(0) // fresh: the next message of p1 must start a round
		for {
			select {
			case <-stop:
				return
			default:
			}
			ph0 := phase.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			envs, err := c.Poll(ctx)
			cancel()
			ph1 := phase.Load()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				fail("Poll: %v", err)
				return
			}
			for _, env := range envs {
				switch {
				case env.SSP != p1:
					fail("Poll returned a message of %s, which has nothing to read", env.SSP)
					return
				case ph0%2 == 0 && ph1 == ph0:
					fail("a Poll begun after RemovePartitions(%s) returned returned its offset %s", p1, env.Offset)
					return
				case fresh:
					r := (ph1 - 1) / 2
					if env.Offset != start(r) {
						fail("%s added at %s in round %d: Poll returned offset %s first", p1, start(r), r, env.Offset)
						return
					}
					fresh, next = false, r*300+1
					seenRound.Store(r + 1)
					signal()
				case next >= int64(len(held)) || env.Offset != held[next].Offset:
					fail("%s: Poll returned offset %s; want the next one, number %d", p1, env.Offset, next)
					return
				default:
					next++
				}
			}
			if ph0%2 == 0 && ph1 == ph0 {
				fresh = true
				clean.Store(ph0)
				signal()
			}
		}
	}()
	defer func() {
		close(stop)
		<-stopped
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		timeout := time.After(Timeout)
		for !cond() {
			select {
			case <-notify:
			case <-stopped:
				t.Fatalf("the poller stopped: %s", *failure.Load())
			case <-timeout:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	for k := range int64(rounds) {
		phase.Store(2*k + 1)
		add(t, pc, map[system.SystemStreamPartition]string{p1: start(k)})
		waitFor(fmt.Sprintf("messages of %s in round %d", p1, k), func() bool { return seenRound.Load() > k })
		remove(t, pc, p1)
		phase.Store(2*k + 2)
		waitFor(fmt.Sprintf("a Poll after removing %s in round %d", p1, k), func() bool { return clean.Load() == 2*k+2 })
	}
	close(stop)
	<-stopped
	stop = make(chan struct{}) // for the deferred close
	if f := failure.Load(); f != nil {
		t.Fatal(*f)
	}
}

func testProduce(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("out", 4)
	p := e.producer()
	var sent [][]byte
	for i := range 100 {
		v := fmt.Appendf(nil, "v%d", i)
		sent = append(sent, v)
		e.send(p, system.OutgoingEnvelope{Stream: system.SystemStream{System: e.name, Stream: "out"}, Partition: 2, Key: []byte("k"), Message: v})
	}
	for i := range 40 {
		e.send(p, system.OutgoingEnvelope{Stream: system.SystemStream{System: e.name, Stream: "out"}, PartitionByKey: true,
			Key: fmt.Appendf(nil, "key-%d", i%5), Message: fmt.Appendf(nil, "by-key-%d", i)})
	}
	if err := p.Flush(e.ctx()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	// Flush returned: everything is stored, in the order sent.
	var got [][]byte
	where := map[string]int32{}
	for part := range int32(4) {
		for _, m := range e.read("out", part) {
			if bytes.HasPrefix(m.Value, []byte("by-key-")) {
				if q, ok := where[string(m.Key)]; ok && q != part {
					t.Fatalf("key %q went to partitions %d and %d; by-key partitioning must be consistent", m.Key, q, part)
				}
				where[string(m.Key)] = part
				continue
			}
			if part != 2 {
				t.Fatalf("%q was sent to partition 2 but stored in %d", m.Value, part)
			}
			got = append(got, m.Value)
		}
	}
	if !slices.EqualFunc(got, sent, bytes.Equal) {
		t.Fatalf("partition 2 holds %q after Flush; want %q", got, sent)
	}
	if len(where) != 5 {
		t.Fatalf("stored keys = %v; want the 5 sent by key", where)
	}
	if err := p.Flush(e.ctx()); err != nil {
		t.Fatalf("Flush with nothing sent: %v", err)
	}
}

func testStickyFailure(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("out", 1)
	out := system.SystemStream{System: e.name, Stream: "out"}
	p := e.producer()
	notified := make(chan error, 2)
	notifier, notifies := p.(system.FailureNotifier)
	if notifies {
		notifier.NotifyFailure(func(err error) { notified <- err })
	}
	e.send(p, system.OutgoingEnvelope{Stream: out, Message: []byte("before")})
	if err := p.Flush(e.ctx()); err != nil {
		t.Fatalf("Flush before any failure: %v", err)
	}

	restore := e.be.FailDeliveries(t)
	e.send(p, system.OutgoingEnvelope{Stream: out, Message: []byte("lost")})
	first := p.Flush(e.ctx())
	if first == nil {
		restore()
		t.Fatal("Flush after a failed delivery succeeded")
	}
	if notifies {
		select {
		case err := <-notified:
			if err == nil {
				t.Error("NotifyFailure called with a nil error")
			}
		case <-time.After(Timeout):
			t.Error("NotifyFailure was not called for the failed delivery")
		}
	}
	restore()

	// The cause is gone, the producer still fails: a lost message must never be
	// covered by a checkpoint.
	e.send(p, system.OutgoingEnvelope{Stream: out, Message: []byte("after")})
	for i := range 2 {
		if err := p.Flush(e.ctx()); err == nil {
			t.Fatalf("Flush #%d after the failure was lifted succeeded; a failed delivery must stick", i+1)
		}
	}
	if notifies {
		late := make(chan error, 1)
		notifier.NotifyFailure(func(err error) { late <- err })
		select {
		case err := <-late:
			if err == nil {
				t.Error("late NotifyFailure called with a nil error")
			}
		default:
			t.Error("NotifyFailure registered after the failure was not called at once")
		}
		select {
		case err := <-notified:
			t.Errorf("NotifyFailure called twice; second: %v", err)
		default:
		}
	}

	// Another producer is not affected.
	q := e.producer()
	e.send(q, system.OutgoingEnvelope{Stream: out, Message: []byte("other")})
	if err := q.Flush(e.ctx()); err != nil {
		t.Fatalf("Flush of another producer after the failure was lifted: %v", err)
	}
	var values []string
	for _, m := range e.read("out", 0) {
		values = append(values, string(m.Value))
	}
	if !slices.Contains(values, "before") || !slices.Contains(values, "other") {
		t.Fatalf("stored %q; want before and other among them", values)
	}
}

func testOutOfRange(t *testing.T, h Harness) {
	const stream = "page.views"
	sysKey := "systems." + h.Name + ".consumer.auto.offset.reset"
	streamKey := "systems." + h.Name + ".streams." + stream + ".consumer.auto.offset.reset"
	for _, tt := range []struct {
		name   string
		keys   map[string]string
		policy string
	}{
		{"default", nil, "oldest"},
		{"system-oldest", map[string]string{sysKey: "oldest"}, "oldest"},
		{"system-earliest", map[string]string{sysKey: "earliest"}, "oldest"},
		{"system-upcoming", map[string]string{sysKey: "upcoming"}, "upcoming"},
		{"stream-latest", map[string]string{sysKey: "fail", streamKey: "latest"}, "upcoming"},
		{"system-fail", map[string]string{sysKey: "fail"}, "fail"},
		{"stream-none", map[string]string{streamKey: "none"}, "fail"},
		{"stream-oldest-over-system-fail", map[string]string{sysKey: "fail", streamKey: "oldest"}, "oldest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, how := range []string{"register", "add", "beyond-end"} {
				t.Run(how, func(t *testing.T) {
					e := open(t, h, tt.keys)
					e.create(stream, 1)
					ssp := e.ssp(stream, 0)
					held := e.append(stream, 0, msgs(stream, 0, 0, 10)...)
					e.deleteBefore(stream, 0, held[6].Offset)
					from, oldest := held[3].Offset, held[6:]
					if how == "beyond-end" {
						up := e.meta(stream)[ssp].Upcoming
						after, err := e.sys.Admin().OffsetAfter(up)
						if err != nil {
							t.Fatalf("OffsetAfter(%s): %v", up, err)
						}
						from, _ = e.sys.Admin().OffsetAfter(after)
					}
					var c system.Consumer
					if how == "add" {
						c = e.consumer(nil, true)
						add(t, changer(t, c), map[system.SystemStreamPartition]string{ssp: from})
					} else {
						c = e.consumer(map[system.SystemStreamPartition]string{ssp: from}, true)
					}
					counter, counts := e.sys.(system.ResetCounter)
					tr := newTracker(t)
					switch tt.policy {
					case "oldest":
						tr.expect(ssp, oldest)
						pollUntil(t, c, tr, func() bool { return tr.done(ssp) })
						if counts {
							want := int64(3)
							if how == "beyond-end" {
								want = 0
							}
							if resets, skipped := counter.OutOfRangeResets(); resets != 1 || skipped != want {
								t.Errorf("OutOfRangeResets = %d, %d; want 1 reset skipping %d", resets, skipped, want)
							}
						}
						quiet(t, c, tr, ssp)
					case "upcoming":
						tr.expect(ssp, nil)
						if !counts {
							quiet(t, c, tr, ssp)
							return
						}
						// Wait for the move before appending, so that it goes to the
						// offset the new message gets.
						ctx, cancel := context.WithTimeout(t.Context(), Timeout)
						defer cancel()
						for {
							if resets, _ := counter.OutOfRangeResets(); resets > 0 {
								break
							}
							pctx, pcancel := context.WithTimeout(ctx, 20*time.Millisecond)
							envs, err := c.Poll(pctx)
							pcancel()
							tr.check(envs)
							if err != nil && !errors.Is(err, context.DeadlineExceeded) {
								t.Fatalf("Poll: %v", err)
							}
							if ctx.Err() != nil {
								t.Fatal("the consumer did not move (OutOfRangeResets stayed 0)")
							}
						}
						tr.more(ssp, e.append(stream, 0, msgs(stream, 0, 10, 2)...))
						pollUntil(t, c, tr, func() bool { return tr.done(ssp) })
						if resets, skipped := counter.OutOfRangeResets(); resets != 1 || (how != "beyond-end" && skipped != 7) {
							t.Errorf("OutOfRangeResets = %d, %d; want 1 reset skipping 7", resets, skipped)
						}
						quiet(t, c, tr, ssp)
					case "fail":
						ctx, cancel := context.WithTimeout(t.Context(), Timeout)
						defer cancel()
						var err error
						for err == nil {
							var envs []system.IncomingEnvelope
							envs, err = c.Poll(ctx)
							if len(envs) > 0 {
								t.Fatalf("Poll returned %s offset %s under the fail policy", envs[0].SSP, envs[0].Offset)
							}
						}
						if errors.Is(err, context.DeadlineExceeded) {
							t.Fatal("Poll did not fail under the fail policy")
						}
						for _, s := range []string{ssp.String(), from, "auto.offset.reset"} {
							if !strings.Contains(err.Error(), s) {
								t.Errorf("Poll error %q does not name %q", err, s)
							}
						}
						again, err2 := c.Poll(ctx)
						if err2 == nil || errors.Is(err2, context.DeadlineExceeded) || len(again) > 0 {
							t.Errorf("second Poll = %d messages, %v; want the failure again", len(again), err2)
						}
						if counts {
							if resets, _ := counter.OutOfRangeResets(); resets != 0 {
								t.Errorf("OutOfRangeResets = %d under the fail policy", resets)
							}
						}
					}
				})
			}
		})
	}
}

func sameHeaders(a, b []system.Header) bool {
	return slices.EqualFunc(a, b, func(x, y system.Header) bool { return x.Key == y.Key && bytes.Equal(x.Value, y.Value) })
}

func testHeadersAndTimestamps(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("in", 1)
	e.create("out", 1)
	headers := []system.Header{{Key: "trace", Value: []byte("t-1")}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}, {Key: "empty", Value: []byte{}}}
	when := time.UnixMilli(1_600_000_000_123)
	in := e.append("in", 0,
		Message{Key: []byte("a"), Value: []byte("with headers"), Headers: headers, Timestamp: when},
		Message{Key: []byte("b"), Value: []byte("without"), Timestamp: when.Add(time.Second)},
	)
	c := e.consumer(map[system.SystemStreamPartition]string{e.ssp("in", 0): in[0].Offset}, true)
	tr := newTracker(t)
	tr.expect(e.ssp("in", 0), in)
	var got []system.IncomingEnvelope
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	for len(got) < 2 {
		envs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		tr.check(envs)
		got = append(got, envs...)
	}
	if !sameHeaders(got[0].Headers, headers) || len(got[1].Headers) != 0 {
		t.Fatalf("headers read = %v and %v; want %v and none", got[0].Headers, got[1].Headers, headers)
	}
	if !got[0].Timestamp.Equal(when) || !got[1].Timestamp.Equal(when.Add(time.Second)) {
		t.Fatalf("timestamps read = %v, %v; want %v, %v", got[0].Timestamp, got[1].Timestamp, when, when.Add(time.Second))
	}

	// Forwarded as a task forwards them, and sent with a zero timestamp.
	p := e.producer()
	out := system.SystemStream{System: e.name, Stream: "out"}
	e.send(p, system.OutgoingEnvelope{Stream: out, Key: got[0].Key, Message: got[0].Message, Headers: got[0].Headers, Timestamp: got[0].Timestamp})
	before := time.Now().Truncate(time.Millisecond)
	e.send(p, system.OutgoingEnvelope{Stream: out, Message: []byte("stamped"), Headers: []system.Header{{Key: "only", Value: []byte("one")}}})
	if err := p.Flush(e.ctx()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	after := time.Now()
	stored := e.read("out", 0)
	if len(stored) != 2 {
		t.Fatalf("out holds %d messages, want 2", len(stored))
	}
	if !sameHeaders(stored[0].Headers, headers) || !stored[0].Timestamp.Equal(when) || string(stored[0].Key) != "a" {
		t.Fatalf("forwarded message stored with key %q, headers %v, time %v; want a, %v, %v", stored[0].Key, stored[0].Headers, stored[0].Timestamp, headers, when)
	}
	if !sameHeaders(stored[1].Headers, []system.Header{{Key: "only", Value: []byte("one")}}) {
		t.Fatalf("headers stored = %v", stored[1].Headers)
	}
	if ts := stored[1].Timestamp; ts.Before(before) || ts.After(after.Add(time.Millisecond)) {
		t.Fatalf("a message sent with a zero timestamp was stamped %v; want the time it was sent (%v to %v)", ts, before, after)
	}
}

func testPartitionMetadata(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("meta", 2)
	e.create("other", 1)
	p0, p1 := e.ssp("meta", 0), e.ssp("meta", 1)
	md := e.meta("meta")
	if len(md) != 2 {
		t.Fatalf("Partitions(meta) = %v; want 2 partitions", md)
	}
	for ssp, m := range md {
		if ssp.System != e.name {
			t.Fatalf("Partitions names %s, of another system", ssp)
		}
		if m.Newest != "" || m.Oldest != m.Upcoming {
			t.Fatalf("empty %s: metadata %+v; want no newest and oldest = upcoming", ssp, m)
		}
	}
	held := e.append("meta", 0, msgs("meta", 0, 0, 3)...)
	md = e.meta("meta", "other")
	if len(md) != 3 {
		t.Fatalf("Partitions(meta, other) = %v; want 3 partitions", md)
	}
	after, err := e.sys.Admin().OffsetAfter(held[2].Offset)
	if err != nil {
		t.Fatalf("OffsetAfter(%s): %v", held[2].Offset, err)
	}
	if want := (system.PartitionMetadata{Oldest: held[0].Offset, Newest: held[2].Offset, Upcoming: after}); md[p0] != want {
		t.Fatalf("%s holding 3 messages: %+v; want %+v", p0, md[p0], want)
	}
	if md[p1].Newest != "" {
		t.Fatalf("empty %s: %+v", p1, md[p1])
	}
	e.deleteBefore("meta", 0, held[1].Offset)
	if got := e.meta("meta")[p0]; got != (system.PartitionMetadata{Oldest: held[1].Offset, Newest: held[2].Offset, Upcoming: after}) {
		t.Fatalf("%s after deleting before %s: %+v", p0, held[1].Offset, got)
	}
	e.deleteBefore("meta", 0, after)
	if got := e.meta("meta")[p0]; got != (system.PartitionMetadata{Oldest: after, Upcoming: after}) {
		t.Fatalf("%s after deleting everything: %+v; want oldest = upcoming = %s and no newest", p0, got, after)
	}
	md = e.grow("meta", 3)
	if m, ok := md[e.ssp("meta", 2)]; !ok || m.Newest != "" || m.Oldest != m.Upcoming {
		t.Fatalf("Partitions after growing to 3 = %v", md)
	}
	if _, err := e.sys.Admin().Partitions(e.ctx(), "no-such-stream"); err == nil || !strings.Contains(err.Error(), "no-such-stream") {
		t.Fatalf("Partitions of a missing stream = %v; want an error naming it", err)
	}
	if md, err := e.sys.Admin().Partitions(e.ctx()); err != nil || len(md) != 0 {
		t.Fatalf("Partitions() = %v, %v; want nothing", md, err)
	}
}

func testAdminOffsets(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("offsets", 1)
	held := e.append("offsets", 0, msgs("offsets", 0, 0, 12)...)
	up := e.meta("offsets")[e.ssp("offsets", 0)].Upcoming
	offs := make([]string, 0, len(held)+1)
	for _, m := range held {
		offs = append(offs, m.Offset)
	}
	offs = append(offs, up)
	a := e.sys.Admin()
	for i, x := range offs {
		for j, y := range offs {
			c, err := a.CompareOffsets(x, y)
			if want := cmpInt(i, j); err != nil || c != want {
				t.Fatalf("CompareOffsets(%s, %s) = %d, %v; want %d", x, y, c, err, want)
			}
			d, err := a.Distance(x, y)
			if err != nil || d != int64(j-i) {
				t.Fatalf("Distance(%s, %s) = %d, %v; want %d", x, y, d, err, j-i)
			}
		}
		if i+1 < len(offs) {
			if next, err := a.OffsetAfter(x); err != nil || next != offs[i+1] {
				t.Fatalf("OffsetAfter(%s) = %q, %v; want %s", x, next, err, offs[i+1])
			}
		}
	}
	const bad = "not an offset"
	for name, call := range map[string]func() error{
		"CompareOffsets(bad, x)": func() error { _, err := a.CompareOffsets(bad, offs[0]); return err },
		"CompareOffsets(x, bad)": func() error { _, err := a.CompareOffsets(offs[0], bad); return err },
		"OffsetAfter(bad)":       func() error { _, err := a.OffsetAfter(bad); return err },
		"Distance(bad, x)":       func() error { _, err := a.Distance(bad, offs[0]); return err },
		"Distance(x, bad)":       func() error { _, err := a.Distance(offs[0], bad); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s = %v; want an error naming the offset", name, err)
		}
	}
}

func cmpInt(i, j int) int {
	switch {
	case i < j:
		return -1
	case i > j:
		return 1
	}
	return 0
}

func testCheckpointListener(t *testing.T, h Harness) {
	e := open(t, h, nil)
	e.create("acked", 1)
	held := e.append("acked", 0, msgs("acked", 0, 0, 3)...)
	ssp := e.ssp("acked", 0)
	c := e.consumer(map[system.SystemStreamPartition]string{ssp: held[0].Offset}, true)
	l, ok := c.(system.CheckpointListener)
	if !ok {
		t.Skip("the consumer does not implement system.CheckpointListener")
	}
	tr := newTracker(t)
	tr.expect(ssp, held)
	pollUntil(t, c, tr, func() bool { return tr.done(ssp) })
	if err := l.OnCheckpoint(map[system.SystemStreamPartition]string{ssp: held[2].Offset}); err != nil {
		t.Fatalf("OnCheckpoint: %v", err)
	}
	// Reading goes on as before.
	tr.more(ssp, e.append("acked", 0, msgs("acked", 0, 3, 2)...))
	pollUntil(t, c, tr, func() bool { return tr.done(ssp) })
}
