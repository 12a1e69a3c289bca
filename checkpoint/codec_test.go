package checkpoint_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/system"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenInput is the fixed checkpoint pinned by testdata/document-v1.golden.json.
func goldenInput() (string, checkpoint.Checkpoint, string, time.Time) {
	cp := checkpoint.New(map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "PageViewEvent", 0):         "1234",
		system.NewSSP("kafka", "PageViewEvent", 10):        "7",
		system.NewSSP("kafka", "PageViewEvent", 2):         "0",
		system.NewSSP("kafka", "page.view.events", 0):      "42",
		system.NewSSP("inmem", "Clicks", 0):                "opaque <&> \"offset\" ✓",
		system.NewSSP("kafka", "Clicks/with-dash and%", 3): "18446744073709551615",
	})
	// A zone east of UTC: the document holds the instant in UTC.
	ts := time.Date(2024, 3, 1, 13, 4, 5, 678_000_000, time.FixedZone("CET", 3600))
	return "Partition 0", cp, "1709294645678-7", ts
}

func TestEncodeGolden(t *testing.T) {
	task, cp, id, ts := goldenInput()
	got, err := checkpoint.Encode(task, cp, id, ts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "document-v1.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode output differs from %s (if the change is intended, bump the format version or run go test -update):\ngot:  %s\nwant: %s", path, got, want)
	}

	// The golden document decodes to the input.
	doc, dcp, err := checkpoint.Decode(want)
	if err != nil {
		t.Fatalf("Decode(%s): %v", path, err)
	}
	if doc.Version != checkpoint.FormatVersion || doc.Task != task || doc.CheckpointID != id || !doc.Timestamp.Equal(ts) || !dcp.Equal(cp) {
		t.Errorf("Decode(%s) = %+v, %v; want the golden input", path, doc, dcp.Offsets)
	}
	if doc.Timestamp.Location() != time.UTC {
		t.Errorf("decoded timestamp %v is not in UTC", doc.Timestamp)
	}
}

