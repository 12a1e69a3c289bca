package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sluiceBin is the binary built once for the package's tests.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-streams/sluice/cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster starts an in-process one-broker kfake cluster on loopback.
func cluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

func client(t *testing.T, seeds string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopics(t *testing.T, seeds string, partitions int32, topics ...string) {
	t.Helper()
	adm := kadm.NewClient(client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
}

// produce writes n messages "<prefix>-<i>" round-robin over the partitions.
func produce(t *testing.T, seeds, topic string, partitions int32, prefix string, from, n int) {
	t.Helper()
	cl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(1<<20))
	if err := produceWith(cl, topic, partitions, prefix, from, n); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// produceWith is produce on a given client (kgo.ManualPartitioner), safe to call from
// any goroutine.
func produceWith(cl *kgo.Client, topic string, partitions int32, prefix string, from, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := from; i < from+n; i++ {
		wg.Add(1)
		v := fmt.Sprintf("%s-%d", prefix, i)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Key: []byte(v), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return firstErr
}

// readAll returns the values of every record in topic, up to its current end offsets.
func readAll(t *testing.T, seeds, topic string) []string {
	t.Helper()
	adm := kadm.NewClient(client(t, seeds))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			total += o.Offset
		}
	})
	if total == 0 {
		return nil
	}
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		parts[topic][p] = kgo.NewOffset().AtStart()
	}
	cl := client(t, seeds, kgo.ConsumePartitions(parts))
	var out []string
	got := map[int32]int64{}
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, string(r.Value))
			got[r.Partition] = r.Offset + 1
			if got[r.Partition] >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// proc is a running sluice process.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	p := &proc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("sluice %v did not exit within %v; stderr:\n%s", p.cmd.Args[1:], limit, tail(p.stderr.String(), 40))
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// grep returns the lines of s containing every one of words.
func grep(s string, words ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		for _, w := range words {
			if !strings.Contains(sc.Text(), w) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

func writeConfig(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.properties")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func passthroughConfig(t *testing.T, seeds, job string, extra ...string) string {
	return writeConfig(t, append([]string{
		"job.name=" + job,
		"task.class=passthrough",
		"task.inputs=kafka.in",
		"task.passthrough.output=kafka.out",
		"systems.kafka.samza.factory=org.apache.samza.system.kafka.KafkaSystemFactory",
		"systems.kafka.consumer.bootstrap.servers=" + seeds,
		"systems.kafka.producer.bootstrap.servers=" + seeds,
		"systems.kafka.samza.offset.default=oldest",
		"task.checkpoint.factory=org.apache.samza.checkpoint.kafka.KafkaCheckpointManagerFactory",
		"task.checkpoint.system=kafka",
		"task.checkpoint.replication.factor=1",
	}, extra...)...)
}

// counts tallies values: how many distinct, how many duplicates, and which are missing.
func counts(values []string, prefix string, n int) (distinct, dups int, missing []string) {
	seen := make(map[string]int, len(values))
	for _, v := range values {
		seen[v]++
	}
	for i := range n {
		v := fmt.Sprintf("%s-%d", prefix, i)
		if seen[v] == 0 {
			missing = append(missing, v)
		}
	}
	for _, c := range seen {
		distinct++
		dups += c - 1
	}
	return distinct, dups, missing
}

// checkpointedTotal sums the checkpointed next offsets of topic "in" over all tasks.
func checkpointedTotal(t *testing.T, cfgPath string, partitions int32) int64 {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := kafka.New("kafka", cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	m, err := kafka.NewCheckpointManager(sys, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var total int64
	for p := range partitions {
		cp, err := m.Read(ctx, job.TaskName(p))
		if err == checkpoint.ErrNoCheckpoint {
			continue
		}
		if err != nil {
			t.Fatalf("read checkpoint: %v", err)
		}
		off, err := kafka.ParseOffset(cp.Offsets[system.NewSSP("kafka", "in", p)])
		if err != nil {
			t.Fatal(err)
		}
		total += off
	}
	return total
}

func endTotal(t *testing.T, seeds, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(client(t, seeds))
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type testOutput struct{ t *testing.T }

func (w testOutput) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// endOffsets returns the end offset (high watermark) of each of topic's partitions,
// indexed by partition; a topic that does not exist yet has none.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string, partitions int32) ([]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]int64, partitions)
	var firstErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err != nil:
			firstErr = fmt.Errorf("end offset of %s partition %d: %w", topic, o.Partition, o.Err)
		case o.Partition < 0 || o.Partition >= partitions:
			firstErr = fmt.Errorf("%s has a partition %d, want %d partitions", topic, o.Partition, partitions)
		default:
			out[o.Partition] = o.Offset
		}
	})
	return out, firstErr
}

// readPartitions returns the values of every record of topic up to its current end
// offsets, per partition, indexed by offset (the topic must have no gaps: not compacted,
// nothing deleted).
func readPartitions(t *testing.T, seeds, topic string, partitions int32) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := endOffsets(ctx, kadm.NewClient(client(t, seeds)), topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]string, partitions)
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p, end := range ends {
		if end > 0 {
			out[p] = make([]string, 0, end)
			parts[topic][int32(p)] = kgo.NewOffset().At(0)
		}
	}
	if len(parts[topic]) == 0 {
		return out
	}
	cl := client(t, seeds, kgo.ConsumePartitions(parts))
	for left := len(parts[topic]); left > 0; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			vals := &out[r.Partition]
			if r.Offset >= ends[r.Partition] {
				return
			}
			if r.Offset != int64(len(*vals)) {
				t.Fatalf("read %s partition %d: offset %d after %d records", topic, r.Partition, r.Offset, len(*vals))
			}
			*vals = append(*vals, string(r.Value))
			if r.Offset+1 == ends[r.Partition] {
				left--
			}
		})
	}
	return out
}

