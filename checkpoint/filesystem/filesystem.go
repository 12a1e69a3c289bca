// Package filesystem stores checkpoints in local files, one file per task
// (task.checkpoint.factory=filesystem).
//
// # Files
//
// The checkpoints of task T of job J with id I live in the directory
// task.checkpoint.path, in the file
//
//	<esc(J)>-<esc(I)>-<esc(T)>.checkpoint
//
// where esc replaces every byte outside [A-Za-z0-9._] with %XX (two upper-case hex
// digits). A "-" in a name is therefore always escaped (%2D), so the two dashes
// that separate the three parts are unambiguous: task "Partition 0" of job
// "page-views" with id "1" is in page%2Dviews-1-Partition%200.checkpoint.
//
// A checkpoint file is a one-line header, a newline, the checkpoint document (the
// JSON produced by checkpoint.Encode, which holds the task name, checkpoint id,
// timestamp and offsets) and a final newline:
//
//	sluice-checkpoint 1 crc32c=<8 lower-case hex digits> len=<decimal>
//	{"version":1,"task":"Partition 0",...}
//
// "1" is the file format version, crc32c the CRC-32C (Castagnoli) of the document
// and len its length in bytes; neither counts the newlines. A file is read only if
// the header, the version, the length, the checksum, the document and the task name
// in the document all check out; anything else is a *checkpoint.CorruptError naming
// the file (errors.Is(err, checkpoint.ErrCorrupt)), never checkpoint.ErrNoCheckpoint,
// so a damaged file stops the job instead of silently restarting it from its default
// offsets. See docs/checkpoint-format.md.
//
// Every write replaces the whole file atomically and durably (see
// internal/atomicfile): a temporary file ".tmp-..." in the same directory is written
// and synced, renamed over the old file, and the directory synced. A crash leaves
// either the old or the new checkpoint, and at worst a stray temporary file, which
// readers ignore and the next Start removes (see below).
//
// # Rewrites
//
// WriteAll (checkpoint.AtomicWriter, used by the checkpoint tool) stores the
// checkpoints of several tasks all or nothing: it writes an intent file
// <esc(J)>-<esc(I)>.rewrite with every new checkpoint before the task files, and
// removes it after them. A rewrite interrupted by a crash is finished from the intent
// by the next Start, LockForRewrite or AcquireRunLock that finds it while no other
// process holds the job's lock; see WriteAll and docs/checkpoint-format.md.
//
// # Running jobs
//
// Every running container of a job holds a shared lock (flock) on
// <esc(J)>-<esc(I)>.lock in the same directory, and an exclusive one on its own
// <esc(J)>-<esc(I)>-container-<N>.lock, which names its PID, host and start time;
// both are taken with Manager.AcquireRunLock. A second process with the same
// --container-id is refused, naming the first. The checkpoint tool holds the job's
// lock exclusively while it validates and writes (Manager.LockForRewrite), so it
// cannot take it while a container runs, and no container can start while it writes.
// Manager.CheckNotRunning only checks. The kernel releases the locks of a process
// that exits, however it exits. Where flock is not available (Windows), every lock
// fails with an error saying so.
package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/atomicfile"
)

// FileVersion is the version of the checkpoint file format, written in each file's
// header.
const FileVersion = 1

