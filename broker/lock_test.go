//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDataDirIsLocked starts a second broker on a directory a first one serves: it is
// refused, with an error naming the directory and the first one's process ID, and
// changes nothing; once the first one is closed, another broker takes the directory.
func TestDataDirIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})
	lockFile := filepath.Join(dir, LockFile)
	if pid, err := os.ReadFile(lockFile); err != nil || string(pid) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("%s holds %q, %v; want this process's ID", lockFile, pid, err)
	}
	cl, _ := client(t, b.Addr(), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	second, err := New(Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start()
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Start = %v; want ErrDataDirInUse naming %s and process %d", err, dir, os.Getpid())
	}
	if second.Addr() != "" {
		t.Errorf("refused broker has address %q", second.Addr())
	}
	second.Close()
	// The refused broker released nothing of the first one's.
	if pid, _ := os.ReadFile(lockFile); string(pid) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("after the refused start, %s holds %q", lockFile, pid)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "t", Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatalf("first broker after the refused start: %v", err)
	}
	cl.Close()

	b.Close()
	if pid, err := os.ReadFile(lockFile); err != nil || len(pid) != 0 {
		t.Errorf("after Close, %s holds %q, %v; want it empty", lockFile, pid, err)
	}
	b2 := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})
	_, adm := client(t, b2.Addr())
	ends, err := adm.ListEndOffsets(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("t", 0); o.Offset != 2 {
		t.Errorf("after a clean handover, t holds %d records, want 2", o.Offset)
	}
}

// TestFailedStartReleasesTheDataDir: a start that cannot bind its address leaves the
// directory free for the next broker.
func TestFailedStartReleasesTheDataDir(t *testing.T) {
	busy := start(t, Options{Listen: "127.0.0.1:0"})
	dir := t.TempDir()
	b, err := New(Options{Listen: busy.Addr(), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err == nil || errors.Is(err, ErrDataDirInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a busy address = %v, want an error wrapping EADDRINUSE", err)
	}
	start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})
}