// readKafkaCheckpoints reads a job's checkpoint topic directly (not through Sluice's
// reader), as docs/checkpoint-format.md describes it: partition 0 up to its end offset,
// the last record of each task name wins, a null value is a tombstone. It returns, per
// task "Partition p", the checkpointed next offset of stream.p (absent: no checkpoint),
// and the topic's end offset.
func readKafkaCheckpoints(t *testing.T, seeds, topic, sys, stream string, partitions int32) (map[int32]int64, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(client(t, seeds)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offset of %s: %v", topic, err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		t.Fatalf("end offset of %s partition 0: %v", topic, end.Err)
	}
	latest := map[string][]byte{}
	if end.Offset > 0 {
		cl := client(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		for pos := int64(-1); pos+1 < end.Offset; {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("read %s: %v", topic, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset >= end.Offset {
					return
				}
				pos = r.Offset
				latest[string(r.Key)] = r.Value
			})
		}
		cl.Close()
	}
	out := map[int32]int64{}
	for p := range partitions {
		name := job.TaskName(p)
		v, ok := latest[name]
		if !ok || v == nil {
			continue
		}
		doc, cp, err := checkpoint.Decode(v)
		if err != nil {
			t.Fatalf("checkpoint of %s in %s: %v", name, topic, err)
		}
		if doc.Task != name {
			t.Fatalf("checkpoint under key %q names task %q", name, doc.Task)
		}
		s, ok := cp.Offsets[system.NewSSP(sys, stream, p)]
		if !ok {
			continue
		}
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("checkpoint of %s: offset %q of %s.%s#%d: %v", name, s, sys, stream, p, err)
		}
		out[p] = off
	}
	return out, end.Offset
}

// distinctReader follows a topic from its start and counts the distinct values in it.
type distinctReader struct {
	cl   *kgo.Client
	seen map[string]struct{}
}

func newDistinctReader(t *testing.T, seeds, topic string) *distinctReader {
	t.Helper()
	return &distinctReader{
		cl:   client(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())),
		seen: map[string]struct{}{},
	}
}

// poll reads what arrives within wait and returns the number of distinct values read so
// far. Fetch errors are left to the client's retries: the caller has its own deadline.
func (d *distinctReader) poll(wait time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { d.seen[string(r.Value)] = struct{}{} })
	return len(d.seen)
}

// rerunCopiesNothing runs the job once more to the end of its inputs and checks that
// it writes nothing to out: every task had checkpointed all it processed.
func rerunCopiesNothing(t *testing.T, seeds, cfg string) {
	t.Helper()
	before := endTotal(t, seeds, "out")
	again := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("rerun exited %d:\n%s", code, tail(again.stderr.String(), 20))
	}
	if after := endTotal(t, seeds, "out"); after != before {
		t.Errorf("the rerun processed %d messages again", after-before)
	}
}
