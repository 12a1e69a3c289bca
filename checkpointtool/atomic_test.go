package checkpointtool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/checkpointtool"
)

// atomicOutcome is a filesystem manager whose WriteAll fails with err, or writes
// (when err is nil) and records the calls of its after function.
type atomicOutcome struct {
	checkpoint.Manager
	err    error
	writes int
	calls  []string
}

func (m *atomicOutcome) LockForRewrite(ctx context.Context) (io.Closer, error) {
	return m.Manager.(*filesystem.Manager).LockForRewrite(ctx)
}

func (m *atomicOutcome) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	m.writes++
	return m.Manager.Write(ctx, task, cp)
}

func (m *atomicOutcome) WriteAll(ctx context.Context, cps []checkpoint.TaskCheckpoint, after func(string, int)) error {
	if m.err != nil {
		return m.err
	}
	return m.Manager.(checkpoint.AtomicWriter).WriteAll(ctx, cps, func(task string, n int) {
		m.calls = append(m.calls, fmt.Sprintf("%d %s", n, task))
		after(task, n)
	})
}

// TestApplyWritesAllOrNothing checks that a rewrite goes through the manager's
// WriteAll, with Options.AfterWrite, and what the tool says for each outcome of a
// failed one; a manager that cannot write all or nothing is written task by task.
func TestApplyWritesAllOrNothing(t *testing.T) {
	cause := errors.New("disk full")
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string // "" for success
		perTask bool   // written with Write, task by task
	}{
		{name: "written"},
		{name: "nothing written", err: fmt.Errorf("x: %w: %w", checkpoint.ErrNothingWritten, cause), wantErr: "nothing was written: every task holds its old checkpoint"},
		{name: "pending", err: fmt.Errorf("x: %w: %w", cause, checkpoint.ErrRewritePending), wantErr: "the next container or checkpoint tool started while the job is stopped finishes the rewrite"},
		{name: "unknown", err: fmt.Errorf("commit: %w", cause), wantErr: "whether it was written is unknown, but it is all or nothing"},
		{name: "unavailable", err: fmt.Errorf("x: %w: %w: %w", checkpoint.ErrNothingWritten, checkpoint.ErrAtomicUnavailable, cause), perTask: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var m *atomicOutcome
			f.wrap = func(cpm checkpoint.Manager) checkpoint.Manager {
				m = &atomicOutcome{Manager: cpm, err: tc.err}
				return m
			}
			before := f.stored(t)
			var after []string
			var stdout, stderr bytes.Buffer
			tool := checkpointtool.New(f.open(t), checkpointtool.Options{Stdout: &stdout, Stderr: &stderr,
				AfterWrite: func(task string, n int) { after = append(after, fmt.Sprintf("%d %s", n, task)) }})
			err := tool.Run(context.Background(), checkpointtool.Request{ResetTo: "oldest"})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, cause)):
				t.Fatalf("Run = %v, want an error saying %q and wrapping the cause", err, tc.wantErr)
			}
			want := "[1 Partition 0 2 Partition 1 3 Partition 2]"
			if tc.wantErr != "" {
				want = "[]"
			}
			if got := fmt.Sprint(after); got != want {
				t.Errorf("AfterWrite calls %s, want %s", got, want)
			}
			if tc.perTask != (m.writes > 0) || !tc.perTask && tc.err == nil && fmt.Sprint(m.calls) != want {
				t.Errorf("%d task-by-task writes, WriteAll after calls %q", m.writes, m.calls)
			}
			if tc.perTask && !strings.Contains(stderr.String(), "writing task by task instead") {
				t.Errorf("no warning about writing task by task:\n%s", stderr.String())
			}
			// The fake manager writes nothing when it fails.
			if after := f.stored(t); (tc.wantErr != "") != (after == before) {
				t.Errorf("stored checkpoints before:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