const (
	magic  = "sluice-checkpoint"
	suffix = ".checkpoint"
	// maxFileName is the longest file name most file systems take (NAME_MAX).
	maxFileName = 255
	// longestTask is the longest task name a container makes.
	longestTask = "Partition 2147483647"
	lockExt     = ".lock"
	filePerm    = 0o644
	dirPerm     = 0o755
	maxHeader   = 128 // a valid header is at most 60 bytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Option configures a Manager.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger (by default, nothing is logged).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

const (
	stateNew int32 = iota
	stateStarted
	stateClosed
)

// Manager stores the checkpoints of one job in a directory. It implements
// checkpoint.Manager, checkpoint.Lister, checkpoint.Deleter, checkpoint.RunLocker,
// checkpoint.RewriteLocker and checkpoint.AtomicWriter, and is safe for concurrent
// use.
type Manager struct {
	dir    string
	job    string
	id     string
	prefix string // esc(job) + "-" + esc(id) + "-"
	logger *slog.Logger
	seq    atomic.Uint64
	state  atomic.Int32
	// writeFile writes a file atomically and durably: atomicfile.WriteFile, replaced
	// by tests that make writes fail.
	writeFile func(path string, data []byte, perm os.FileMode) error
}

var (
	_ checkpoint.Manager       = (*Manager)(nil)
	_ checkpoint.Lister        = (*Manager)(nil)
	_ checkpoint.Deleter       = (*Manager)(nil)
	_ checkpoint.RewriteLocker = (*Manager)(nil)
	_ checkpoint.RunLocker     = (*Manager)(nil)
	_ checkpoint.AtomicWriter  = (*Manager)(nil)
)

// New returns a manager for the checkpoints of job jobName with id jobID in dir. It
// validates its arguments and touches nothing on disk; Start creates dir.
func New(dir, jobName, jobID string, opts ...Option) (*Manager, error) {
	var problems []error
	if dir == "" {
		problems = append(problems, errors.New("filesystem checkpoints: empty directory (task.checkpoint.path)"))
	}
	if jobName == "" {
		problems = append(problems, errors.New("filesystem checkpoints: empty job name"))
	}
	if jobID == "" {
		problems = append(problems, errors.New("filesystem checkpoints: empty job id"))
	}
	prefix := escape(jobName) + "-" + escape(jobID) + "-"
	if n := len(prefix) + len(escape(longestTask)) + len(suffix); jobName != "" && jobID != "" && n > maxFileName {
		problems = append(problems, fmt.Errorf("filesystem checkpoints: job name %q with id %q makes checkpoint file names of up to %d bytes, over the %d-byte limit of most file systems; use a shorter job.name",
			jobName, jobID, n, maxFileName))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return &Manager{
		dir:       filepath.Clean(dir),
		job:       jobName,
		id:        jobID,
		prefix:    prefix,
		logger:    o.logger,
		writeFile: atomicfile.WriteFile,
	}, nil
}

// Dir returns the directory holding the checkpoint files.
func (m *Manager) Dir() string { return m.dir }

// Path returns the file that holds task's checkpoint.
func (m *Manager) Path(task string) string {
	return filepath.Join(m.dir, m.prefix+escape(task)+suffix)
}

// LockPath returns the file whose lock marks the job as running (see AcquireRunLock):
// <dir>/<esc(job)>-<esc(id)>.lock.
func (m *Manager) LockPath() string {
	return filepath.Join(m.dir, strings.TrimSuffix(m.prefix, "-")+lockExt)
}

// Start creates the directory if it is missing. If no other process holds the job's
// lock, it also finishes a rewrite that was interrupted (see WriteAll) and removes
// the job's leftover temporary files.
func (m *Manager) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch m.state.Load() {
	case stateStarted:
		return nil
	case stateClosed:
		return errors.New("filesystem checkpoints: start after close")
	}
	if err := atomicfile.MkdirAll(m.dir, dirPerm); err != nil {
		return fmt.Errorf("filesystem checkpoints: create directory %s: %w", m.dir, err)
	}
	fi, err := os.Stat(m.dir)
	if err != nil {
		return fmt.Errorf("filesystem checkpoints: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("filesystem checkpoints: %s is not a directory", m.dir)
	}
	if err := m.recoverIfIdle(); err != nil {
		return err
	}
	if !m.state.CompareAndSwap(stateNew, stateStarted) && m.state.Load() == stateClosed {
		return errors.New("filesystem checkpoints: start after close")
	}
	m.logger.Info("filesystem checkpoints", "dir", m.dir, "job.name", m.job, "job.id", m.id)
	return nil
}

func (m *Manager) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch m.state.Load() {
	case stateNew:
		return errors.New("filesystem checkpoints: used before Start")
	case stateClosed:
		return errors.New("filesystem checkpoints: used after Close")
	}
	return nil
}

// Read returns task's latest checkpoint, with the file as its Source. It returns
// checkpoint.ErrNoCheckpoint if task has no file, and a *checkpoint.CorruptError
// naming the file if the file exists but does not hold a valid checkpoint of task.
func (m *Manager) Read(ctx context.Context, task string) (checkpoint.Checkpoint, error) {
	if err := m.usable(ctx); err != nil {
		return checkpoint.Checkpoint{}, err
	}
	if task == "" {
		return checkpoint.Checkpoint{}, errors.New("filesystem checkpoints: read: empty task name")
	}
	path := m.Path(task)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint.Checkpoint{}, fmt.Errorf("task %q (%s): %w", task, path, checkpoint.ErrNoCheckpoint)
	}
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("filesystem checkpoints: read %s: %w", path, err)
	}
	_, cp, err := decodeFile(b, task)
	if err != nil {
		return checkpoint.Checkpoint{}, &checkpoint.CorruptError{Where: path, Err: err}
	}
	cp.Source = path
	return cp, nil
}

