package offset_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

var (
	pv = system.NewSSP("mem", "PageViewEvent", 0)
	cl = system.NewSSP("mem", "Clicks", 0)
)

func jobConfig(t *testing.T, kv ...string) *job.Config {
	t.Helper()
	m := map[string]string{
		"job.name":                  "j",
		"task.class":                "x",
		"task.inputs":               "mem.PageViewEvent,mem.Clicks",
		"systems.mem.samza.factory": "inmem",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	jc, err := job.Parse(config.New(m))
	if err != nil {
		t.Fatal(err)
	}
	return jc
}

// Partitions hold offsets 10..19 (oldest 10, newest 19, upcoming 20); Clicks is empty
// at 5 (oldest=upcoming=5, no newest).
var meta = map[system.SystemStreamPartition]system.PartitionMetadata{
	pv: {Oldest: "10", Newest: "19", Upcoming: "20"},
	cl: {Oldest: "5", Newest: "", Upcoming: "5"},
}

func admins() offset.Admins {
	a := inmem.NewStore()
	y, _ := a.Factory()("mem", config.Config{}, nil)
	return func(string) (system.Admin, bool) { return y.Admin(), true }
}

func resolve(t *testing.T, jc *job.Config, cp map[system.SystemStreamPartition]string) (map[system.SystemStreamPartition]offset.Start, string, error) {
	t.Helper()
	var logs bytes.Buffer
	starts, err := offset.Resolve(jc, "Partition 0", []system.SystemStreamPartition{pv, cl}, checkpoint.Checkpoint{Offsets: cp}, nil, meta, admins(), slog.New(slog.NewTextHandler(&logs, nil)))
	return starts, logs.String(), err
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kv     []string
		pv, cl string
	}{
		{"built-in default is upcoming", nil, "20", "5"},
		{"system default oldest", []string{"systems.mem.samza.offset.default", "oldest"}, "10", "5"},
		{"system default.stream form", []string{"systems.mem.default.stream.samza.offset.default", "oldest"}, "10", "5"},
		{"newest; empty partition falls back to upcoming", []string{"systems.mem.samza.offset.default", "newest"}, "19", "5"},
		{"stream default wins over system", []string{"systems.mem.samza.offset.default", "oldest", "systems.mem.streams.PageViewEvent.samza.offset.default", "upcoming"}, "20", "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			starts, _, err := resolve(t, jobConfig(t, tc.kv...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if starts[pv].Offset != tc.pv || starts[cl].Offset != tc.cl {
				t.Errorf("starts = %s, %s; want %s, %s", starts[pv].Offset, starts[cl].Offset, tc.pv, tc.cl)
			}
			if starts[pv].Reason != offset.FromDefault {
				t.Errorf("reason = %s, want default", starts[pv].Reason)
			}
		})
	}
}

func TestCheckpointWinsUnlessReset(t *testing.T) {
	jc := jobConfig(t, "systems.mem.samza.offset.default", "oldest")
	starts, _, err := resolve(t, jc, map[system.SystemStreamPartition]string{pv: "15"})
	if err != nil {
		t.Fatal(err)
	}
	if s := starts[pv]; s.Offset != "15" || s.Reason != offset.FromCheckpoint {
		t.Errorf("start = %+v, want 15 from checkpoint", s)
	}
	if s := starts[cl]; s.Offset != "5" || s.Reason != offset.FromDefault {
		t.Errorf("uncheckpointed start = %+v, want default 5", s)
	}

	jc = jobConfig(t, "systems.mem.samza.offset.default", "oldest", "systems.mem.streams.PageViewEvent.samza.reset.offset", "true")
	starts, _, err = resolve(t, jc, map[system.SystemStreamPartition]string{pv: "15"})
	if err != nil {
		t.Fatal(err)
	}
	if s := starts[pv]; s.Offset != "10" || s.Reason != offset.FromReset {
		t.Errorf("reset start = %+v, want 10 from reset", s)
	}
}

