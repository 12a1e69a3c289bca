package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// crashRun is what the crash test records of one `sluice run` process.
type crashRun struct {
	stderr   string
	killed   bool
	delay    time.Duration // from its first new output to the SIGKILL
	at       time.Duration // since the test began, when it ended
	from, to []int64       // end offsets of the output, per partition, when it started and ended
	ckpt     map[int32]int64
}

// startLine matches the "starting offset" line a task logs for each of its input
// partitions.
var startLine = regexp.MustCompile(`msg="starting offset" .*partition="?kafka\.in#(\d+)"? offset="?([^" ]*)"? reason="?([^" ]*)"?`)

// TestCrashLosesNothing copies 100,000 messages over 8 partitions with a passthrough job
// (task.commit.ms=50) that is killed with SIGKILL at random moments, each after it made
// progress, and restarted each time, while the input is still being produced (at least
// 10 kills; as many as fit in the 10 s the input takes to arrive).
//
// The accounting is exact and per partition. Input message m-i is at offset i/8 of
// partition i%8, and passthrough copies it to the same partition of the output, so the
// output offsets a run appended to a partition (between the end offsets when it started
// and when it was killed) are that run's processing order. After each kill the test reads
// the checkpoint topic itself. It then checks, per partition:
//   - every run starts exactly at the checkpoint read after the previous kill (its
//     "starting offset" log line says so with reason=checkpoint, and its first output is
//     that input message), and its outputs are the consecutive input messages from there;
//   - a checkpoint only covers input messages whose output was already in the topic;
//   - the duplicates a run produces are exactly the messages output after the previous
//     run's last checkpoint, or fewer when it was itself killed before redoing them all;
//   - in the end every input message is in the output and the final checkpoint is at the
//     end of the input.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const (
		n          = 100_000
		partitions = 8
		kills      = 10
		jobName    = "crash"
		cpTopic    = "__samza_checkpoint_" + jobName + "_1"
		perPart    = n / partitions
	)
	rng := newRand(t)

	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	// The input arrives as a live stream, 10,000 messages a second in chunks of 100, five
	// chunks per commit interval, so that at most moments the job has output that is not
	// checkpointed yet.
	produced := make(chan struct{})
	produceErr := make(chan error, 1)
	pcl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	go func() {
		defer close(produced)
		t0 := time.Now()
		for i := 0; i < n; i += 100 {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * 100 * time.Microsecond)))
			if err := produceWith(pcl, "in", partitions, "m", i, 100); err != nil {
				produceErr <- err
				return
			}
		}
	}()
	cfg := passthroughConfig(t, seeds, jobName, "task.commit.ms=50")
	adm := kadm.NewClient(client(t, seeds))
	outEnds := func() []int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ends, err := endOffsets(ctx, adm, "out", partitions)
		if err != nil {
			t.Fatal(err)
		}
		return ends
	}
	// settle returns the output's end offsets and the checkpoints once neither changes
	// while they are read: a killed process's last requests may still be in the broker.
	settle := func() ([]int64, map[int32]int64) {
		t.Helper()
		for try := 0; ; try++ {
			time.Sleep(20 * time.Millisecond)
			ends := outEnds()
			cps, cpEnd := readKafkaCheckpoints(t, seeds, cpTopic, "kafka", "in", partitions)
			_, cpEnd2 := readKafkaCheckpoints(t, seeds, cpTopic, "kafka", "in", partitions)
			if ends2 := outEnds(); slices.Equal(ends, ends2) && cpEnd == cpEnd2 {
				return ends, cps
			}
			if try == 50 {
				t.Fatal("the output or the checkpoint topic keeps growing after the job was killed")
			}
		}
	}

	began := time.Now()
	var runs []crashRun
	prev := make([]int64, partitions)
	for len(runs) < kills || !closed(produced) {
		p := start(t, "run", "--config-path="+cfg)
		// Wait until this run has produced output, then kill it after a random delay.
		for deadline := time.Now().Add(30 * time.Second); ; {
			select {
			case <-p.done:
				t.Fatalf("run %d exited before it was killed (code %d); stderr:\n%s", len(runs)+1, p.cmd.ProcessState.ExitCode(), tail(p.stderr.String(), 30))
			case <-time.After(10 * time.Millisecond):
			}
			if sum(outEnds()) > sum(prev) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d produced no output in 30 s; stderr:\n%s", len(runs)+1, tail(p.stderr.String(), 30))
			}
		}
		// A third of the kills land within 20 ms of the first output, while the run
		// catches up with what arrived while it was down; the others anywhere in 0.8 s.
		delay := time.Duration(rng.IntN(800)) * time.Millisecond
		if rng.IntN(3) == 0 {
			delay = time.Duration(rng.IntN(20_000)) * time.Microsecond
		}
		select {
		case <-p.done:
			t.Fatalf("run %d exited before it was killed (code %d); stderr:\n%s", len(runs)+1, p.cmd.ProcessState.ExitCode(), tail(p.stderr.String(), 30))
		case <-time.After(delay):
		}
		p.kill()
		at := time.Since(began)
		ends, cps := settle()
		runs = append(runs, crashRun{stderr: p.stderr.String(), killed: true, delay: delay, at: at, from: prev, to: ends, ckpt: cps})
		t.Logf("%5.1fs kill %2d, %3d ms after its first new output: outputs %6d, checkpointed %6d", at.Seconds(), len(runs), delay.Milliseconds(), sum(ends), sumMap(cps))
		prev = ends
	}
	select {
	case err := <-produceErr:
		t.Fatalf("producing the input: %v", err)
	default:
	}
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("final run exited %d; stderr:\n%s", code, tail(p.stderr.String(), 30))
	}
	ends, cps := settle()
	runs = append(runs, crashRun{stderr: p.stderr.String(), at: time.Since(began), from: prev, to: ends, ckpt: cps})
	t.Logf("%5.1fs final run done: outputs %d, checkpointed %d", time.Since(began).Seconds(), sum(ends), sumMap(cps))

	in := readPartitions(t, seeds, "in", partitions)
	out := readPartitions(t, seeds, "out", partitions)
	for p := range int32(partitions) {
		if len(in[p]) != perPart {
			t.Fatalf("input partition %d has %d messages, want %d", p, len(in[p]), perPart)
		}
		for off, v := range in[p] {
			if want := fmt.Sprintf("m-%d", int64(off)*partitions+int64(p)); v != want {
				t.Fatalf("input partition %d offset %d is %q, want %q: the producer reordered", p, off, v, want)
			}
		}
	}
	a := analyseCrashRuns(runs, out, partitions, perPart)
	// The analysis against a plain count of the whole output.
	distinct, dups, missing := counts(slices.Concat(out...), "m", n)
	if len(missing) > 0 || distinct != n || int64(dups) != a.dups {
		a.problems = append(a.problems, fmt.Sprintf("the whole output has %d distinct messages (want %d), %d duplicates (the runs' sum is %d), %d missing, e.g. %v",
			distinct, n, dups, a.dups, len(missing), missing[:min(5, len(missing))]))
	}
	for r, run := range runs {
		if lines := grep(run.stderr, "level=ERROR"); len(lines) > 0 {
			t.Logf("run %d logged %d errors, e.g. %s", r+1, len(lines), lines[0])
		}
		if lines := grep(run.stderr, "level=WARN"); len(lines) > 0 {
			t.Logf("run %d logged %d warnings, e.g. %s", r+1, len(lines), lines[0])
		}
	}
	t.Logf("%5.1fs checked\n%s", time.Since(began).Seconds(), a.summary)

	if a.redo == 0 {
		a.problems = append(a.problems, "no kill left output that its checkpoint did not cover: the duplicate accounting was never exercised")
	}
	if len(a.problems) > 0 {
		if len(a.problems) > 20 {
			a.problems = append(a.problems[:20], fmt.Sprintf("... and %d more", len(a.problems)-20))
		}
		t.Fatalf("%d problems (the seed is logged above):\n%s\n%s", len(a.problems), strings.Join(a.problems, "\n"), a.summary)
	}
}

