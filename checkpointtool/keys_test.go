package checkpointtool

import (
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/system"
)

// TestKeyParser checks that keys are split by matching the job's own names, so task
// names with dots and spaces, and stream names with dots, are found where a greedy
// regular expression would split them wrongly.
func TestKeyParser(t *testing.T) {
	var (
		s0     = system.NewSSP("kafka", "s", 0)
		dotted = system.NewSSP("kafka", "a.b", 0)
		nasty  = system.NewSSP("kafka", "s.partitions.1", 0)
		s1     = system.NewSSP("kafka", "s", 1)
		sys2   = system.NewSSP("other", "s", 0)
	)
	ssps := map[string][]system.SystemStreamPartition{
		"Partition 0":         {dotted, s0, nasty, sys2},
		"a.systems.kafka.x":   {s0},
		"a":                   {s1},
		"x.streams.y":         {s1},
		"x.streams.y.systems": {s0},
	}
	inputs := []system.SystemStream{s0.SystemStream, dotted.SystemStream, nasty.SystemStream, sys2.SystemStream}
	kp := newKeyParser([]string{"Partition 0", "a", "a.systems.kafka.x", "x.streams.y", "x.streams.y.systems"}, ssps, inputs)
	for _, tc := range []struct {
		key  string
		task string
		ssp  system.SystemStreamPartition
		msg  string // a part of the error message
	}{
		{key: "tasknames.Partition 0.systems.kafka.streams.s.partitions.0", task: "Partition 0", ssp: s0},
		{key: "tasknames.Partition 0.systems.kafka.streams.a.b.partitions.0", task: "Partition 0", ssp: dotted},
		{key: "tasknames.Partition 0.systems.kafka.streams.s.partitions.1.partitions.0", task: "Partition 0", ssp: nasty},
		{key: "tasknames.Partition 0.systems.other.streams.s.partitions.0", task: "Partition 0", ssp: sys2},
		{key: "tasknames.a.systems.kafka.x.systems.kafka.streams.s.partitions.0", task: "a.systems.kafka.x", ssp: s0},
		{key: "tasknames.a.systems.kafka.streams.s.partitions.1", task: "a", ssp: s1},
		{key: "tasknames.x.streams.y.systems.kafka.streams.s.partitions.1", task: "x.streams.y", ssp: s1},
		{key: "tasknames.x.streams.y.systems.systems.kafka.streams.s.partitions.0", task: "x.streams.y.systems", ssp: s0},
		{key: "tasknames.a.systems.kafka.streams.s.partitions.0", msg: `not an input of task "a"`},
		{key: "tasknames.Partition 0.systems.kafka.streams.s.partitions.01", msg: `"01" is not a partition number`},
		{key: "tasknames.Partition 0.systems.kafka.streams.s.partitions.-1", msg: `"-1" is not a partition number`},
		{key: "tasknames.Partition 0.systems.kafka.streams.s.partitions.2147483648", msg: "not a partition number"},
		{key: "tasknames.Partition 0.systems.kafka.streams.zz.partitions.0", msg: "stream kafka.zz is not an input of the job"},
		{key: "tasknames.b.systems.kafka.streams.s.partitions.0", msg: `unknown task "b"`},
		{key: "tasknames.Partition 0.systems.kafka.streams.s", msg: "does not have the form"},
		{key: "tasknames.", msg: "does not have the form"},
		{key: "task.inputs", msg: "not a checkpoint key"},
		{key: "", msg: "not a checkpoint key"},
	} {
		pk, msg := kp.parse(tc.key)
		switch {
		case tc.msg == "" && (msg != "" || pk.task != tc.task || pk.ssp != tc.ssp):
			t.Errorf("parse(%q) = %q %v %q; want %q %v", tc.key, pk.task, pk.ssp, msg, tc.task, tc.ssp)
		case tc.msg != "" && !strings.Contains(msg, tc.msg):
			t.Errorf("parse(%q) message = %q; want it to contain %q", tc.key, msg, tc.msg)
		}
		if tc.msg == "" && Key(tc.task, tc.ssp) != tc.key {
			t.Errorf("Key(%q, %v) = %q, want %q", tc.task, tc.ssp, Key(tc.task, tc.ssp), tc.key)
		}
	}
}

// TestKeyParserAmbiguous checks that a key two readings fit is refused, not guessed.
func TestKeyParserAmbiguous(t *testing.T) {
	s := system.NewSSP("k", "s", 0)
	ssps := map[string][]system.SystemStreamPartition{
		"t":                                  {system.NewSSP("k", "s.partitions.0.systems.k.streams.s", 0)},
		"t.systems.k.streams.s.partitions.0": {s},
	}
	inputs := []system.SystemStream{{System: "k", Stream: "s"}, {System: "k", Stream: "s.partitions.0.systems.k.streams.s"}}
	kp := newKeyParser([]string{"t", "t.systems.k.streams.s.partitions.0"}, ssps, inputs)
	key := "tasknames.t.systems.k.streams.s.partitions.0.systems.k.streams.s.partitions.0"
	if _, msg := kp.parse(key); !strings.Contains(msg, "ambiguous") {
		t.Errorf("parse(%q) message = %q, want ambiguous", key, msg)
	}
}
