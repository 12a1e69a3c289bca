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
