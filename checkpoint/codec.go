package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
	doc := Document{Version: FormatVersion, Task: task, CheckpointID: id, Timestamp: ts.UTC(), Offsets: []OffsetRecord{}}
	for _, ssp := range cp.Partitions() {
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

// Decode parses a document written by Encode. It is strict: an unknown version, a
// missing field, a negative partition or a partition named twice is an error.
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
	if doc.Offsets == nil {
		return Document{}, Checkpoint{}, errors.New("checkpoint document has no offsets field")
	}
	cp := Checkpoint{Offsets: make(map[system.SystemStreamPartition]string, len(doc.Offsets))}
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

// NewID returns a checkpoint id "<unix millis>-<sequence>", ordered by time then sequence.
func NewID(now time.Time, seq uint64) string {
	return fmt.Sprintf("%d-%d", now.UnixMilli(), seq)
}
