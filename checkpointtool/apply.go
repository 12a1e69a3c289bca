package checkpointtool

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
)

// Apply writes the plan's checkpoints through the checkpoint manager, one task at a
// time, after printing the table of changes to Stdout. It writes nothing when the plan
// changes nothing (and says so on Stderr), with Options.DryRun, or when the job is
// running and Options.Force is not set (an error wrapping checkpoint.ErrJobRunning). A
// write that fails part way returns a *PartialWriteError naming the tasks written and
// not written.
func (t *Tool) Apply(ctx context.Context, p *Plan) error {
	cpm, err := t.manager()
	if err != nil {
		return err
	}
	if len(p.Changes) == 0 {
		fmt.Fprintf(t.opts.Stderr, "no change: every offset of %s is already the task's stored offset, or, for a partition without a checkpoint, its default starting offset; nothing was written\n", p.Source)
		return nil
	}
	st, err := t.runState(ctx)
	switch {
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
	for i, task := range p.tasks {
		if err := cpm.Write(ctx, task, p.writes[task]); err != nil {
			return &PartialWriteError{Written: p.tasks[:i], Failed: task, NotWritten: p.tasks[i+1:], Err: err}
		}
	}
	fmt.Fprintf(t.opts.Stderr, "wrote the checkpoints of %d %s (%d %s changed): %s\nthe job starts from them the next time it starts\n",
		m, plural(m, "task", "tasks"), n, plural(n, "offset", "offsets"), strings.Join(p.tasks, ", "))
	return nil
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
