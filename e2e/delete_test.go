package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestDeleteCommittedMessagesSurvivesSIGKILL runs a passthrough job that deletes its
// committed input (samza.delete.committed.messages) while input keeps arriving, and
// kills it with SIGKILL right after each deletion it logs. After every kill the
// broker holds every input record at or above the checkpoint (the log start is never
// past the job's committed position), and in the end every input is in the output.
func TestDeleteCommittedMessagesSurvivesSIGKILL(t *testing.T) {
	const partitions, batch, kills = 4, 5000, 3
	_, seeds := cluster(t)
	createTopics(t, seeds, partitions, "in", "out")
	cfg := passthroughConfig(t, seeds, "delete-committed",
		"task.commit.ms=50",
		"systems.kafka.samza.delete.committed.messages=true",
		"systems.kafka.samza.delete.committed.messages.interval.ms=100")
	adm := kadm.NewClient(client(t, seeds))
	checkpointTopic := "__samza_checkpoint_delete-committed_1"
	total := 0
	deletedSome := false
	for round := range kills {
		produce(t, seeds, "in", partitions, "m", total, batch)
		total += batch
		p := start(t, "run", "--config-path="+cfg)
		// More input while it runs; kill it right after a deletion.
		done := make(chan error, 1)
		go func(from int) {
			cl := client(t, seeds)
			for i := 0; i < batch; i += batch / 20 {
				if err := produceWith(cl, "in", partitions, "m", from+i, batch/20); err != nil {
					done <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			done <- nil
		}(total)
		total += batch
		deadline := time.Now().Add(time.Minute)
		for len(grep(p.stderr.String(), "deleted committed messages")) < 1 {
			if time.Now().After(deadline) || closed(p.done) {
				t.Fatalf("round %d: no deletion logged:\n%s", round, tail(p.stderr.String(), 30))
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.kill()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		cps, _ := readKafkaCheckpoints(t, seeds, checkpointTopic, "kafka", "in", partitions)
		starts := listStarts(t, adm, "in")
		for part := range int32(partitions) {
			if starts[part] > cps[part] {
				t.Errorf("round %d, partition %d: the broker starts at %d, past the checkpoint %d: records the job has not committed were deleted", round, part, starts[part], cps[part])
			}
			if starts[part] > 0 {
				deletedSome = true
			}
		}
	}
	if !deletedSome {
		t.Fatal("no input record was deleted")
	}
	p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("last run exited %d:\n%s", code, tail(p.stderr.String(), 20))
	}
	_, dups, missing := counts(readAll(t, seeds, "out"), "m", total)
	if len(missing) > 0 {
		t.Fatalf("%d of %d inputs lost, e.g. %v", len(missing), total, missing[:min(5, len(missing))])
	}
	starts := listStarts(t, adm, "in")
	t.Logf("%d inputs, %d kills right after a deletion, 0 lost, %d duplicates; input log starts now %v", total, kills, dups, starts)
}

func listStarts(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}
