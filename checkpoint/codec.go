package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/system"
)

// FormatVersion is the version of the checkpoint document written by Encode.
const FormatVersion = 1

// Document is the stored form of one task's checkpoint, shared by the checkpoint
// managers. See docs/checkpoint-format.md.
type Document struct {
	Version      int            `json:"version"`
	Task         string         `json:"task"`
	CheckpointID string         `json:"checkpoint_id"`
	Timestamp    time.Time      `json:"timestamp"`
	Offsets      []OffsetRecord `json:"offsets"`
}

// OffsetRecord is one partition's next offset. System, stream and partition are
// separate fields so that dotted stream names never need re-splitting.
type OffsetRecord struct {
	System    string `json:"system"`
	Stream    string `json:"stream"`
	Partition int32  `json:"partition"`
	Offset    string `json:"offset"`
}

// Encode serialises task's checkpoint as a version-1 document, partitions in order.
func Encode(task string, cp Checkpoint, id string, ts time.Time) ([]byte, error) {
	if task == "" {
		return nil, errors.New("checkpoint: empty task name")
	}
	if !utf8.ValidString(task) {
		return nil, fmt.Errorf("checkpoint: task name %q is not valid UTF-8", task)
	}
	doc := Document{Version: FormatVersion, Task: task, CheckpointID: id, Timestamp: ts.UTC(), Offsets: []OffsetRecord{}}
	for _, ssp := range cp.Partitions() {
		off := cp.Offsets[ssp]
		switch {
		case ssp.System == "" || ssp.Stream == "":
			return nil, fmt.Errorf("checkpoint: task %s: partition %s has an empty system or stream", task, ssp)
		case ssp.Partition < 0:
			return nil, fmt.Errorf("checkpoint: task %s: negative partition in %s", task, ssp)
		case off == "":
			return nil, fmt.Errorf("checkpoint: task %s: empty offset for %s", task, ssp)
		case !utf8.ValidString(ssp.System) || !utf8.ValidString(ssp.Stream) || !utf8.ValidString(off):
			return nil, fmt.Errorf("checkpoint: task %s: %s or its offset is not valid UTF-8", task, ssp)
		}
		doc.Offsets = append(doc.Offsets, OffsetRecord{System: ssp.System, Stream: ssp.Stream, Partition: ssp.Partition, Offset: cp.Offsets[ssp]})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("checkpoint: encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses a document written by Encode. It is strict where it matters: an unknown
// version or field, a missing task or offsets list, an empty system, stream or offset, a
// negative partition or a partition named twice is an error. (A missing checkpoint_id
// or timestamp decodes as the zero value; they are informational.)
func Decode(b []byte) (Document, Checkpoint, error) {
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Document{}, Checkpoint{}, fmt.Errorf("not a checkpoint document: %w", err)
	}
	if dec.More() {
		return Document{}, Checkpoint{}, errors.New("trailing data after the checkpoint document")
	}
	if doc.Version != FormatVersion {
		return Document{}, Checkpoint{}, fmt.Errorf("unsupported checkpoint format version %d (this build reads version %d)", doc.Version, FormatVersion)
	}
	if doc.Task == "" {
		return Document{}, Checkpoint{}, errors.New("checkpoint document has no task name")
	}
	if y := doc.Timestamp.UTC().Year(); y < 0 || y > 9999 {
		// Encode writes UTC, and JSON times are limited to years 0 to 9999.
		return Document{}, Checkpoint{}, fmt.Errorf("timestamp %s is outside the years 0 to 9999 in UTC", doc.Timestamp.Format(time.RFC3339))
	}
	if doc.Offsets == nil {
		return Document{}, Checkpoint{}, errors.New("checkpoint document has no offsets field")
	}
	cp := Checkpoint{Offsets: make(map[system.SystemStreamPartition]string, len(doc.Offsets)), Written: doc.Timestamp}
	for i, o := range doc.Offsets {
		switch {
		case o.System == "" || o.Stream == "":
			return Document{}, Checkpoint{}, fmt.Errorf("offsets[%d]: empty system or stream", i)
		case o.Partition < 0:
			return Document{}, Checkpoint{}, fmt.Errorf("offsets[%d]: negative partition %d", i, o.Partition)
		case o.Offset == "":
			return Document{}, Checkpoint{}, fmt.Errorf("offsets[%d]: empty offset", i)
		}
		ssp := system.NewSSP(o.System, o.Stream, o.Partition)
		if _, dup := cp.Offsets[ssp]; dup {
			return Document{}, Checkpoint{}, fmt.Errorf("offsets[%d]: %s appears twice", i, ssp)
		}
		cp.Offsets[ssp] = o.Offset
	}
	return doc, cp, nil
}

// NewID returns a checkpoint id "<unix millis>-<sequence>". It is informational: it
// tells writes apart in logs and tools; nothing orders checkpoints by it.
func NewID(now time.Time, seq uint64) string {
	return fmt.Sprintf("%d-%d", now.UnixMilli(), seq)
}
