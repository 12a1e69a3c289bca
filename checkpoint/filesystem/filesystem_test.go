package filesystem_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/checkpointtest"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/system"
)

const (
	job = "page-views"
	id  = "1"
)

func newManager(t *testing.T, dir string) *filesystem.Manager {
	t.Helper()
	m, err := filesystem.New(dir, job, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func started(t *testing.T, dir string) *filesystem.Manager {
	t.Helper()
	m := newManager(t, dir)
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestConformance(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpointtest.Harness {
		dir := filepath.Join(t.TempDir(), "checkpoints") // Start creates it
		return checkpointtest.Harness{
			Open: func() (checkpoint.Manager, error) { return filesystem.New(dir, job, id) },
			Corrupt: func(t *testing.T, task string) {
				path := newManager(t, dir).Path(task)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-3] ^= 0x20 // inside the document: the checksum no longer matches
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct{ dir, job, id, want string }{
		{"", job, id, "empty directory"},
		{"d", "", id, "empty job name"},
		{"d", job, "", "empty job id"},
		{"d", strings.Repeat("j", 230), id, "over the 255-byte limit"},
	} {
		m, err := filesystem.New(tt.dir, tt.job, tt.id)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %q, %q) = %v, %v; want an error saying %q", tt.dir, tt.job, tt.id, m, err, tt.want)
		}
	}
	_, err := filesystem.New("", "", "")
	if err == nil || strings.Count(err.Error(), "empty") != 3 {
		t.Errorf("New with three bad arguments = %v, want all three reported", err)
	}
}

func TestLongestAllowedJobNameWorks(t *testing.T) {
	// The longest job name New accepts still gives file names the file system takes,
	// for the longest task name a container makes.
	long := strings.Repeat("j", 200)
	for len(long) < 255 {
		if _, err := filesystem.New("d", long+"j", "1"); err != nil {
			break
		}
		long += "j"
	}
	m, err := filesystem.New(t.TempDir(), long, "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cp := checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "in", 0): "5"})
	if err := m.Write(t.Context(), "Partition 2147483647", cp); err != nil {
		t.Fatalf("write with a %d-byte job name: %v", len(long), err)
	}
}

func TestNewTouchesNoDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	m := newManager(t, dir)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New created %s (stat: %v)", dir, err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("Start did not create %s: %v", dir, err)
	}
}

func TestStartOnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := newManager(t, path).Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Start on a regular file = %v, want an error naming %s", err, path)
	}
}