func TestEncodeEmpty(t *testing.T) {
	ts := time.Unix(0, 0)
	for _, cp := range []checkpoint.Checkpoint{{}, checkpoint.New(nil), checkpoint.New(map[system.SystemStreamPartition]string{})} {
		b, err := checkpoint.Encode("t", cp, "0-0", ts)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"version":1,"task":"t","checkpoint_id":"0-0","timestamp":"1970-01-01T00:00:00Z","offsets":[]}`; string(b) != want {
			t.Errorf("Encode of an empty checkpoint = %s, want %s", b, want)
		}
		_, got, err := checkpoint.Decode(b)
		if err != nil || got.Offsets == nil || len(got.Offsets) != 0 {
			t.Errorf("Decode(%s) = %v, %v; want empty, non-nil offsets", b, got.Offsets, err)
		}
	}
	if _, err := checkpoint.Encode("", checkpoint.Checkpoint{}, "0-0", ts); err == nil {
		t.Error("Encode with an empty task name succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	const (
		head = `{"version":1,"task":"Partition 0","checkpoint_id":"1-1","timestamp":"2024-03-01T12:04:05.678Z",`
		off  = `{"system":"kafka","stream":"s","partition":0,"offset":"1"}`
	)
	for _, tt := range []struct{ name, doc, want string }{
		{"Empty", ``, "not a checkpoint document"},
		{"NotJSON", `hello`, "not a checkpoint document"},
		{"Null", `null`, "version 0"},
		{"Array", `[]`, "not a checkpoint document"},
		{"UnknownVersion", `{"version":2,"task":"t","checkpoint_id":"1","timestamp":"2024-03-01T12:04:05Z","offsets":[]}`, "unsupported checkpoint format version 2"},
		{"MissingVersion", `{"task":"t","checkpoint_id":"1","timestamp":"2024-03-01T12:04:05Z","offsets":[]}`, "version 0"},
		{"UnknownField", head + `"offsets":[],"extra":1}`, `unknown field "extra"`},
		{"UnknownOffsetField", head + `"offsets":[{"system":"kafka","stream":"s","partition":0,"offset":"1","x":2}]}`, `unknown field "x"`},
		{"DuplicateSSP", head + `"offsets":[` + off + `,{"system":"kafka","stream":"s","partition":0,"offset":"2"}]}`, "appears twice"},
		{"NegativePartition", head + `"offsets":[{"system":"kafka","stream":"s","partition":-1,"offset":"1"}]}`, "negative partition -1"},
		{"PartitionTooLarge", head + `"offsets":[{"system":"kafka","stream":"s","partition":2147483648,"offset":"1"}]}`, "not a checkpoint document"},
		{"PartitionNotInteger", head + `"offsets":[{"system":"kafka","stream":"s","partition":1.5,"offset":"1"}]}`, "not a checkpoint document"},
		{"EmptyOffset", head + `"offsets":[{"system":"kafka","stream":"s","partition":0,"offset":""}]}`, "offsets[0]: empty offset"},
		{"MissingOffset", head + `"offsets":[{"system":"kafka","stream":"s","partition":0}]}`, "offsets[0]: empty offset"},
		{"NumericOffset", head + `"offsets":[{"system":"kafka","stream":"s","partition":0,"offset":1}]}`, "not a checkpoint document"},
		{"EmptySystem", head + `"offsets":[{"system":"","stream":"s","partition":0,"offset":"1"}]}`, "empty system or stream"},
		{"EmptyStream", head + `"offsets":[` + off + `,{"system":"kafka","partition":0,"offset":"1"}]}`, "offsets[1]: empty system or stream"},
		{"TrailingData", head + `"offsets":[]} {}`, "trailing data"},
		{"TrailingGarbage", head + `"offsets":[]}x`, "trailing data"},
		{"Truncated", head + `"offsets":[` + off, "not a checkpoint document"},
		{"MissingOffsets", head[:len(head)-1] + `}`, "no offsets field"},
		{"NullOffsets", head + `"offsets":null}`, "no offsets field"},
		{"MissingTask", `{"version":1,"checkpoint_id":"1","timestamp":"2024-03-01T12:04:05Z","offsets":[]}`, "no task name"},
		{"TimestampAfter9999InUTC", `{"version":1,"task":"t","checkpoint_id":"1","timestamp":"9999-12-31T23:59:59-01:00","offsets":[]}`, "outside the years 0 to 9999"},
		{"TimestampBefore0InUTC", `{"version":1,"task":"t","checkpoint_id":"1","timestamp":"0000-01-01T00:00:00+01:00","offsets":[]}`, "outside the years 0 to 9999"},
		{"BadTimestamp", `{"version":1,"task":"t","checkpoint_id":"1","timestamp":"yesterday","offsets":[]}`, "not a checkpoint document"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, cp, err := checkpoint.Decode([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, %v; want an error", tt.doc, doc, cp.Offsets)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%s) error %q does not say %q", tt.doc, err, tt.want)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes, and decodes again, to the same checkpoint and metadata. Seeds are in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	task, cp, id, ts := goldenInput()
	if b, err := checkpoint.Encode(task, cp, id, ts); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, cp, err := checkpoint.Decode(b)
		if err != nil {
			return
		}
		enc, err := checkpoint.Encode(doc.Task, cp, doc.CheckpointID, doc.Timestamp)
		if err != nil {
			t.Fatalf("Decode accepted %q but its result does not re-encode: %v", b, err)
		}
		doc2, cp2, err := checkpoint.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded document %s does not decode: %v", enc, err)
		}
		if !cp2.Equal(cp) || len(cp2.Offsets) != len(doc.Offsets) {
			t.Fatalf("offsets changed on re-encoding: %v, then %v", cp.Offsets, cp2.Offsets)
		}
		if doc2.Version != doc.Version || doc2.Task != doc.Task || doc2.CheckpointID != doc.CheckpointID || !doc2.Timestamp.Equal(doc.Timestamp) {
			t.Fatalf("metadata changed on re-encoding: %+v, then %+v", doc, doc2)
		}
		// The encoding is canonical: encoding the decoded document again changes nothing.
		enc2, err := checkpoint.Encode(doc2.Task, cp2, doc2.CheckpointID, doc2.Timestamp)
		if err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable:\n%s\n%s (%v)", enc, enc2, err)
		}
	})
}