// Write replaces task's checkpoint with cp, durably, before it returns. A checkpoint
// that would not read back exactly (an empty offset, a negative partition, a name that
// is not valid UTF-8, ...) is refused and nothing is written.
func (m *Manager) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	if err := m.usable(ctx); err != nil {
		return err
	}
	path := m.Path(task)
	b, _, err := encodeFile(task, cp, checkpoint.NewID(time.Now(), m.seq.Add(1)), time.Now())
	if err != nil {
		return fmt.Errorf("filesystem checkpoints: write %s: %w", path, err)
	}
	if err := m.writeFile(path, b, filePerm); err != nil {
		return fmt.Errorf("filesystem checkpoints: %w", err)
	}
	return nil
}

// Delete removes task's checkpoint file and syncs the directory, so that the task has
// no checkpoint. A task without a file is not an error.
func (m *Manager) Delete(ctx context.Context, task string) error {
	if err := m.usable(ctx); err != nil {
		return err
	}
	if task == "" {
		return errors.New("filesystem checkpoints: delete: empty task name")
	}
	if err := atomicfile.Remove(m.Path(task)); err != nil {
		return fmt.Errorf("filesystem checkpoints: %w", err)
	}
	return nil
}

// Tasks returns, sorted, the tasks of this job that have a checkpoint file. Files of
// other jobs and temporary files are ignored.
func (m *Manager) Tasks(ctx context.Context) ([]string, error) {
	if err := m.usable(ctx); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem checkpoints: list %s: %w", m.dir, err)
	}
	var tasks []string
	for _, de := range des {
		name := de.Name()
		esc, ok := strings.CutPrefix(name, m.prefix)
		if !ok {
			continue
		}
		esc, ok = strings.CutSuffix(esc, suffix)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if task, ok := unescape(esc); ok && task != "" {
			tasks = append(tasks, task)
		}
	}
	slices.Sort(tasks)
	return tasks, nil
}

// Close marks the manager closed. It holds no open files, so it never fails.
func (m *Manager) Close() error {
	m.state.Store(stateClosed)
	return nil
}

// encodeFile returns the file content for task's checkpoint, and the checkpoint
// document in it. It refuses a checkpoint that would not decode to itself, so that a
// successful write never leaves a file that reads as corrupt.
func encodeFile(task string, cp checkpoint.Checkpoint, id string, ts time.Time) (file, doc []byte, err error) {
	doc, err = checkpoint.Encode(task, cp, id, ts)
	if err != nil {
		return nil, nil, err
	}
	b := frame(magic, doc)
	if _, got, err := decodeFile(b, task); err != nil {
		return nil, nil, fmt.Errorf("checkpoint of task %q cannot be stored: %w", task, err)
	} else if !got.Equal(cp) {
		return nil, nil, fmt.Errorf("checkpoint of task %q cannot be stored exactly (names that are not valid UTF-8?)", task)
	}
	return b, doc, nil
}