// crashAnalysis is the result of analyseCrashRuns.
type crashAnalysis struct {
	problems []string
	summary  string
	redo     int64 // messages output but not checkpointed at the kills, summed
	dups     int64 // duplicates in the output
}

// analyseCrashRuns checks the output of the runs of TestCrashLosesNothing partition by
// partition, as its comment says, and tabulates it. out holds the output's values per
// partition and offset.
func analyseCrashRuns(runs []crashRun, out [][]string, partitions int32, perPart int) crashAnalysis {
	var a crashAnalysis
	fail := func(format string, args ...any) { a.problems = append(a.problems, fmt.Sprintf(format, args...)) }
	type row struct{ outputs, dups, redoBefore, checkpointed int64 }
	rows := make([]row, len(runs))
	for p := range partitions {
		seen := make([]int, perPart) // times each input offset of p is in the output so far
		var cp int64 = -1            // checkpoint after the previous run; -1: none
		for r, run := range runs {
			label := fmt.Sprintf("run %d partition %d", r+1, p)
			if run.to[p] > int64(len(out[p])) || run.from[p] > run.to[p] {
				fail("%s: output offsets %d..%d but the partition has %d records", label, run.from[p], run.to[p], len(out[p]))
				return a
			}
			// Where it started, by its log.
			want, reason := cp, "checkpoint"
			if cp < 0 {
				want, reason = 0, "default"
			}
			var starts []string
			for _, m := range startLine.FindAllStringSubmatch(run.stderr, -1) {
				if m[1] == strconv.Itoa(int(p)) {
					starts = append(starts, m[2]+" "+m[3])
				}
			}
			if w := fmt.Sprintf("%d %s", want, reason); len(starts) != 1 || starts[0] != w {
				fail("%s: logged starting offsets %q, want [%s] (the checkpoint read after the previous kill)", label, starts, w)
			}
			// Its outputs: consecutive input messages from the starting offset.
			redo := int64(0) // output before this run and not covered by the checkpoint
			for s := max(want, 0); s < int64(perPart); s++ {
				if seen[s] > 0 {
					redo++
				}
			}
			seg := out[p][run.from[p]:run.to[p]]
			var dups int64
			inOrder := true
			for i, v := range seg {
				id, err := strconv.ParseInt(strings.TrimPrefix(v, "m-"), 10, 64)
				if err != nil || !strings.HasPrefix(v, "m-") || id%int64(partitions) != int64(p) || id/int64(partitions) >= int64(perPart) {
					fail("%s: output %q at offset %d is not an input message of partition %d", label, v, run.from[p]+int64(i), p)
					continue
				}
				s := id / int64(partitions)
				if s != want+int64(i) && inOrder {
					fail("%s: its output number %d (offset %d) is input offset %d, want %d: it did not start at the checkpoint, or skipped or reordered messages", label, i, run.from[p]+int64(i), s, want+int64(i))
					inOrder = false
				}
				if seen[s] > 0 {
					dups++
				}
				seen[s]++
			}
			if dups != min(int64(len(seg)), redo) {
				fail("%s: %d duplicates out of %d outputs, want min(outputs, %d output after the previous checkpoint)", label, dups, len(seg), redo)
			}
			// Its checkpoint covers only input messages already in the output.
			next, ok := run.ckpt[p]
			switch {
			case !ok && cp >= 0:
				fail("%s: the checkpoint disappeared", label)
			case !ok:
			case next < max(cp, 0) || next > int64(perPart):
				fail("%s: checkpoint moved from %d to %d", label, cp, next)
			default:
				for s := range next {
					if seen[s] == 0 {
						fail("%s: the checkpoint (next offset %d) covers input offset %d, which is not in the output", label, next, s)
						break
					}
				}
				cp = next
			}
			if !run.killed {
				for s, c := range seen {
					if c == 0 {
						fail("partition %d: input offset %d (m-%d) never reached the output", p, s, int64(s)*int64(partitions)+int64(p))
						break
					}
				}
				if cp != int64(perPart) {
					fail("partition %d: the final checkpoint is %d, want %d", p, cp, perPart)
				}
			}
			rows[r].outputs += int64(len(seg))
			rows[r].dups += dups
			rows[r].redoBefore += redo
			rows[r].checkpointed += max(cp, 0)
		}
	}
	var b strings.Builder
	var outputs int64
	fmt.Fprintf(&b, "run  ended   kill delay  outputs  duplicates  to redo at its start  checkpointed after\n")
	for r, row := range rows {
		end := "exit"
		if runs[r].killed {
			end = fmt.Sprintf("%4d ms", runs[r].delay.Milliseconds())
			if row.outputs == 0 {
				fail("run %d produced no output before it was killed", r+1)
			}
		}
		fmt.Fprintf(&b, "%3d %5.1fs %11s %8d %11d %21d %19d\n", r+1, runs[r].at.Seconds(), end, row.outputs, row.dups, row.redoBefore, row.checkpointed)
		outputs += row.outputs
		a.dups += row.dups
		a.redo += row.redoBefore
	}
	kills := len(runs) - 1
	// A run killed before it redid everything left at its start leaves the rest to the
	// next run, where it is counted again: the duplicates are at most the sum.
	fmt.Fprintf(&b, "inputs %d over %d partitions, SIGKILLs %d, outputs %d, duplicates %d, output but not checkpointed at the kills %d (sum over kills)",
		int64(perPart)*int64(partitions), partitions, kills, outputs, a.dups, a.redo)
	a.summary = b.String()
	return a
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

func sumMap(m map[int32]int64) int64 {
	var n int64
	for _, x := range m {
		n += x
	}
	return n
}

// TestCrashAnalysisCatches feeds analyseCrashRuns made-up histories of one partition of
// ten messages: a correct one, and ones where a restart, a checkpoint or the output is
// wrong, each of which it must report.
func TestCrashAnalysisCatches(t *testing.T) {
	startLog := func(off int, reason string) string {
		return fmt.Sprintf("time=x level=INFO msg=\"starting offset\" task=\"Partition 0\" partition=kafka.in#0 offset=%d reason=%s detail=x\n", off, reason)
	}
	// analyse: run 1 outputs out1 and checkpoints cp1 before its kill; run 2 logs start2
	// and outputs out2, and checkpoints 10.
	analyse := func(out1 []int, cp1 int, start2 int, out2 []int) crashAnalysis {
		var out []string
		for _, s := range slices.Concat(out1, out2) {
			out = append(out, fmt.Sprintf("m-%d", s))
		}
		o1, o2 := int64(len(out1)), int64(len(out1)+len(out2))
		return analyseCrashRuns([]crashRun{
			{stderr: startLog(0, "default"), killed: true, from: []int64{0}, to: []int64{o1}, ckpt: map[int32]int64{0: int64(cp1)}},
			{stderr: startLog(start2, "checkpoint"), from: []int64{o1}, to: []int64{o2}, ckpt: map[int32]int64{0: 10}},
		}, [][]string{out}, 1, 10)
	}
	seq := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	a := analyse(seq(0, 6), 3, 3, seq(3, 10))
	if len(a.problems) != 0 || a.dups != 3 || a.redo != 3 {
		t.Fatalf("a correct history: problems %q, duplicates %d, redo %d; want none, 3, 3", a.problems, a.dups, a.redo)
	}
	for _, c := range []struct {
		name, want string
		a          crashAnalysis
	}{
		{"restart from an older checkpoint", "5 duplicates out of 9 outputs", analyse(seq(0, 6), 3, 1, seq(1, 10))},
		{"first output before the logged start", "is input offset 1, want 3", analyse(seq(0, 6), 3, 3, seq(1, 10))},
		{"checkpoint ahead of the output", "(next offset 7) covers input offset 6", analyse(seq(0, 6), 7, 7, seq(7, 10))},
		{"a message skipped", "is input offset 6, want 5", analyse(seq(0, 6), 3, 3, slices.Delete(seq(3, 10), 2, 3))},
		{"a message lost", "input offset 5 (m-5) never reached the output", analyse(seq(0, 5), 3, 3, seq(3, 5))},
		{"a killed run without output", "run 1 produced no output", analyse(nil, 0, 0, seq(0, 10))},
	} {
		if !slices.ContainsFunc(c.a.problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: problems %q, want one saying %q", c.name, c.a.problems, c.want)
		}
	}
}

// newRand returns the random source of kill delays, seeded from SLUICE_CRASH_SEED or
// the clock, and logs the seed so that a run can be repeated.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SLUICE_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (SLUICE_CRASH_SEED=%d repeats the kill delays)", seed, seed)
	return rand.New(rand.NewPCG(seed, 42))
}
