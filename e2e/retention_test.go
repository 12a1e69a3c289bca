package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestCheckpointDeletedByRetention checkpoints a job, deletes records past its
// checkpoint on the broker (as retention would), and restarts it under each
// out-of-range policy: never a silent skip.
func TestCheckpointDeletedByRetention(t *testing.T) {
	for _, tc := range []struct {
		policy    string
		exit      int
		processed string // processed= in the final log line
		log       string
	}{
		{"oldest", 0, "processed=30", "gap=30"},  // resumes at the oldest retained offset 60
		{"upcoming", 0, "processed=0", "gap=60"}, // jumps to the end, 90
		{"fail", 1, "", "consumer.auto.offset.reset=fail stops the job"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			_, seeds := cluster(t)
			createTopics(t, seeds, 1, "in", "out")
			produce(t, seeds, "in", 1, "m", 0, 30)
			cfg := passthroughConfig(t, seeds, "retention-"+tc.policy, "systems.kafka.consumer.auto.offset.reset="+tc.policy)
			if code := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up").wait(t, time.Minute); code != 0 {
				t.Fatalf("first run exited %d", code)
			}
			// Checkpoint is at 30. 60 more arrive; retention deletes everything before 60.
			produce(t, seeds, "in", 1, "m", 30, 60)
			adm := kadm.NewClient(client(t, seeds))
			del := kadm.Offsets{}
			del.AddOffset("in", 0, 60, -1)
			if _, err := adm.DeleteRecords(context.Background(), del); err != nil {
				t.Fatal(err)
			}
			p := start(t, "run", "--config-path="+cfg, "--exit-when-caught-up")
			code := p.wait(t, time.Minute)
			logs := p.stderr.String()
			if code != tc.exit {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.exit, tail(logs, 20))
			}
			if !strings.Contains(logs, tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, tail(logs, 20))
			}
			if tc.exit == 0 {
				if len(grep(logs, "level=WARN", "checkpoint out of range", "checkpointed offset 30", tc.log)) != 1 {
					t.Errorf("want one warning naming the checkpointed offset 30 and %s:\n%s", tc.log, tail(logs, 20))
				}
				if len(grep(logs, "container stopped", tc.processed)) == 0 {
					t.Errorf("want %s in the final line:\n%s", tc.processed, tail(logs, 5))
				}
				if len(grep(logs, "container stopped", "out_of_range_resets=1")) == 0 {
					t.Errorf("the move was not counted:\n%s", tail(logs, 5))
				}
			}
		})
	}
}
