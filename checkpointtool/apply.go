package checkpointtool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
)

// restoreTimeout bounds undoing a failed rewrite. Undoing does not stop when the
// caller's context is cancelled (an interrupted tool must not leave half a rewrite).
const restoreTimeout = 2 * time.Minute

// Apply writes the plan's checkpoints through the checkpoint manager, one task at a
// time, after printing the table of changes to Stdout. It writes nothing when the plan
// changes nothing (and says so on Stderr), with Options.DryRun, or when the job is
// running and Options.Force is not set (an error wrapping checkpoint.ErrJobRunning).
//
// With a manager that implements checkpoint.RewriteLocker, Apply holds the rewrite lock
// while it writes, so no container of the job can start meanwhile; Run holds it from
// before it reads the stored checkpoints to plan. Another tool holding the lock is an
// error wrapping checkpoint.ErrRewriting, even with Options.Force.
//
// The rewrite is all or nothing. A manager that implements checkpoint.AtomicWriter
// (both of Sluice's) stores every task's checkpoint or none, also when the tool is
// killed part way; a failure is an error saying which of the two it left. With any
// other manager, Apply writes one task at a time, and when the write of a task fails,
// the tasks already written get their old checkpoints back (see WriteError): Apply
// then returns a *WriteError saying what it did.
func (t *Tool) Apply(ctx context.Context, p *Plan) error {
	if _, err := t.manager(); err != nil {
		return err
	}
	var g *writeGuard
	if len(p.Changes) > 0 {
		g = t.guard(ctx)
		defer g.release(t)
	}
	return t.apply(ctx, p, g)
}

// writeGuard is what the tool found out about the job's containers before writing, and
// the rewrite lock it holds (nil when none).
type writeGuard struct {
	st   runState
	err  error
	lock io.Closer
}

// guard finds out whether the job is running. Unless this is a dry run, it takes the
// manager's rewrite lock when the manager has one (checkpoint.RewriteLocker), which
// also keeps containers from starting until release; otherwise it only checks.
func (t *Tool) guard(ctx context.Context) *writeGuard {
	if l, ok := t.m.Checkpoints.(checkpoint.RewriteLocker); ok && !t.opts.DryRun {
		lock, err := l.LockForRewrite(ctx)
		if err == nil {
			return &writeGuard{st: runStopped, lock: lock}
		}
		return &writeGuard{st: classifyRun(err), err: err}
	}
	st, err := t.runState(ctx)
	return &writeGuard{st: st, err: err}
}

// release lets containers start again.
func (g *writeGuard) release(t *Tool) {
	if g == nil || g.lock == nil {
		return
	}
	if err := g.lock.Close(); err != nil {
		t.warnf("releasing the rewrite lock: %v", err)
	}
	g.lock = nil
}

// apply is Apply under a guard taken by the caller (nil when the plan changes nothing).
func (t *Tool) apply(ctx context.Context, p *Plan, g *writeGuard) error {
	cpm, err := t.manager()
	if err != nil {
		return err
	}
	if len(p.Changes) == 0 {
		fmt.Fprintf(t.opts.Stderr, "no change: every offset of %s is already the task's stored offset; nothing was written\n", p.Source)
		return nil
	}
	st, err := g.st, g.err
	switch {
	case st == runRewriting && t.opts.DryRun:
		t.notef("%v: a real run would refuse to write until it is done", err)
	case st == runRewriting:
		return fmt.Errorf("refusing to write checkpoints: %w\n"+
			"wait until the other checkpoint tool is done and run the command again (--force does not override this)", err)
	case st == runRunning && t.opts.DryRun:
		t.notef("the job is running (%v): a real run would refuse to write without --force", err)
	case st == runRunning && !t.opts.Force:
		return fmt.Errorf("refusing to write checkpoints while the job is running: %w\n"+
			"stop every container of the job first: a running job reads its checkpoints only when it starts, and overwrites them at its next commit (--force writes anyway)", err)
	case st == runRunning:
		t.warnf("the job is running (%v); writing anyway (--force): its containers will overwrite these checkpoints at their next commit unless stopped before it", err)
	case err != nil && t.opts.DryRun:
		t.warnf("cannot tell whether the job is running: %v", err)
	case err != nil && !t.opts.Force:
		return fmt.Errorf("cannot tell whether the job is running, so nothing was written: %w\n(--force writes anyway)", err)
	case err != nil:
		t.warnf("cannot tell whether the job is running: %v; writing anyway (--force)", err)
	case st == runUnknown && !t.opts.DryRun:
		t.warnf("the %s checkpoint manager cannot tell whether the job is running: make sure every container of the job is stopped", t.m.Job.CheckpointFactory)
	}

	if err := t.table(p); err != nil {
		return err
	}
	n, m := len(p.Changes), len(p.tasks)
	if t.opts.DryRun {
		fmt.Fprintf(t.opts.Stderr, "dry run: %d %s of %d %s would change; nothing was written\n",
			n, plural(n, "offset", "offsets"), m, plural(m, "task", "tasks"))
		return nil
	}
	order := writeOrder(p)
	written := false
	if aw, ok := cpm.(checkpoint.AtomicWriter); ok {
		err := t.writeAll(ctx, aw, p, order)
		switch {
		case err == nil:
			written = true
		case errors.Is(err, checkpoint.ErrAtomicUnavailable):
			t.warnf("%v\nwriting task by task instead: a failed write is undone, but a tool killed part way leaves some tasks rewritten", err)
		default:
			return err
		}
	}
	if !written {
		for i, task := range order {
			if err := cpm.Write(ctx, task, p.writes[task]); err != nil {
				return t.undo(ctx, cpm, p, order[:i], task, order[i+1:], err)
			}
			if t.opts.AfterWrite != nil {
				t.opts.AfterWrite(task, i+1)
			}
		}
	}
	fmt.Fprintf(t.opts.Stderr, "wrote the checkpoints of %d %s (%d %s changed): %s\nthe job starts from them the next time it starts\n",
		m, plural(m, "task", "tasks"), n, plural(n, "offset", "offsets"), strings.Join(p.tasks, ", "))
	return nil
}

