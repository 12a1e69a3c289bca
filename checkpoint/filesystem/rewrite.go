package filesystem

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/internal/atomicfile"
)

// All-or-nothing rewrites (WriteAll).
//
// WriteAll first writes, atomically and durably, an intent file
// <esc(J)>-<esc(I)>.rewrite holding every new checkpoint document and, for each task,
// the SHA-256 of the file it replaces; then the task files, one by one; then it
// removes the intent. Once the intent is on disk the rewrite is committed: a process
// killed part way leaves the intent, and the next manager to find it while no other
// process holds the job's lock (Start, AcquireRunLock, LockForRewrite) finishes the
// rewrite from it ("rolls it forward") and logs that it did. Rolling forward writes a
// task's new file only while the task still holds the file the rewrite replaced: a
// task whose checkpoint was written since (by a container) keeps it.
//
// The same manager also removes the job's leftover temporary files (".tmp-..." of
// killed writes), only while it holds the job's lock exclusively: containers write
// only while they hold it shared, and the checkpoint tool while it holds it
// exclusively, so nobody else can be writing then.

const (
	intentExt   = ".rewrite"
	intentMagic = "sluice-checkpoint-rewrite"
)

// intent is the content of an intent file.
type intent struct {
	Version int          `json:"version"`
	Job     string       `json:"job"`
	JobID   string       `json:"job_id"`
	Created time.Time    `json:"created"`
	Tasks   []intentTask `json:"tasks"`
}

type intentTask struct {
	Task string `json:"task"`
	// Replaces is the SHA-256 (hex) of the file the rewrite replaces, empty when the
	// task had no file.
	Replaces string `json:"replaces"`
	// Document is the new checkpoint document (checkpoint.Encode's JSON).
	Document json.RawMessage `json:"document"`
}

// IntentPath returns the file in which WriteAll records a rewrite before it writes
// the task files: <dir>/<esc(job)>-<esc(id)>.rewrite.
func (m *Manager) IntentPath() string {
	return filepath.Join(m.dir, m.intentName())
}

func (m *Manager) intentName() string { return strings.TrimSuffix(m.prefix, "-") + intentExt }

// rewriteFile is one task file of a rewrite.
type rewriteFile struct {
	task, path string
	old        []byte // nil when the task had no file
	new        []byte
}

// WriteAll stores the checkpoints of several tasks all or nothing (see the package
// documentation): it writes an intent file, then each task's file, calling after
// once each is written, then removes the intent. A task named twice, or a checkpoint
// Write would refuse, is an error and nothing is written.
//
// When a task's write fails, WriteAll puts back the files it already replaced and
// returns an error wrapping checkpoint.ErrNothingWritten; when putting them back
// fails too, it leaves the intent, so that the next start finishes the rewrite, and
// returns an error wrapping checkpoint.ErrRewritePending. An interrupted earlier
// rewrite is finished first.
func (m *Manager) WriteAll(ctx context.Context, cps []checkpoint.TaskCheckpoint, after func(task string, n int)) error {
	nothing := func(err error) error {
		return fmt.Errorf("filesystem checkpoints: %w: %w", checkpoint.ErrNothingWritten, err)
	}
	if err := m.usable(ctx); err != nil {
		return nothing(err)
	}
	if _, err := m.finishRewrite(); err != nil {
		return nothing(err)
	}
	now := time.Now()
	in := intent{Version: FileVersion, Job: m.job, JobID: m.id, Created: now.UTC()}
	files := make([]rewriteFile, 0, len(cps))
	seen := make(map[string]bool, len(cps))
	for _, tc := range cps {
		if tc.Task == "" {
			return nothing(errors.New("write: empty task name"))
		}
		if seen[tc.Task] {
			return nothing(fmt.Errorf("write: task %q named twice", tc.Task))
		}
		seen[tc.Task] = true
		f := rewriteFile{task: tc.Task, path: m.Path(tc.Task)}
		b, doc, err := encodeFile(tc.Task, tc.Checkpoint, checkpoint.NewID(now, m.seq.Add(1)), now)
		if err != nil {
			return nothing(fmt.Errorf("write %s: %w", f.path, err))
		}
		f.new = b
		if f.old, err = readIfExists(f.path); err != nil {
			return nothing(err)
		}
		in.Tasks = append(in.Tasks, intentTask{Task: tc.Task, Replaces: fileHash(f.old), Document: doc})
		files = append(files, f)
	}
	ib, err := encodeIntent(in)
	if err != nil {
		return nothing(err)
	}
	if err := m.writeFile(m.IntentPath(), ib, filePerm); err != nil {
		return nothing(err)
	}
	// Committed: from here on a crash is finished by the next start, and so the
	// context no longer stops the writes.
	for i, f := range files {
		if err := m.writeFile(f.path, f.new, filePerm); err != nil {
			return m.undoRewrite(files[:i+1], err)
		}
		if after != nil {
			after(f.task, i+1)
		}
	}
	if err := atomicfile.Remove(m.IntentPath()); err != nil {
		// Every task file is written: rolling forward will find nothing to do.
		m.logger.Warn("filesystem checkpoints: the rewrite is complete, but its intent file could not be removed; the next start removes it",
			"intent", m.IntentPath(), "err", err)
	}
	return nil
}

