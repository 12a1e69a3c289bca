package kafka

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestCheckpointRecordGolden pins the bytes of a checkpoint record: it writes a fixed
// checkpoint with a fixed clock through the manager and compares the record's key
// and value, as stored in the topic, with testdata/checkpoint-record.{key,value}.
// docs/checkpoint-format.md documents the same bytes; change both together, and
// run go test ./kafka -run Golden -update only for a deliberate format change.
func TestCheckpointRecordGolden(t *testing.T) {
	_, seeds := cluster(t)
	m, _ := newManager(t, seeds, "page-view-counter", nil)
	m.now = func() time.Time { return time.Date(2024, 5, 17, 9, 30, 15, 123_000_000, time.UTC) }
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := checkpoint.New(map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "PageViewEvent", 10): "7",
		system.NewSSP("kafka", "PageViewEvent", 0):  "1234",
		system.NewSSP("kafka", "page.views.v2", 3):  "42",
	})
	if err := m.Write(t.Context(), "Partition 0", c); err != nil {
		t.Fatal(err)
	}

	cl, _ := rawClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{m.Topic(): {0: kgo.NewOffset().AtStart()}}))
	fs := cl.PollFetches(t.Context())
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("topic holds %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Partition != 0 || len(r.Headers) != 0 {
		t.Errorf("record in partition %d with headers %v; want partition 0, no headers", r.Partition, r.Headers)
	}
	golden(t, "checkpoint-record.key", r.Key)
	golden(t, "checkpoint-record.value", r.Value)

	doc, got, err := checkpoint.Decode(r.Value)
	if err != nil || !got.Equal(c) || doc.Task != "Partition 0" || doc.CheckpointID != "1715938215123-1" {
		t.Errorf("Decode = %+v, %v, %v", doc, got.Offsets, err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %q\nwant: %q", name, got, want)
	}
}
