package checkpointtool

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/system"
)

// FuzzKeyRoundTrip checks that, for any task and stream names, the key Key writes is
// parsed back to the same task and partition, and that parsing never panics.
func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("Partition 0", "kafka", "PageViewEvent", int32(0), "tasknames.x")
	f.Add("a.systems.b", "k", "s.partitions.1", int32(12), "tasknames.a.systems.k.streams.s.partitions.")
	f.Add("x.streams.y", "k", "a.b.c", int32(3), "")
	f.Fuzz(func(t *testing.T, task, sys, stream string, partition int32, junk string) {
		if task == "" || sys == "" || stream == "" || partition < 0 ||
			!utf8.ValidString(task+sys+stream) || strings.Contains(sys, ".") {
			return
		}
		ssp := system.NewSSP(sys, stream, partition)
		kp := newKeyParser([]string{task}, map[string][]system.SystemStreamPartition{task: {ssp}}, []system.SystemStream{ssp.SystemStream})
		got, msg := kp.parse(Key(task, ssp))
		if msg != "" || got.task != task || got.ssp != ssp {
			t.Fatalf("Key(%q, %v) parsed as %+v, %q", task, ssp, got, msg)
		}
		kp.parse(junk) // must not panic
	})
}