// undoRewrite puts back the old files of a rewrite whose write of the last of files
// failed with cause, and removes the intent.
func (m *Manager) undoRewrite(files []rewriteFile, cause error) error {
	var errs []error
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		cur, err := readIfExists(f.path)
		switch {
		case err != nil:
			errs = append(errs, err)
			continue
		case !bytes.Equal(cur, f.new):
			continue // not written (the failed one), or written by someone else since
		case f.old == nil:
			err = atomicfile.Remove(f.path)
		default:
			err = m.writeFile(f.path, f.old, filePerm)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("putting back the checkpoint of task %q: %w", f.task, err))
		}
	}
	if len(errs) == 0 {
		if err := atomicfile.Remove(m.IntentPath()); err != nil {
			errs = append(errs, err)
		} else {
			return fmt.Errorf("filesystem checkpoints: writing the checkpoint of task %q: %w; the files already written were put back: %w",
				files[len(files)-1].task, cause, checkpoint.ErrNothingWritten)
		}
	}
	return fmt.Errorf("filesystem checkpoints: writing the checkpoint of task %q: %w; putting back the others failed too (%w), so the rewrite stays committed in %s: %w",
		files[len(files)-1].task, cause, errors.Join(errs...), m.IntentPath(), checkpoint.ErrRewritePending)
}

// finishRewrite rolls an interrupted rewrite forward from its intent file, if there is
// one, and removes the intent. The caller makes sure that no other process writes
// meanwhile. It reports whether there was one.
func (m *Manager) finishRewrite() (bool, error) {
	path := m.IntentPath()
	b, err := readIfExists(path)
	if err != nil || b == nil {
		return false, err
	}
	in, err := decodeIntent(b, m)
	if err != nil {
		return true, fmt.Errorf("filesystem checkpoints: an interrupted rewrite cannot be finished: %w "+
			"(check the checkpoints with sluice checkpoint-tool, then remove the file)", &checkpoint.CorruptError{Where: path, Err: err})
	}
	var written, done int
	var kept []string
	for _, t := range in.Tasks {
		f := m.Path(t.Task)
		cur, err := readIfExists(f)
		if err != nil {
			return true, fmt.Errorf("filesystem checkpoints: finishing the interrupted rewrite of %s: %w", path, err)
		}
		newFile := frame(magic, t.Document)
		switch h := fileHash(cur); {
		case bytes.Equal(cur, newFile):
			done++
		case h == t.Replaces:
			if err := m.writeFile(f, newFile, filePerm); err != nil {
				return true, fmt.Errorf("filesystem checkpoints: finishing the interrupted rewrite of %s: %w", path, err)
			}
			written++
		default:
			kept = append(kept, t.Task) // written since the rewrite began: newer
		}
	}
	if err := atomicfile.Remove(path); err != nil {
		return true, fmt.Errorf("filesystem checkpoints: finishing the interrupted rewrite of %s: %w", path, err)
	}
	attrs := []any{"intent", path, "began", in.Created, "tasks", len(in.Tasks), "written_now", written, "written_before", done}
	if len(kept) > 0 {
		attrs = append(attrs, "kept_newer", kept)
	}
	m.logger.Warn("filesystem checkpoints: finished an interrupted checkpoint rewrite (a checkpoint tool stopped part way): every task it rewrote now holds its new checkpoint", attrs...)
	return true, nil
}

// recoverLocked finishes an interrupted rewrite and removes the job's leftover
// temporary files. The caller holds the job's lock exclusively.
func (m *Manager) recoverLocked() error {
	if _, err := m.finishRewrite(); err != nil {
		return err
	}
	m.removeTemps()
	return nil
}

// needsRecovery reports whether the directory holds an intent file or temporary
// files of the job.
func (m *Manager) needsRecovery() bool {
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return false
	}
	for _, de := range des {
		if de.Name() == m.intentName() || m.ownTemp(de.Name()) {
			return true
		}
	}
	return false
}

