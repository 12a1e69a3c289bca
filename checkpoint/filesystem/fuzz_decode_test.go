package filesystem

import (
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

// FuzzDecodeFile checks that the file decoder never panics, and that whatever it
// accepts is stored again exactly by the encoder.
func FuzzDecodeFile(f *testing.F) {
	cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "PageViewEvent", 0): "1234",
		system.NewSSP("kafka", "a.b", 7):           "9",
	}}
	valid, _, err := encodeFile("Partition 0", cp, "1-1", time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, "Partition 0")
	f.Add(valid[:len(valid)/2], "Partition 0")
	f.Add(valid, "Partition 1")
	f.Add([]byte("sluice-checkpoint 1 crc32c=00000000 len=0\n\n"), "t")
	f.Add([]byte("sluice-checkpoint 2 crc32c=00000000 len=2\n{}\n"), "t")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, b []byte, task string) {
		doc, got, err := decodeFile(b, task)
		if err != nil {
			return
		}
		again, _, err := encodeFile(task, got, doc.CheckpointID, doc.Timestamp)
		if err != nil {
			t.Fatalf("decoded checkpoint cannot be stored again: %v", err)
		}
		_, back, err := decodeFile(again, task)
		if err != nil || !back.Equal(got) {
			t.Fatalf("re-encoded file decodes to %v, %v; want %v", back, err, got)
		}
	})
}

// FuzzDecodeIntent checks that the intent decoder never panics, and that whatever it
// accepts encodes again to an intent it accepts, with the same tasks and documents.
func FuzzDecodeIntent(f *testing.F) {
	m := &Manager{job: "page-views", id: "1", prefix: "page%2Dviews-1-"}
	_, doc, err := encodeFile("Partition 0", checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 0): "5"}), "1-1", time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := encodeIntent(intent{Version: FileVersion, Job: m.job, JobID: m.id, Created: time.Unix(0, 0).UTC(),
		Tasks: []intentTask{{Task: "Partition 0", Replaces: fileHash([]byte("old")), Document: doc}, {Task: "Partition 0", Document: doc}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte("sluice-checkpoint-rewrite 1 crc32c=00000000 len=2\n{}\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeIntent(b, m)
		if err != nil {
			return
		}
		again, err := encodeIntent(in)
		if err != nil {
			t.Fatalf("a decoded intent cannot be encoded again: %v", err)
		}
		back, err := decodeIntent(again, m)
		if err != nil || len(back.Tasks) != len(in.Tasks) {
			t.Fatalf("re-encoded intent decodes to %+v, %v", back, err)
		}
		for i := range in.Tasks {
			if back.Tasks[i].Task != in.Tasks[i].Task || string(back.Tasks[i].Document) != string(in.Tasks[i].Document) || back.Tasks[i].Replaces != in.Tasks[i].Replaces {
				t.Fatalf("task %d changed: %+v, then %+v", i, in.Tasks[i], back.Tasks[i])
			}
		}
	})
}