// frame returns payload under the header line "<magic> 1 crc32c=<hex> len=<n>", with
// a final newline: the layout of checkpoint files and rewrite intent files.
func frame(magic string, payload []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(payload) + 64)
	fmt.Fprintf(&buf, "%s %d crc32c=%08x len=%d\n", magic, FileVersion, crc32.Checksum(payload, castagnoli), len(payload))
	buf.Write(payload)
	buf.WriteByte('\n')
	return buf.Bytes()
}

// unframe checks the header line, length and checksum of a file written by frame
// with the same magic and returns its payload.
func unframe(magic string, b []byte) ([]byte, error) {
	header, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		if len(b) == 0 {
			return nil, errors.New("empty file")
		}
		return nil, errors.New("no header line")
	}
	if len(header) > maxHeader {
		return nil, errors.New("not a sluice checkpoint file (header line too long)")
	}
	crc, length, err := parseHeader(magic, string(header))
	if err != nil {
		return nil, err
	}
	if len(rest) != length+1 || rest[length] != '\n' {
		return nil, fmt.Errorf("header says the document has %d bytes, the file holds %d after the header (torn or truncated write?)", length, len(rest)-1)
	}
	payload := rest[:length]
	if got := crc32.Checksum(payload, castagnoli); got != crc {
		return nil, fmt.Errorf("checksum mismatch: header says crc32c=%08x, document has crc32c=%08x", crc, got)
	}
	return payload, nil
}

// decodeFile checks and decodes a checkpoint file's content, which must hold task's
// checkpoint.
func decodeFile(b []byte, task string) (checkpoint.Document, checkpoint.Checkpoint, error) {
	payload, err := unframe(magic, b)
	if err != nil {
		return checkpoint.Document{}, checkpoint.Checkpoint{}, err
	}
	doc, cp, err := checkpoint.Decode(payload)
	if err != nil {
		return checkpoint.Document{}, checkpoint.Checkpoint{}, err
	}
	if doc.Task != task {
		return checkpoint.Document{}, checkpoint.Checkpoint{}, fmt.Errorf("file holds the checkpoint of task %q, not %q", doc.Task, task)
	}
	return doc, cp, nil
}

// parseHeader parses "<magic> 1 crc32c=<8 hex> len=<decimal>", accepting only the
// exact form frame writes.
func parseHeader(magic, h string) (crc uint32, length int, err error) {
	fields := strings.Split(h, " ")
	if fields[0] != magic {
		return 0, 0, fmt.Errorf("not a sluice %s file (bad header)", strings.TrimPrefix(magic, "sluice-"))
	}
	if len(fields) < 2 {
		return 0, 0, errors.New("bad header: no format version")
	}
	if fields[1] != strconv.Itoa(FileVersion) {
		return 0, 0, fmt.Errorf("unsupported checkpoint file format version %q (this build reads version %d)", fields[1], FileVersion)
	}
	if len(fields) != 4 {
		return 0, 0, fmt.Errorf("bad header %q", h)
	}
	hexCRC, ok := strings.CutPrefix(fields[2], "crc32c=")
	if !ok || len(hexCRC) != 8 || strings.ToLower(hexCRC) != hexCRC {
		return 0, 0, fmt.Errorf("bad header %q: bad crc32c field", h)
	}
	c, err := strconv.ParseUint(hexCRC, 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad header %q: bad crc32c field", h)
	}
	dec, ok := strings.CutPrefix(fields[3], "len=")
	n, err := strconv.Atoi(dec)
	if !ok || err != nil || n < 0 || strconv.Itoa(n) != dec {
		return 0, 0, fmt.Errorf("bad header %q: bad len field", h)
	}
	return uint32(c), n, nil
}