// recoverIfIdle runs recoverLocked if the job needs it and no other process holds the
// job's lock; otherwise it leaves everything as it is, and says so when a rewrite is
// pending.
func (m *Manager) recoverIfIdle() error {
	if !m.needsRecovery() {
		return nil
	}
	held, err := m.withExclusive(m.recoverLocked)
	if err != nil {
		return err
	}
	if !held {
		if b, _ := readIfExists(m.IntentPath()); b != nil {
			m.logger.Warn("filesystem checkpoints: a checkpoint rewrite is in progress or was interrupted, and another process holds the job's lock; it is finished when the job next starts with nothing else running",
				"intent", m.IntentPath(), "lock", m.LockPath())
		}
	}
	return nil
}

// removeTemps removes the job's temporary files (see ownTemp). Failures are logged.
func (m *Manager) removeTemps() {
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return
	}
	var removed []string
	for _, de := range des {
		if !m.ownTemp(de.Name()) || !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(m.dir, de.Name())
		if err := atomicfile.Remove(path); err != nil {
			m.logger.Warn("filesystem checkpoints: cannot remove a leftover temporary file", "file", path, "err", err)
			continue
		}
		removed = append(removed, de.Name())
	}
	if len(removed) > 0 {
		m.logger.Info("filesystem checkpoints: removed leftover temporary files of interrupted writes", "dir", m.dir, "files", removed)
	}
}

// ownTemp reports whether name is a temporary file that atomicfile.WriteFile makes
// for a file of this job: ".tmp-" + the first 64 bytes of the file's name + "-" +
// digits. A name cut at 64 bytes is taken as the job's only when the job's file name
// prefix fits in them (the prefix ends with an unescaped "-", so no other job's files
// start with it); otherwise it is left alone.
func (m *Manager) ownTemp(name string) bool {
	const maxBase = 64 // atomicfile's cut
	rest, ok := strings.CutPrefix(name, atomicfile.TempPrefix)
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || i == len(rest)-1 || strings.Trim(rest[i+1:], "0123456789") != "" {
		return false
	}
	base := rest[:i]
	switch {
	case len(base) > maxBase:
		return false
	case len(base) < maxBase:
		return base == m.intentName() || strings.HasPrefix(base, m.prefix) && strings.HasSuffix(base, suffix)
	}
	return base == m.intentName() || len(m.prefix) <= maxBase && strings.HasPrefix(base, m.prefix)
}

// encodeIntent returns an intent file's content.
func encodeIntent(in intent) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in); err != nil {
		return nil, fmt.Errorf("encode the rewrite intent: %w", err)
	}
	return frame(intentMagic, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// decodeIntent checks and decodes an intent file of m's job: every document in it
// must be a valid checkpoint of its task.
func decodeIntent(b []byte, m *Manager) (intent, error) {
	payload, err := unframe(intentMagic, b)
	if err != nil {
		return intent{}, err
	}
	var in intent
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return intent{}, fmt.Errorf("not a rewrite intent: %w", err)
	}
	switch {
	case in.Version != FileVersion:
		return intent{}, fmt.Errorf("unsupported rewrite intent version %d (this build reads version %d)", in.Version, FileVersion)
	case in.Job != m.job || in.JobID != m.id:
		return intent{}, fmt.Errorf("the intent is for job %q id %q, not %q id %q", in.Job, in.JobID, m.job, m.id)
	}
	seen := make(map[string]bool, len(in.Tasks))
	for i, t := range in.Tasks {
		if seen[t.Task] {
			return intent{}, fmt.Errorf("tasks[%d]: task %q appears twice", i, t.Task)
		}
		seen[t.Task] = true
		if _, _, err := decodeFile(frame(magic, t.Document), t.Task); err != nil {
			return intent{}, fmt.Errorf("tasks[%d] (%q): %w", i, t.Task, err)
		}
		if t.Replaces != "" {
			if h, err := hex.DecodeString(t.Replaces); err != nil || len(h) != sha256.Size {
				return intent{}, fmt.Errorf("tasks[%d] (%q): bad replaces hash %q", i, t.Task, t.Replaces)
			}
		}
	}
	return in, nil
}

// fileHash is the hex SHA-256 of a file's content, "" for no file (nil).
func fileHash(b []byte) string {
	if b == nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// readIfExists returns a file's content, nil (and no error) when it does not exist.
func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("filesystem checkpoints: %w", err)
	case b == nil:
		return []byte{}, nil
	}
	return b, nil
}