func TestCheckpointAtEndIsInRange(t *testing.T) {
	starts, _, err := resolve(t, jobConfig(t), map[system.SystemStreamPartition]string{pv: "20", cl: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if starts[pv].Reason != offset.FromCheckpoint || starts[cl].Reason != offset.FromCheckpoint {
		t.Errorf("starts = %+v", starts)
	}
}

func TestOutOfRangePolicies(t *testing.T) {
	for _, tc := range []struct {
		name, policy, cp, want string
		gap                    int64
	}{
		{"default is oldest", "", "4", "10", 6},
		{"kafka earliest", "earliest", "4", "10", 6},
		{"upcoming", "upcoming", "4", "20", 16},
		{"kafka latest", "latest", "4", "20", 16},
		// Moving back from beyond the end skips nothing: a topic recreated with
		// fewer messages, or a checkpoint rewritten past the end.
		{"beyond end, oldest", "oldest", "25", "10", 0},
		{"beyond end, upcoming", "upcoming", "25", "20", 0},
		{"far beyond end, oldest", "oldest", "100000009", "10", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kv []string
			if tc.policy != "" {
				kv = []string{"systems.mem.consumer.auto.offset.reset", tc.policy}
			}
			starts, _, err := resolve(t, jobConfig(t, kv...), map[system.SystemStreamPartition]string{pv: tc.cp})
			if err != nil {
				t.Fatal(err)
			}
			s := starts[pv]
			if s.Offset != tc.want || s.Reason != offset.FromOutOfRange || s.Gap != tc.gap {
				t.Errorf("start = %+v, want %s out-of-range with gap %d", s, tc.want, tc.gap)
			}
		})
	}
	for _, policy := range []string{"fail", "none"} {
		jc := jobConfig(t, "systems.mem.streams.PageViewEvent.consumer.auto.offset.reset", policy)
		_, _, err := resolve(t, jc, map[system.SystemStreamPartition]string{pv: "4"})
		if !errors.Is(err, offset.ErrOutOfRange) || !strings.Contains(err.Error(), "Partition 0") || !strings.Contains(err.Error(), "oldest retained offset 10") {
			t.Errorf("policy %s: error = %v", policy, err)
		}
	}
}

func TestCheckpointOfNonInputDroppedAndLogged(t *testing.T) {
	gone := system.NewSSP("mem", "Gone", 0)
	starts, logs, err := resolve(t, jobConfig(t), map[system.SystemStreamPartition]string{gone: "3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := starts[gone]; ok {
		t.Errorf("a non-input partition got a start: %+v", starts)
	}
	if !strings.Contains(logs, "no longer an input") || !strings.Contains(logs, "mem.Gone#0") {
		t.Errorf("drop not logged: %s", logs)
	}
}

func TestMissingMetadataFails(t *testing.T) {
	other := system.NewSSP("mem", "Other", 0)
	_, err := offset.Resolve(jobConfig(t), "Partition 0", []system.SystemStreamPartition{other}, checkpoint.Checkpoint{}, nil, meta, admins(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "no metadata") {
		t.Errorf("error = %v", err)
	}
}

func TestBadCheckpointedOffsetIsAnError(t *testing.T) {
	_, _, err := resolve(t, jobConfig(t), map[system.SystemStreamPartition]string{pv: "banana"})
	if err == nil || !strings.Contains(err.Error(), "banana") {
		t.Errorf("error = %v", err)
	}
}

// TestNewPartitionOfACheckpointedStreamStartsAtOldest: a partition without a checkpoint
// whose stream the job has checkpointed elsewhere appeared after the job started, so
// it starts at its oldest offset whatever samza.offset.default says; a stream the job
// never checkpointed keeps its default, and samza.reset.offset keeps the default too.
func TestNewPartitionOfACheckpointedStreamStartsAtOldest(t *testing.T) {
	known := map[system.SystemStream]bool{pv.SystemStream: true}
	for _, tc := range []struct {
		name   string
		kv     []string
		pv, cl string
		reason offset.Reason
	}{
		{"default upcoming", nil, "10", "5", offset.FromNewPartition},
		{"default newest", []string{"systems.mem.samza.offset.default", "newest"}, "10", "5", offset.FromNewPartition},
		{"reset.offset keeps the default", []string{"systems.mem.streams.PageViewEvent.samza.reset.offset", "true"}, "20", "5", offset.FromDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			starts, err := offset.Resolve(jobConfig(t, tc.kv...), "Partition 0", []system.SystemStreamPartition{pv, cl}, checkpoint.Checkpoint{}, known, meta, admins(), slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if starts[pv].Offset != tc.pv || starts[pv].Reason != tc.reason {
				t.Errorf("%s starts at %s (%s), want %s (%s)", pv, starts[pv].Offset, starts[pv].Reason, tc.pv, tc.reason)
			}
			if starts[cl].Offset != tc.cl || starts[cl].Reason != offset.FromDefault {
				t.Errorf("%s (never checkpointed) starts at %s (%s), want %s by default", cl, starts[cl].Offset, starts[cl].Reason, tc.cl)
			}
			if tc.reason == offset.FromNewPartition && !strings.Contains(starts[pv].Detail, "appeared after the job started") {
				t.Errorf("detail does not say why: %q", starts[pv].Detail)
			}
		})
	}
}

// A checkpointed offset the system does not accept is an error that names where the
// checkpoint is stored, when the manager says (Checkpoint.Source).
func TestBadCheckpointedOffsetNamesItsSource(t *testing.T) {
	for _, off := range []string{"abc", "-5"} {
		cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{pv: off}, Source: "/var/lib/cp/j-1-Partition%200.checkpoint"}
		_, err := offset.Resolve(jobConfig(t), "Partition 0", []system.SystemStreamPartition{pv, cl}, cp, nil, meta, admins(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), `"`+off+`"`) || !strings.Contains(err.Error(), cp.Source) || !strings.Contains(err.Error(), "Partition 0") {
			t.Errorf("offset %s: error = %v, want one naming the offset, the task and %s", off, err, cp.Source)
		}
	}
}