func TestUseBeforeStartAndAfterClose(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir)
	ctx := t.Context()
	cp := checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "s", 0): "1"})
	if err := m.Write(ctx, "t", cp); err == nil {
		t.Error("Write before Start succeeded")
	}
	if _, err := m.Read(ctx, "t"); err == nil || errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Errorf("Read before Start = %v, want a plain error", err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Write(ctx, "t", cp); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := m.Tasks(ctx); err == nil {
		t.Error("Tasks after Close succeeded")
	}
	if err := m.Start(ctx); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestFileName(t *testing.T) {
	m, err := filesystem.New("/var/sluice", "page-views", "a/1")
	if err != nil {
		t.Fatal(err)
	}
	for task, want := range map[string]string{
		"Partition 0": "/var/sluice/page%2Dviews-a%2F1-Partition%200.checkpoint",
		"x-y":         "/var/sluice/page%2Dviews-a%2F1-x%2Dy.checkpoint",
		"A.b_9":       "/var/sluice/page%2Dviews-a%2F1-A.b_9.checkpoint",
		"100%/é":      "/var/sluice/page%2Dviews-a%2F1-100%25%2F%C3%A9.checkpoint",
	} {
		if got := m.Path(task); got != want {
			t.Errorf("Path(%q) = %s, want %s", task, got, want)
		}
	}
	if got, want := m.LockPath(), "/var/sluice/page%2Dviews-a%2F1.lock"; got != want {
		t.Errorf("LockPath() = %s, want %s", got, want)
	}
}

func TestFileFormat(t *testing.T) {
	m := started(t, t.TempDir())
	cp := checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "PageViewEvent", 0): "1234"})
	if err := m.Write(t.Context(), "Partition 0", cp); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(m.Path("Partition 0"))
	if err != nil {
		t.Fatal(err)
	}
	header, rest, _ := bytes.Cut(b, []byte("\n"))
	doc, ok := bytes.CutSuffix(rest, []byte("\n"))
	if !ok {
		t.Fatalf("file does not end in a newline: %q", b)
	}
	want := fmt.Sprintf("sluice-checkpoint 1 crc32c=%08x len=%d", crc32.Checksum(doc, crc32.MakeTable(crc32.Castagnoli)), len(doc))
	if string(header) != want {
		t.Errorf("header %q, want %q", header, want)
	}
	d, got, err := checkpoint.Decode(doc)
	if err != nil {
		t.Fatalf("payload does not decode: %v\n%s", err, doc)
	}
	if d.Task != "Partition 0" || !got.Equal(cp) || d.CheckpointID == "" || d.Timestamp.IsZero() {
		t.Errorf("payload %s does not hold the checkpoint written", doc)
	}
	// Checkpoint ids are unique per manager even within one millisecond.
	if err := m.Write(t.Context(), "Partition 0", cp); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(m.Path("Partition 0"))
	_, rest2, _ := bytes.Cut(b2, []byte("\n"))
	d2, _, err := checkpoint.Decode(bytes.TrimSuffix(rest2, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	if d2.CheckpointID == d.CheckpointID {
		t.Errorf("two writes got the same checkpoint id %s", d.CheckpointID)
	}
}

// TestTornFile damages a checkpoint file in the ways a torn write, a bad disk or a
// careless edit would, and checks that Read reports a CorruptError naming the file
// (never ErrNoCheckpoint) and that other tasks are unaffected.
func TestTornFile(t *testing.T) {
	cp := checkpoint.New(map[system.SystemStreamPartition]string{
		system.NewSSP("kafka", "PageViewEvent", 0): "1234",
		system.NewSSP("kafka", "Clicks", 0):        "99",
	})
	for _, tt := range []struct {
		name   string
		damage func(b, other []byte) []byte
		why    string
	}{
		{"TruncatedToHalf", func(b, _ []byte) []byte { return b[:len(b)/2] }, "torn"},
		{"LastByteMissing", func(b, _ []byte) []byte { return b[:len(b)-1] }, "torn"},
		{"Empty", func(b, _ []byte) []byte { return nil }, "empty file"},
		{"TrailingGarbage", func(b, _ []byte) []byte { return append(b, "x\n"...) }, "torn"},
		{"FlippedDocumentByte", func(b, _ []byte) []byte { b[len(b)-10] ^= 1; return b }, "checksum mismatch"},
		{"FlippedChecksum", func(b, _ []byte) []byte {
			i := bytes.Index(b, []byte("crc32c=")) + len("crc32c=")
			if b[i] == '0' {
				b[i] = '1'
			} else {
				b[i] = '0'
			}
			return b
		}, "checksum mismatch"},
		{"UpperCaseChecksum", func(b, _ []byte) []byte {
			return bytes.Replace(b, []byte("crc32c="), []byte("crc32c=FFFFFFFF"), 1)
		}, "crc32c"},
		{"FutureVersion", func(b, _ []byte) []byte {
			return bytes.Replace(b, []byte("sluice-checkpoint 1 "), []byte("sluice-checkpoint 2 "), 1)
		}, "version"},
		{"NotACheckpoint", func(b, _ []byte) []byte { return []byte("hello\nworld\n") }, "not a sluice checkpoint file"},
		{"OtherTask", func(_, other []byte) []byte {
			return other // a well-formed file of another task copied over this one
		}, `not "Partition 0"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m := started(t, dir)
			if err := m.Write(t.Context(), "Partition 0", cp); err != nil {
				t.Fatal(err)
			}
			if err := m.Write(t.Context(), "Partition 1", cp); err != nil {
				t.Fatal(err)
			}
			other, err := os.ReadFile(m.Path("Partition 1"))
			if err != nil {
				t.Fatal(err)
			}
			path := m.Path("Partition 0")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tt.damage(bytes.Clone(b), other)
			if bytes.Equal(damaged, b) {
				t.Fatal("the damage changed nothing")
			}
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			m2 := started(t, dir)
			_, err = m2.Read(t.Context(), "Partition 0")
			var ce *checkpoint.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Read = %v, want a *checkpoint.CorruptError", err)
			}
			if ce.Where != path {
				t.Errorf("CorruptError.Where = %q, want %q", ce.Where, path)
			}
			if !errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, checkpoint.ErrNoCheckpoint) {
				t.Errorf("Read error %v: want ErrCorrupt and not ErrNoCheckpoint", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Read error %q does not name %s and say %q", err, path, tt.why)
			}
			if got, err := m2.Read(t.Context(), "Partition 1"); err != nil || !got.Equal(cp) {
				t.Errorf("Read of the undamaged task = %v, %v", got.Offsets, err)
			}
			// Writing a new checkpoint repairs the task.
			if err := m2.Write(t.Context(), "Partition 0", cp); err != nil {
				t.Fatal(err)
			}
			if got, err := m2.Read(t.Context(), "Partition 0"); err != nil || !got.Equal(cp) {
				t.Errorf("Read after rewrite = %v, %v", got.Offsets, err)
			}
		})
	}
}

func TestUnreadableIsNotNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	m := started(t, dir)
	// A directory where the file should be: an I/O error, not "no checkpoint".
	if err := os.Mkdir(m.Path("Partition 0"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := m.Read(t.Context(), "Partition 0")
	if err == nil || errors.Is(err, checkpoint.ErrNoCheckpoint) || !strings.Contains(err.Error(), m.Path("Partition 0")) {
		t.Fatalf("Read = %v, want an I/O error naming the file", err)
	}
}

func TestWriteRefusesUnreadable(t *testing.T) {
	dir := t.TempDir()
	m := started(t, dir)
	for name, cp := range map[string]checkpoint.Checkpoint{
		"empty offset":       checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "s", 0): ""}),
		"negative partition": checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "s", -1): "1"}),
		"empty stream":       checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "", 0): "1"}),
		"invalid UTF-8":      checkpoint.New(map[system.SystemStreamPartition]string{system.NewSSP("kafka", "s\xff", 0): "1"}),
	} {
		if err := m.Write(t.Context(), "Partition 0", cp); err == nil {
			t.Errorf("Write of a checkpoint with %s succeeded", name)
		}
	}
	if err := m.Write(t.Context(), "bad \xff task", checkpoint.Checkpoint{}); err == nil {
		t.Error("Write for a task name that is not UTF-8 succeeded")
	}
	if err := m.Write(t.Context(), "", checkpoint.Checkpoint{}); err == nil {
		t.Error("Write for an empty task name succeeded")
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("refused writes left files: %v", des)
	}
}

func TestTasksIgnoresForeignFiles(t *testing.T) {
	dir := t.TempDir()
	m := started(t, dir)
	cp := checkpoint.Checkpoint{}
	for _, task := range []string{"Partition 0", "Partition 1"} {
		if err := m.Write(t.Context(), task, cp); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range [][2]string{{job, "2"}, {job + "-x", id}, {"page", "views-1"}} {
		o, err := filesystem.New(dir, j[0], j[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := o.Write(t.Context(), "Partition 9", cp); err != nil {
			t.Fatal(err)
		}
	}
	prefix := "page%2Dviews-1-"
	for _, name := range []string{
		".tmp-" + prefix + "Partition%202.checkpoint-12345", // a crashed write
		prefix + "Partition%203.checkpoint.bak",
		prefix + "Partition%2x.checkpoint",  // bad escape
		prefix + "Partition%2d4.checkpoint", // lower-case escape
		prefix + "Partition 5.checkpoint",   // unescaped
		prefix + "%50artition6.checkpoint",  // needless escape
		prefix + ".checkpoint",              // empty task
		"page%2Dviews-1.lock",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, prefix+"dir.checkpoint"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := m.Tasks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Partition 0", "Partition 1"}; !slices.Equal(got, want) {
		t.Errorf("Tasks = %q, want %q", got, want)
	}
}

func TestRunLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	m := newManager(t, dir)
	// No container ever ran: not running, and the check creates nothing.
	if err := m.CheckNotRunning(); err != nil {
		t.Fatalf("CheckNotRunning before any run: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckNotRunning created %s", dir)
	}

	// Two containers of the job share the lock.
	l1, err := m.AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := newManager(t, dir).AcquireRunLock(t.Context(), checkpoint.Container{ID: 1, Count: 2})
	if err != nil {
		t.Fatalf("second container's AcquireRunLock: %v", err)
	}
	err = newManager(t, dir).CheckNotRunning()
	if !errors.Is(err, checkpoint.ErrJobRunning) || !strings.Contains(err.Error(), m.LockPath()) {
		t.Fatalf("CheckNotRunning with two containers = %v, want ErrJobRunning naming %s", err, m.LockPath())
	}

	// Another job in the same directory is not affected.
	other, err := filesystem.New(dir, job, "2")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CheckNotRunning(); err != nil {
		t.Errorf("CheckNotRunning of another job id: %v", err)
	}

	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckNotRunning(); !errors.Is(err, checkpoint.ErrJobRunning) {
		t.Fatalf("CheckNotRunning with one container left = %v, want ErrJobRunning", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.CheckNotRunning(); err != nil {
		t.Fatalf("CheckNotRunning after every container stopped: %v", err)
	}
	// The check released its lock: a container can start again.
	l3, err := m.AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
	if err != nil {
		t.Fatalf("AcquireRunLock after a check: %v", err)
	}
	if err := l3.Close(); err != nil {
		t.Fatal(err)
	}
}
