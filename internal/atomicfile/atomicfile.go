// Package atomicfile replaces files atomically and durably.
//
// WriteFile is the one audited way Sluice replaces a file whose loss or tearing would
// lose data (checkpoints): after it returns nil, a reader sees either the old file or
// the new one in full, never a mixture, and the new one survives a crash of the
// process or the machine.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file WriteFile creates, so that
// directory listings can tell them from real files. A temporary file left behind by a
// crash is named TempPrefix + the base name of the target (cut to at most
// maxTempBase bytes) + "-" + random digits.
const TempPrefix = ".tmp-"

// maxTempBase bounds the part of the target's name copied into a temporary file's
// name, so that a target whose name is near the file system's limit (255 bytes) still
// gets a temporary file name under the limit.
const maxTempBase = 64

// WriteFile replaces path with data, atomically and durably. It writes data to a new
// temporary file in the same directory, sets its permissions to perm (exactly, without
// the umask), syncs it, renames it over path and syncs the directory. On failure the
// temporary file is removed and path keeps its old content (unless the failure is
// the final directory sync, after which path may hold either content).
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if base == "" {
		return fmt.Errorf("atomicfile: write %s: no file name", path)
	}
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, TempPrefix+base[:min(len(base), maxTempBase)]+"-*")
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close()
		}
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("atomicfile: remove temporary file: %w", rmErr))
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: write %s: sync: %w", path, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		// The rename happened: there is no temporary file left to remove.
		return fmt.Errorf("atomicfile: write %s: sync directory: %w", path, err)
	}
	return nil
}

// Remove removes path durably: it removes the file and syncs its directory, so the
// removal survives a crash. A path that does not exist is not an error (the directory
// is synced all the same, in case an earlier removal was not).
func Remove(path string) error {
	dir := filepath.Dir(path)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("atomicfile: remove %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: remove %s: sync directory: %w", path, err)
	}
	return nil
}

// MkdirAll creates dir and any missing parents, like os.MkdirAll, and makes each
// creation durable: it syncs the parent of every directory it creates, so that a crash
// of the machine does not take away a directory (and the files in it) that MkdirAll
// reported as created. A dir that exists already is not an error.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("atomicfile: mkdir %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("atomicfile: mkdir %s: %w", dir, err)
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, perm); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("atomicfile: mkdir %s: %w", dir, err)
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("atomicfile: mkdir %s: sync %s: %w", dir, filepath.Dir(d), err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
