package cli_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/cli"
	"github.com/sluice-streams/sluice/kafka/kafkatest"
)

type cliResult struct {
	code           int
	stdout, stderr string
}

// cliRun runs `sluice args...` in this process.
func cliRun(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(t.Context(), args, &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

func linesFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readTopic reads every record of topic, by partition.
func readTopic(t *testing.T, seeds, topic string) map[int32][]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offsets[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	out := map[int32][]*kgo.Record{}
	var total int64
	for _, w := range want {
		total += w
	}
	if total == 0 {
		return out
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})
	for n := int64(0); n < total; {
		fs := cl.PollFetches(t.Context())
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], r)
			n++
		})
	}
	return out
}

func keyValues(rs []*kgo.Record) []string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, string(r.Key)+"|"+string(r.Value))
	}
	return vs
}

func TestTopicCreateProduceConsumeList(t *testing.T) {
	seeds := kafkatest.Seeds(kafkatest.NewCluster(t))
	bs := "--bootstrap=" + seeds

	r := cliRun(t, "topic", "create", bs, "--topic=a,b", "--partitions=3")
	if r.code != 0 || r.stdout != "Created topic a with 3 partitions.\nCreated topic b with 3 partitions.\n" {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = cliRun(t, "topic", "create", bs, "--topic=a,c")
	if r.code != 1 || !strings.Contains(r.stderr, "topic a already exists") || r.stdout != "Created topic c with 1 partition.\n" {
		t.Fatalf("create of an existing topic: exit %d, want 1 naming it, and the other created\n%s%s", r.code, r.stdout, r.stderr)
	}

	// No key: round-robin, in line order; empty lines are skipped.
	r = cliRun(t, "topic", "produce", bs, "--topic=a", "--file="+linesFile(t, "v0", "v1", "", "v2", "v3", ""))
	if r.code != 0 || r.stdout != "Wrote 4 records to a: 2 to partition 0, 1 to partition 1, 1 to partition 2.\n" {
		t.Fatalf("produce: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	got := readTopic(t, seeds, "a")
	if want := []string{"|v0", "|v3"}; !sameStrings(keyValues(got[0]), want) || !sameStrings(keyValues(got[1]), []string{"|v1"}) || !sameStrings(keyValues(got[2]), []string{"|v2"}) {
		t.Fatalf("a holds %v, %v, %v", keyValues(got[0]), keyValues(got[1]), keyValues(got[2]))
	}
	if got[0][0].Key != nil {
		t.Errorf("a record without a key separator has key %q", got[0][0].Key)
	}

	// With keys: Kafka's own partitioning (murmur2, as the Java producer does), so a
	// key always lands in one partition.
	r = cliRun(t, "topic", "produce", bs, "--topic=b", "--key-separator=\t", "--file="+linesFile(t, "k1\tx=1", "k2\ty", "k1\tz", "\tempty key"))
	if r.code != 0 {
		t.Fatalf("produce with keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	byKey := map[string]int32{}
	for p, rs := range readTopic(t, seeds, "b") {
		for _, rec := range rs {
			if q, ok := byKey[string(rec.Key)]; ok && q != p {
				t.Errorf("key %q in partitions %d and %d", rec.Key, q, p)
			}
			byKey[string(rec.Key)] = p
			if want := int32(kgo.StickyKeyPartitioner(nil).ForTopic("b").Partition(rec, 3)); p != want {
				t.Errorf("key %q in partition %d, Kafka's partitioner says %d", rec.Key, p, want)
			}
		}
	}
	if len(byKey) != 3 {
		t.Errorf("keys %v, want k1, k2 and the empty key", byKey)
	}

	// --partition, from stdin.
	cmd := sluiceCmd(t, "topic", "produce", bs, "--topic=b", "--partition=2", "--key-separator=:")
	cmd.Stdin = strings.NewReader("s1:one\ns2:two\n")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "Wrote 2 records to b: 2 to partition 2.\n" {
		t.Fatalf("produce from stdin: %v\n%s", err, out)
	}
	rs := readTopic(t, seeds, "b")[2]
	if tail := keyValues(rs[len(rs)-2:]); !sameStrings(tail, []string{"s1|one", "s2|two"}) {
		t.Errorf("partition 2 of b ends with %v", tail)
	}

	// consume prints partition by partition, oldest first.
	r = cliRun(t, "topic", "consume", bs, "--topic=a")
	if r.code != 0 || r.stdout != "v0\nv3\nv1\nv2\n" {
		t.Errorf("consume a: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	r = cliRun(t, "topic", "consume", bs, "--topic=b", "--partition=2", "--key-separator= = ")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "s1 = one\ns2 = two\n") {
		t.Errorf("consume b partition 2: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	r = cliRun(t, "topic", "consume", bs, "--topic=c")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("consume of an empty topic: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}

	r = cliRun(t, "topic", "list", bs)
	want := "TOPIC  PARTITIONS  MESSAGES\na      3           4\nb      3           6\nc      1           0\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("list: exit %d\n%s\nwant\n%s%s", r.code, r.stdout, want, r.stderr)
	}
}

// Bad input writes nothing and names the line; problems with the topic or the
// broker are runtime failures that name them.
func TestTopicErrors(t *testing.T) {
	seeds := kafkatest.Seeds(kafkatest.NewCluster(t))
	bs := "--bootstrap=" + seeds
	if r := cliRun(t, "topic", "create", bs, "--topic=t", "--partitions=2"); r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"produce", bs, "--topic=t", "--key-separator=:", "--file=" + linesFile(t, "a:1", "b:2", "no separator")}, 2, "line 3: no key separator \":\""},
		{[]string{"produce", bs, "--topic=t", "--partition=2", "--file=" + linesFile(t, "x")}, 2, "topic t has partitions 0 to 1"},
		{[]string{"produce", bs, "--topic=missing", "--file=" + linesFile(t, "x")}, 1, "topic missing does not exist"},
		{[]string{"produce", bs, "--topic=t", "--file=/nonexistent/in.txt"}, 2, "/nonexistent/in.txt"},
		{[]string{"produce", bs}, 2, "--topic is required"},
		{[]string{"consume", bs, "--topic=missing"}, 1, "topic missing does not exist"},
		{[]string{"create", bs, "--topic=u", "--partitions=0"}, 2, "--partitions=0"},
		{[]string{"create", bs, "--topic=t", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"list", bs, "--log-level=loud"}, 2, "--log-level=loud"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{}, 2, "usage: sluice topic"},
	} {
		r := cliRun(t, append([]string{"topic"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("sluice topic %s: exit %d, want %d with %q:\n%s", strings.Join(c.args, " "), r.code, c.code, c.want, r.stderr)
		}
	}
	if rs := readTopic(t, seeds, "t"); len(rs) != 0 {
		t.Errorf("refused produces wrote %v", rs)
	}

	// Nothing listens on a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := cliRun(t, "topic", "list", "--bootstrap="+dead)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach a broker at "+dead) {
		t.Errorf("list on a dead address: exit %d\n%s", r.code, r.stderr)
	}
}

func sameStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }
