package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
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
