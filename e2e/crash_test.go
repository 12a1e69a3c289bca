package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

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

// TestCrashLosesNothing copies 100,000 messages over 8 partitions with a passthrough
// job that is killed with SIGKILL at random moments and restarted each time. Every input
// must reach the output, and the duplicates must be no more than the work done after
// the last checkpoint of each killed run.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const (
		n          = 100_000
		partitions = 8
		kills      = 10
	)
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	// The input arrives as a live stream, about 10,000 messages a second, so that
	// every kill lands while the job is busy.
	produced := make(chan struct{})
	produceErr := make(chan error, 1)
	pcl := client(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	go func() {
		defer close(produced)
		for i := 0; i < n; i += 1000 {
			if err := produceWith(pcl, "in", partitions, "m", i, 1000); err != nil {
				produceErr <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	cfg := passthroughConfig(t, seeds, "crash", "task.commit.ms=50")

	began := time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	var prevOut, prevCkpt int64
	var bound int64
	killed := 0
	for killed < kills || !closed(produced) {
		p := start(t, "run", "--config-path="+cfg)
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		select {
		case <-p.done:
			t.Fatalf("sluice exited before it was killed (code %d); stderr:\n%s", p.cmd.ProcessState.ExitCode(), tail(p.stderr.String(), 30))
		default:
		}
		p.kill()
		killed++
		out := endTotal(t, seeds, "out")
		ckpt := checkpointedTotal(t, cfg, partitions)
		if ckpt > out {
			t.Fatalf("kill %d: checkpoint covers %d inputs but only %d outputs exist: a checkpoint covered unacknowledged output", killed, ckpt, out)
		}
		redo := (out - prevOut) - (ckpt - prevCkpt)
		bound += redo
		t.Logf("%5.1fs kill %2d: outputs %6d (+%5d), checkpointed %6d (+%5d), to be reprocessed %5d", time.Since(began).Seconds(), killed, out, out-prevOut, ckpt, ckpt-prevCkpt, redo)
		prevOut, prevCkpt = out, ckpt
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
	t.Logf("%5.1fs final run done", time.Since(began).Seconds())
	values := readAll(t, seeds, "out")
	t.Logf("%5.1fs output read", time.Since(began).Seconds())
	distinct, dups, missing := counts(values, "m", n)
	t.Logf("inputs %d, outputs %d, distinct %d, duplicates %d, bound on duplicates %d", n, len(values), distinct, dups, bound)
	if len(missing) > 0 {
		t.Fatalf("%d input messages never reached the output, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if distinct != n {
		t.Errorf("distinct outputs %d, want %d", distinct, n)
	}
	if int64(dups) > bound {
		t.Errorf("%d duplicates, more than the %d messages processed after the killed runs' last checkpoints", dups, bound)
	}
	if got := checkpointedTotal(t, cfg, partitions); got != n {
		t.Errorf("final checkpoint covers %d inputs, want %d", got, n)
	}
	fmt.Fprintf(testOutput{t}, "crash test: %d kills, %d inputs, %d outputs, %d duplicates (bound %d), 0 lost\n", killed, n, len(values), dups, bound)
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
