package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-streams/sluice/system"
)

// TestRunCountsOnlyRealSkips checks the messages_skipped counter of `sluice run` when
// checkpoints are out of range: a checkpoint beyond the end that moves back to the
// oldest offset skips nothing (it was reported as the whole distance, 99,999,999),
// while one below the log start skips exactly the deleted messages.
func TestRunCountsOnlyRealSkips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		deleteUpTo  int64 // records of PageViewEvent#0 deleted before it
		checkpoint  string
		wantSkipped string
		wantOut     int64
	}{
		{name: "beyond the end", checkpoint: "100000000", wantSkipped: "messages_skipped=0", wantOut: 8},
		{name: "below the log start", deleteUpTo: 2, checkpoint: "0", wantSkipped: "messages_skipped=2", wantOut: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newToolEnv(t)
			e.produce(t, "PageViewEvent", 0, 5, t0)
			e.produce(t, "PageViewEvent", 1, 3, t0)
			if tc.deleteUpTo > 0 {
				deleteBefore(t, e, "PageViewEvent", 0, tc.deleteUpTo)
			}
			e.writeCheckpoint(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: tc.checkpoint})
			r := e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=info")
			if r.code != 0 {
				t.Fatalf("sluice run: exit %d\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "out_of_range_resets=1 ") || !strings.Contains(r.stderr, tc.wantSkipped+" ") {
				t.Errorf("want out_of_range_resets=1 and %s in the final stats:\n%s", tc.wantSkipped, r.stderr)
			}
			if n := e.count(t, "out"); n != tc.wantOut {
				t.Errorf("%d messages out, want %d", n, tc.wantOut)
			}
		})
	}
}

// TestRunBadCheckpointedOffsetNamesWhere stores checkpoints whose documents are valid
// (a good checksum, for files) but hold an offset Kafka does not accept: `sluice run`
// must fail naming the offset and the file or record it came from.
func TestRunBadCheckpointedOffsetNamesWhere(t *testing.T) {
	t.Parallel()
	for _, factory := range []string{"filesystem", "kafka"} {
		for _, off := range []string{"abc", "-5"} {
			t.Run(factory+" "+off, func(t *testing.T) {
				t.Parallel()
				e := newToolEnv(t, "task.checkpoint.factory", factory, "task.checkpoint.system", "kafka")
				e.produce(t, "PageViewEvent", 0, 5, t0)
				e.writeCheckpoint(t, "Partition 1", map[system.SystemStreamPartition]string{pv1: "0"})
				e.writeCheckpoint(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: off})
				where := e.fsManager(t).Path("Partition 0")
				if factory == "kafka" {
					where = "topic " + checkpointTopic + " partition 0 offset 1"
				}
				r := e.sluice(t, t.Context(), "run", "--config-path="+e.cfg, "--exit-when-caught-up", "--log-level=warn")
				if r.code != 1 || !strings.Contains(strings.ReplaceAll(r.stderr, `\"`, `"`), `checkpointed offset "`+off+`" in `+where) {
					t.Errorf("sluice run: exit %d, want 1 and an error naming offset %q in %s:\n%s", r.code, off, where, r.stderr)
				}
				if n := e.count(t, "out"); n != 0 {
					t.Errorf("%d messages out, want none", n)
				}
				// The tool prints it, with a warning naming where it is.
				p := e.sluice(t, t.Context(), "checkpoint-tool", "--config-path="+e.cfg)
				if p.code != 0 || !strings.Contains(p.stdout, kP0+"="+off+"\n") ||
					!strings.Contains(p.stderr, "warning:") || !strings.Contains(p.stderr, where) {
					t.Errorf("print: exit %d, want 0, the offset and a warning naming %s:\n%s\n%s", p.code, where, p.stdout, p.stderr)
				}
			})
		}
	}
}

// deleteBefore deletes the records of topic's partition p before offset, as retention
// would.
func deleteBefore(t *testing.T, e *toolEnv, topic string, p int32, offset int64) {
	t.Helper()
	var o kadm.Offsets
	o.AddOffset(topic, p, offset, -1)
	res, err := kadm.NewClient(e.client).DeleteRecords(context.Background(), o)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}
