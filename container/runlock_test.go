package container_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// syncLog is a log destination that tests may read while the container writes it.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStatusLineNamesMissingPeers: container 0 of a three-container job, with
// container 2 running and container 1 not, says so in its status line.
func TestStatusLineNamesMissingPeers(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 3, 10)
	e.tasks["test"] = copyTo("", nil, nil)
	dir := t.TempDir()
	peer, err := filesystem.New(dir, "test-job", "1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := peer.AcquireRunLock(t.Context(), checkpoint.Container{ID: 2, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	logs := &syncLog{}
	c, err := e.container(baseConfig("job.container.count", "3", "task.checkpoint.factory", "fs"), func(o *container.Options) {
		o.ContainerID = 0
		o.StatusInterval = 20 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Checkpoints["fs"] = func(*job.Config, map[string]system.System, *slog.Logger) (checkpoint.Manager, error) {
			return filesystem.New(dir, "test-job", "1")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	status := regexp.MustCompile(`msg=status .*`)
	deadline := time.Now().Add(10 * time.Second)
	var line string
	for line == "" && time.Now().Before(deadline) {
		line = status.FindString(logs.String())
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if line == "" {
		t.Fatalf("no status line:\n%s", logs)
	}
	if !strings.Contains(line, "peers_missing=1 ") && !strings.HasSuffix(line, "peers_missing=1") {
		t.Errorf("status line %q does not say that container 1 (only) is missing", line)
	}
}

// fencingManager hands out a run lock that the test can take away.
type fencingManager struct {
	*memManager
	lock *testLock
}

func (m fencingManager) AcquireRunLock(_ context.Context, c checkpoint.Container) (checkpoint.RunLock, error) {
	m.lock.c = c
	return m.lock, nil
}

type testLock struct {
	c      checkpoint.Container
	lost   chan struct{}
	err    atomic.Pointer[error]
	closed atomic.Bool
}

func (l *testLock) Lost() <-chan struct{} { return l.lost }

func (l *testLock) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *testLock) Peers(context.Context) ([]int, error) { return []int{l.c.ID}, nil }
func (l *testLock) Close() error                         { l.closed.Store(true); return nil }

func (l *testLock) fence(err error) {
	l.err.Store(&err)
	close(l.lost)
}

// TestFencedContainerStops: a container whose run lock is lost (another process took
// the container over) stops processing and fails with the lock's error.
func TestFencedContainerStops(t *testing.T) {
	const perPartition = 2000
	e := newEnv(t)
	e.stream("in", 2, perPartition)
	var processed atomic.Int64
	first := make(chan struct{})
	var once sync.Once
	e.tasks["test"] = copyTo("", nil, func(system.IncomingEnvelope, task.Coordinator) error {
		processed.Add(1)
		once.Do(func() { close(first) })
		time.Sleep(time.Millisecond)
		return nil
	})
	lock := &testLock{lost: make(chan struct{})}
	c, err := e.container(baseConfig("task.checkpoint.factory", "fencing"), func(o *container.Options) {
		o.Checkpoints["fencing"] = func(*job.Config, map[string]system.System, *slog.Logger) (checkpoint.Manager, error) {
			return fencingManager{memManager: e.mgr, lock: lock}, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	<-first
	fenced := time.Now()
	lock.fence(fmt.Errorf("container 0 was taken over by process 7 on host h: %w", checkpoint.ErrFenced))
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the container still runs 10 s after its run lock was lost")
	}
	if !errors.Is(err, checkpoint.ErrFenced) || !strings.Contains(err.Error(), "lost the run lock") || !strings.Contains(err.Error(), "process 7 on host h") {
		t.Fatalf("Run = %v, want an error saying the run lock was lost, naming the other process", err)
	}
	if d := time.Since(fenced); d > 2*time.Second {
		t.Errorf("the container took %v to stop", d)
	}
	if n := processed.Load(); n >= 2*perPartition {
		t.Errorf("processed all %d messages: it did not stop", n)
	}
	if !lock.closed.Load() {
		t.Error("the lost lock was not closed")
	}
	// Its final commit would overwrite the checkpoints of the process that runs the
	// container now.
	if e.mgr.writes != 0 {
		t.Errorf("a fenced container wrote %d checkpoints on its way out", e.mgr.writes)
	}
}
