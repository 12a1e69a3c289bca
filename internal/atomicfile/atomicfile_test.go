package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/atomicfile"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	for _, name := range entries(t, dir) {
		if strings.HasPrefix(name, atomicfile.TempPrefix) {
			t.Errorf("temporary file %s left behind in %s", name, dir)
		}
	}
}

func assertContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
}

func TestWriteFileCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	if err := atomicfile.WriteFile(path, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, "hello")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q, want only a.txt", got)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	for _, content := range []string{"first, the longer content", "second", ""} {
		if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		assertContent(t, path, content)
	}
	assertNoTemp(t, dir)
}

func TestWriteFileRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := atomicfile.WriteFile("rel.txt", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertContent(t, filepath.Join(dir, "rel.txt"), "x")
	assertNoTemp(t, dir)
}

func TestWriteFileLongName(t *testing.T) {
	// A target name at the usual 255-byte limit must not fail because the
	// temporary file's name would be longer still.
	dir := t.TempDir()
	path := filepath.Join(dir, strings.Repeat("n", 255))
	if err := atomicfile.WriteFile(path, []byte("long"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, "long")
	assertNoTemp(t, dir)
}

func TestWriteFileMissingParent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "a.txt")
	err := atomicfile.WriteFile(path, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q, want nothing", got)
	}
}

func TestWriteFileNoName(t *testing.T) {
	dir := t.TempDir()
	if err := atomicfile.WriteFile(dir+string(filepath.Separator), []byte("x"), 0o644); err == nil {
		t.Fatal("writing to a directory path ending in a separator succeeded")
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q, want nothing", got)
	}
}

// TestWriteFileFailedRename makes the rename fail after the temporary file was
// written (the target is a non-empty directory) and checks that the target is intact
// and the temporary file is gone.
func TestWriteFileFailedRename(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(target, "keep")
	if err := os.WriteFile(inner, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.WriteFile(target, []byte("new"), 0o644)
	if err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	if !strings.Contains(err.Error(), target) {
		t.Errorf("error %q does not name %s", err, target)
	}
	assertContent(t, inner, "old")
	assertNoTemp(t, dir)
}

// TestWriteFileReadOnlyDir checks that a write that cannot create its temporary file
// leaves the old file intact. Root ignores directory permissions, so it is skipped
// there.
func TestWriteFileReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	if err := atomicfile.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	err := atomicfile.WriteFile(path, []byte("new"), 0o644)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("err = %v, want one wrapping fs.ErrPermission", err)
	}
	assertContent(t, path, "old")
	assertNoTemp(t, dir)
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	if err := atomicfile.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: stat %v, want not exist", err)
	}
	if err := atomicfile.Remove(path); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if err := atomicfile.Remove(filepath.Join(dir, "no-such-dir", "a.txt")); err == nil {
		t.Error("Remove in a missing directory: no error (the directory cannot be synced)")
	}
}

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("stat %s = %v, %v; want a directory", dir, fi, err)
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("MkdirAll of an existing directory = %v", err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.MkdirAll(filepath.Join(file, "sub"), 0o755); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("MkdirAll under a file = %v, want an error saying it is not a directory", err)
	}
}
