package checkpointtool

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config/properties"
	sjob "github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
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

// FuzzPrintRoundTrip checks the printed file end to end, for any job, task and stream
// names, partitions and offsets (valid UTF-8, as every name a job can have is): what
// Print writes (writeHeader and writeTask: escaped keys and values, comment lines with
// names in them, stored and default offsets) is read back by the properties parser as
// exactly one entry per printed partition, in order, with the printed key and offset;
// and the key parser maps each key back to its task and partition, or says it is
// ambiguous exactly when two of the job's tasks and inputs spell the same key.
func FuzzPrintRoundTrip(f *testing.F) {
	f.Add("page-views", "Partition 0", "Partition 1", "kafka", "PageViewEvent", "clicks.v2", int32(0), int32(1), "1234", "0", uint8(1))
	f.Add("job\nname=x", "#x", "!y", "k", "a=b", "c:d", int32(3), int32(12), " lead", "trail ", uint8(2))
	f.Add("j", "a.systems.k.streams.b", "a", "k", "c", "b.partitions.1.systems.k.streams.c", int32(1), int32(2), "\\u0041", "\t", uint8(7))
	f.Add("j\r", "x\u2028y", "é\u0085", "k", "s\x00", "s\x7f", int32(2147483647), int32(0), "=", ":", uint8(0))
	f.Fuzz(func(t *testing.T, job, task1, task2, sys, stream1, stream2 string, p1, p2 int32, off1, off2 string, shape uint8) {
		if task1 == "" || task2 == "" || task1 == task2 || sys == "" || strings.Contains(sys, ".") ||
			stream1 == "" || stream2 == "" || stream1 == stream2 || p1 < 0 || p2 < 0 || p1 == p2 || off1 == "" || off2 == "" {
			return
		}
		for _, s := range []string{job, task1, task2, sys, stream1, stream2, off1, off2} {
			if !utf8.ValidString(s) { // each on its own: two halves of a rune are valid together
				return
			}
		}
		in1, in2 := system.SystemStream{System: sys, Stream: stream1}, system.SystemStream{System: sys, Stream: stream2}
		inputs := []system.SystemStream{in1, in2}
		// As in a job, each task reads one partition number of every input.
		reads := map[string][]system.SystemStreamPartition{
			task1: {system.NewSSP(sys, stream1, p1), system.NewSSP(sys, stream2, p1)},
			task2: {system.NewSSP(sys, stream1, p2), system.NewSSP(sys, stream2, p2)},
		}
		tasks := []string{task1, task2}
		// shape's low bits say which partitions have a stored offset (off1); the others
		// are printed with their default (off2).
		type line struct {
			task string
			ssp  system.SystemStreamPartition
			off  string
		}
		var b bytes.Buffer
		var want []line
		writeHeader(&b, job, job, job, job+".properties")
		bit := 0
		for _, task := range tasks {
			cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{}}
			defaults := map[system.SystemStreamPartition]offset.Start{}
			for _, ssp := range reads[task] {
				if shape&(1<<bit) != 0 {
					cp.Offsets[ssp] = off1
					want = append(want, line{task, ssp, off1})
				} else {
					defaults[ssp] = offset.Start{Offset: off2}
					want = append(want, line{task, ssp, off2})
				}
				bit++
			}
			has := len(cp.Offsets) > 0 || shape&0x80 != 0
			err := writeTask(&b, task, reads[task], cp, has, func() (map[system.SystemStreamPartition]offset.Start, error) {
				return defaults, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		printed := b.String()
		entries, err := properties.Parse(strings.NewReader(printed))
		if err != nil {
			t.Fatalf("the printed file does not parse: %v\n%s", err, printed)
		}
		if len(entries) != len(want) {
			t.Fatalf("%d entries read back, %d printed:\n%s", len(entries), len(want), printed)
		}
		kp := newKeyParser(slices.SortedFunc(slices.Values(tasks), sjob.CompareTaskNames), reads, inputs)
		for i, e := range entries {
			w := want[i]
			if e.Key != Key(w.task, w.ssp) || e.Value != w.off {
				t.Fatalf("entry %d read back as %q=%q, printed %q=%q:\n%s", i, e.Key, e.Value, Key(w.task, w.ssp), w.off, printed)
			}
			got, msg := kp.parse(e.Key)
			switch n := readings(e.Key, tasks, inputs); {
			case n == 1 && (msg != "" || got.task != w.task || got.ssp != w.ssp):
				t.Fatalf("key %q parsed as %+v, %q; want task %q partition %v", e.Key, got, msg, w.task, w.ssp)
			case n > 1 && !strings.HasPrefix(msg, "ambiguous key"):
				t.Fatalf("key %q reads %d ways, but parsed as %+v, %q", e.Key, n, got, msg)
			case n < 1:
				t.Fatalf("key %q has no reading: the oracle is wrong", e.Key)
			}
		}
	})
}

// readings counts the ways key can be read as tasknames.<task>.systems.<system>.
// streams.<stream>.partitions.<partition> with one of tasks, one of inputs and a
// partition number written plainly.
func readings(key string, tasks []string, inputs []system.SystemStream) int {
	n := 0
	for _, task := range tasks {
		for _, in := range inputs {
			rest, ok := strings.CutPrefix(key, "tasknames."+task+".systems."+in.System+".streams."+in.Stream+".partitions.")
			if !ok {
				continue
			}
			if p, err := strconv.ParseInt(rest, 10, 32); err == nil && p >= 0 && strconv.FormatInt(p, 10) == rest {
				n++
			}
		}
	}
	return n
}