// writeAll writes the plan's checkpoints all or nothing, and explains a failure by
// what it left: every old checkpoint, every new one once the job next starts, or one
// of the two without knowing which.
func (t *Tool) writeAll(ctx context.Context, aw checkpoint.AtomicWriter, p *Plan, order []string) error {
	cps := make([]checkpoint.TaskCheckpoint, 0, len(order))
	for _, task := range order {
		cps = append(cps, checkpoint.TaskCheckpoint{Task: task, Checkpoint: p.writes[task]})
	}
	err := aw.WriteAll(ctx, cps, t.opts.AfterWrite)
	n := len(order)
	what := fmt.Sprintf("writing the checkpoints of %d %s all or nothing failed", n, plural(n, "task", "tasks"))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, checkpoint.ErrAtomicUnavailable):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, checkpoint.ErrNothingWritten):
		return fmt.Errorf("%s: %w\nnothing was written: every task holds its old checkpoint\nfix the cause and run the command again", what, err)
	case errors.Is(err, checkpoint.ErrRewritePending):
		return fmt.Errorf("%s: %w\nthe new checkpoints are committed, but not all are written yet: the next container or checkpoint tool started while the job is stopped finishes the rewrite, and every task then holds its new offsets", what, err)
	}
	return fmt.Errorf("%s: %w\nwhether it was written is unknown, but it is all or nothing: print the checkpoints to see whether every task holds its new offsets or every task its old ones", what, err)
}

// writeOrder is the order Apply writes the plan's tasks in: tasks whose stored
// checkpoint is corrupt last, because that checkpoint cannot be written back if a later
// write fails.
func writeOrder(p *Plan) []string {
	order := slices.Clone(p.tasks)
	slices.SortStableFunc(order, func(a, b string) int {
		ca, cb := p.priors[a].corrupt, p.priors[b].corrupt
		switch {
		case ca == cb:
			return 0
		case cb:
			return -1
		}
		return 1
	})
	return order
}

// undo puts back the old checkpoints of the tasks written before the write of failed
// failed with cause, and of failed itself (a write that reports failure, such as a
// Kafka produce that timed out, may still have been stored). It returns the
// *WriteError that reports it all.
func (t *Tool) undo(ctx context.Context, cpm checkpoint.Manager, p *Plan, written []string, failed string, notWritten []string, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	we := &WriteError{Failed: failed, Err: cause, NotWritten: slices.Clone(notWritten)}
	for _, task := range append(slices.Clone(written), failed) {
		pr := p.priors[task]
		how, err := t.restore(rctx, cpm, task, pr)
		switch {
		case err == nil && task == failed:
			we.FailedRestored = how
		case err == nil:
			we.Restored = append(we.Restored, Restored{Task: task, How: how})
		case task == failed:
			we.FailedRestoreErr = err
		default:
			we.LeftChanged = append(we.LeftChanged, Unrestored{
				Task: task, HadNone: !pr.had && !pr.corrupt, Corrupt: pr.corrupt, Old: pr.offsets, Path: t.checkpointPath(task), Err: err,
			})
		}
	}
	return we
}

// restore writes task's prior checkpoint back and says how.
func (t *Tool) restore(ctx context.Context, cpm checkpoint.Manager, task string, pr prior) (RestoreHow, error) {
	switch {
	case pr.corrupt:
		return 0, errors.New("its old checkpoint was corrupt, so it cannot be written back")
	case pr.had:
		return RestoredOld, cpm.Write(ctx, task, checkpoint.New(pr.offsets))
	}
	if d, ok := cpm.(checkpoint.Deleter); ok {
		return RestoredDeleted, d.Delete(ctx, task)
	}
	// A checkpoint without partitions starts every partition at its default, exactly
	// as no checkpoint does.
	return RestoredEmpty, cpm.Write(ctx, task, checkpoint.New(nil))
}

// checkpointPath returns where the manager keeps task's checkpoint, when it is a file.
func (t *Tool) checkpointPath(task string) string {
	if pm, ok := t.m.Checkpoints.(interface{ Path(string) string }); ok {
		return pm.Path(task)
	}
	return ""
}

// table prints the plan's changes to Stdout, one line per partition.
func (t *Tool) table(p *Plan) error {
	tw := tabwriter.NewWriter(t.opts.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tPARTITION\tOLD\tNEW")
	for _, c := range p.Changes {
		old, nw := c.Old, c.New
		switch {
		case c.Corrupt:
			old = "(corrupt)"
		case old == "":
			old = "(none)"
		}
		if nw == "" {
			nw = "(removed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Task, c.SSP, old, nw)
	}
	return tw.Flush()
}
