// Package checkpointtool prints and rewrites the checkpoints of a job: the logic of
// `sluice checkpoint-tool` as a library, with no flags, no globals and no os.Exit. It
// works on a *jobmodel.Model, which gives the job's tasks, the partitions each reads,
// their current offsets and the started checkpoint manager.
//
// # Printing
//
// Tool.Print writes the latest checkpoint of every task of the job to Options.Stdout as
// a Java properties file, sorted by task (Partition 2 before Partition 10) then by
// partition, one line per partition a task reads:
//
//	tasknames.Partition\ 0.systems.kafka.streams.PageViewEvent.partitions.0=1234
//
// Each offset is the offset of the NEXT message the task reads (Kafka's committed-offset
// convention, not Samza's last-processed one): 0 replays a partition from its start.
// Partitions without a checkpoint yet are listed with the offsets the job would start
// them at now (samza.offset.default), after "#" comment lines that say so and that
// writing them back stores them. Nothing else
// goes to Stdout; notes and warnings go to Options.Stderr. A stored checkpoint that
// cannot be decoded is an error naming it, and nothing is printed.
//
// # Rewriting
//
// Tool.PlanFile reads a file of the same form (typically the printed one, edited) and
// validates every entry against the job before anything is written; Tool.PlanReset
// computes offsets from the system (oldest, upcoming, or the first message at or after
// a time). Tool.Apply writes a plan through the checkpoint manager, all or nothing:
// with a checkpoint.AtomicWriter (filesystem: an intent file; Kafka: one
// transaction) every task gets its new checkpoint or none does, even when the tool is
// killed part way; with other managers it writes one task at a time, and when a write
// fails, it puts back the old checkpoints of the tasks already written (a *WriteError
// says what it did). Tool.Run does all of it for a Request.
//
// An entry equal to the stored offset is no change, so the printed file fed back
// unchanged writes nothing for the partitions that have a checkpoint. An entry for a
// partition without a checkpoint is always written, even when it equals the offset the
// job would start it at by default now: an explicit offset pins the partition (with an
// upcoming default, the job would otherwise start at whatever the end is when it
// starts, skipping what was published in between). By default the entries are
// merged into the stored checkpoints (partitions not named keep their offsets); with
// Request.Replace, each task named gets exactly the file's partitions.
//
// Validation reports every problem at once, each naming the file, line and key: a key
// not of the form tasknames.<task>.systems.<system>.streams.<stream>.partitions.<p>
// (split by matching the job's own task and stream names, so both may contain dots), an
// unknown task, a partition the task does not read, a duplicate, an empty, negative or
// malformed offset (as the system's Admin judges it), a number not written plainly
// ("+5" or "007" for 5 or 7, as partition numbers in keys), and an offset outside the range
// the system still retains, [oldest, upcoming] — refused unless Options.Force, which
// makes it a warning. The one exception is offset 0 before the oldest retained offset of
// a stream whose out-of-range policy (consumer.auto.offset.reset) is oldest: it means
// "from the beginning" and the job starts at the oldest retained message, so it is
// accepted with a note.
//
// Writing is refused while the checkpoint manager can tell that the job is running
// (a container holds its run lock), unless Options.Force: a running job overwrites the
// checkpoints at its next commit and reads them only at start. A manager that
// implements checkpoint.RewriteLocker is locked from before the stored checkpoints are
// read until the last write, so no container can start in between (it fails to take
// its run lock, with an error saying the checkpoint tool is rewriting).
package checkpointtool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/config/properties"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
)

// Options says how the tool behaves.
type Options struct {
	// Stdout receives the printed checkpoints, or the table of changes when writing.
	Stdout io.Writer
	// Stderr receives notes, warnings and the outcome of writes. Errors are returned,
	// not written.
	Stderr io.Writer
	// ConfigPath is the job's configuration as the user named it; the printed header
	// shows it in the command that feeds the file back. Empty shows "PATH".
	ConfigPath string
	// Force writes while the job is running, and writes offsets outside the retained
	// range, each with a warning instead of a refusal.
	Force bool
	// DryRun shows what would change and writes nothing.
	DryRun bool
	// AfterWrite, if set, is called during a rewrite after the new checkpoint of each
	// task is stored, with the task and how many tasks are stored so far. With a
	// manager that stores a rewrite all or nothing (checkpoint.AtomicWriter), the
	// checkpoints are not visible to readers yet when it is called.
	AfterWrite func(task string, n int)
}

// Request says what the tool is to do. The zero Request prints the checkpoints.
type Request struct {
	// NewOffsets names a properties file (a path or a file:// URL) of offsets to write.
	NewOffsets string
	// Replace makes each task named in NewOffsets hold exactly the file's partitions,
	// instead of merging the file into its stored checkpoint.
	Replace bool
	// ResetTo is "oldest", "upcoming" or an RFC 3339 time: every task's partitions are
	// set to that offset of the system. Mutually exclusive with NewOffsets.
	ResetTo string
	// Streams limits ResetTo to these input streams, as system.stream.
	Streams []string
}

// Check reports a request that makes no sense, wrapping ErrBadInput.
func (r Request) Check() error {
	var errs []string
	if r.NewOffsets != "" && r.ResetTo != "" {
		errs = append(errs, "--new-offsets and --reset-to cannot be used together")
	}
	if r.Replace && r.NewOffsets == "" {
		errs = append(errs, "--replace needs --new-offsets")
	}
	if len(r.Streams) > 0 && r.ResetTo == "" {
		errs = append(errs, "--streams needs --reset-to")
	}
	if r.ResetTo != "" {
		if _, err := ParseResetTarget(r.ResetTo); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, s := range r.Streams {
		if _, err := system.ParseSystemStream(s); err != nil {
			errs = append(errs, "--streams: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return badInput("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// Tool prints and rewrites the checkpoints of one job. Create it with New.
type Tool struct {
	m    *jobmodel.Model
	opts Options
}

// New returns a tool over an open model. The model must have a checkpoint manager; the
// caller closes the model.
func New(m *jobmodel.Model, opts Options) *Tool {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	return &Tool{m: m, opts: opts}
}

// Run prints the checkpoints, or plans and applies the rewrite req asks for.
func (t *Tool) Run(ctx context.Context, req Request) error {
	if err := req.Check(); err != nil {
		return err
	}
	if t.opts.DryRun && req.NewOffsets == "" && req.ResetTo == "" {
		return badInput("--dry-run needs --new-offsets or --reset-to: printing writes nothing anyway")
	}
	if req.NewOffsets == "" && req.ResetTo == "" {
		return t.Print(ctx)
	}
	if _, err := t.manager(); err != nil {
		return err
	}
	// Hold the rewrite lock from before the stored checkpoints are read until they are
	// written, so that no container starts in between.
	g := t.guard(ctx)
	defer g.release(t)
	var (
		p   *Plan
		err error
	)
	switch {
	case req.NewOffsets != "":
		path, perr := config.LocalPath(req.NewOffsets)
		if perr != nil {
			return badInput("--new-offsets: %v", perr)
		}
		data, rerr := readFile(path)
		if rerr != nil {
			return badInput("--new-offsets: cannot read %s: %v", req.NewOffsets, rerr)
		}
		p, err = t.PlanFile(ctx, req.NewOffsets, bytes.NewReader(data), req.Replace)
	case req.ResetTo != "":
		target, _ := ParseResetTarget(req.ResetTo) // checked above
		var streams []system.SystemStream
		for _, s := range req.Streams {
			ss, _ := system.ParseSystemStream(s) // checked above
			streams = append(streams, ss)
		}
		p, err = t.PlanReset(ctx, target, streams)
	}
	if err != nil {
		return err
	}
	return t.apply(ctx, p, g)
}

func (t *Tool) notef(format string, args ...any) {
	fmt.Fprintf(t.opts.Stderr, "note: "+format+"\n", args...)
}

func (t *Tool) warnf(format string, args ...any) {
	fmt.Fprintf(t.opts.Stderr, "warning: "+format+"\n", args...)
}

// stored is what the checkpoint manager holds for the job's tasks.
type stored struct {
	tasks   []string // the job's tasks, sorted
	cps     map[string]checkpoint.Checkpoint
	corrupt map[string]error
}

// checkpointed returns the input streams of which some task holds a checkpoint.
func (s *stored) checkpointed() map[system.SystemStream]bool {
	known := map[system.SystemStream]bool{}
	for _, cp := range s.cps {
		for ssp := range cp.Offsets {
			known[ssp.SystemStream] = true
		}
	}
	return known
}

func (t *Tool) manager() (checkpoint.Manager, error) {
	if t.m.Checkpoints == nil {
		return nil, badInput("job %q has no checkpoint manager (task.checkpoint.factory is not set): it keeps no checkpoints to print or rewrite", t.m.Job.Name)
	}
	return t.m.Checkpoints, nil
}

// read reads the latest checkpoint of every task of the job. A corrupt checkpoint is
// recorded, not returned as an error; any other read error is.
func (t *Tool) read(ctx context.Context) (*stored, error) {
	cpm, err := t.manager()
	if err != nil {
		return nil, err
	}
	s := &stored{
		tasks:   slices.SortedFunc(maps.Keys(t.m.Tasks), job.CompareTaskNames),
		cps:     map[string]checkpoint.Checkpoint{},
		corrupt: map[string]error{},
	}
	for _, task := range s.tasks {
		cp, err := cpm.Read(ctx, task)
		switch {
		case err == nil:
			s.cps[task] = cp
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
		case errors.Is(err, checkpoint.ErrCorrupt):
			s.corrupt[task] = err
		default:
			return nil, fmt.Errorf("read the checkpoint of task %q: %w", task, err)
		}
	}
	if l, ok := cpm.(checkpoint.Lister); ok {
		all, err := l.Tasks(ctx)
		if err != nil {
			t.warnf("cannot list the stored checkpoints: %v", err)
		}
		var extra []string
		for _, task := range all {
			if _, ok := t.m.Tasks[task]; !ok {
				extra = append(extra, task)
			}
		}
		if len(extra) > 0 {
			slices.SortFunc(extra, job.CompareTaskNames)
			t.notef("checkpoints are stored for %s, which the job no longer has (its inputs have fewer partitions); they are not shown and never used", quoteList(extra))
		}
	}
	return s, nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// corruptError reports the corrupt checkpoints among s, with what to do.
func corruptError(s *stored, what string) error {
	var errs []error
	for _, task := range s.tasks {
		if err, ok := s.corrupt[task]; ok {
			errs = append(errs, fmt.Errorf("task %q: %w", task, err))
		}
	}
	n := len(errs)
	return fmt.Errorf("%s: the stored %s of %d %s corrupt:\n%w\n"+
		"to replace a corrupt checkpoint, write the task's offsets with --new-offsets=FILE --replace, or use --reset-to",
		what, plural(n, "checkpoint", "checkpoints"), n, plural(n, "task is", "tasks are"), errors.Join(errs...))
}

type runState int

const (
	runUnknown runState = iota // the manager cannot tell
	runStopped
	runRunning
	runRewriting // another checkpoint tool holds the rewrite lock
)

// classifyRun tells what an error of a run check or rewrite lock says.
func classifyRun(err error) runState {
	switch {
	case err == nil:
		return runStopped
	case errors.Is(err, checkpoint.ErrRewriting):
		return runRewriting
	case errors.Is(err, checkpoint.ErrJobRunning):
		return runRunning
	}
	return runUnknown
}

// runState asks the checkpoint manager whether the job is running. The error is the
// manager's: wrapping checkpoint.ErrJobRunning when running, anything else when the
// check itself failed.
func (t *Tool) runState(ctx context.Context) (runState, error) {
	var err error
	switch c := t.m.Checkpoints.(type) {
	case interface{ CheckNotRunning(context.Context) error }:
		err = c.CheckNotRunning(ctx)
	case interface{ CheckNotRunning() error }:
		err = c.CheckNotRunning()
	default:
		return runUnknown, nil
	}
	return classifyRun(err), err
}

// Print writes the latest checkpoint of every task of the job to Stdout as a
// properties file; see the package documentation.
func (t *Tool) Print(ctx context.Context) error {
	s, err := t.read(ctx)
	if err != nil {
		return err
	}
	if len(s.corrupt) > 0 {
		return corruptError(s, "nothing was printed")
	}
	switch st, err := t.runState(ctx); {
	case st == runRewriting:
		t.notef("%v: the printed offsets may change when it is done", err)
	case st == runRunning:
		t.notef("the job is running (%v): its containers commit new checkpoints as they go, so the printed offsets may already be stale", err)
	case err != nil:
		t.warnf("cannot tell whether the job is running: %v", err)
	}
	var b bytes.Buffer
	cfg := t.opts.ConfigPath
	if cfg == "" {
		cfg = "PATH"
	}
	writeHeader(&b, t.m.Job.Name, t.m.Job.ID, t.m.Job.CheckpointFactory, cfg)
	for _, task := range s.tasks {
		cp, has := s.cps[task]
		err := writeTask(&b, task, t.m.Tasks[task], cp, has, func() (map[system.SystemStreamPartition]offset.Start, error) {
			return t.m.DefaultStarts(task, s.checkpointed())
		})
		if err != nil {
			return err
		}
		if has {
			for _, ssp := range cp.Partitions() {
				if !slices.Contains(t.m.Tasks[task], ssp) {
					t.notef("the checkpoint of task %q holds offset %s of %s, which is no longer an input of the task: not shown, and ignored by the job", task, cp.Offsets[ssp], ssp)
				} else if err := t.checkStored(ssp, cp.Offsets[ssp]); err != nil {
					t.warnf("the checkpoint of task %q%s holds offset %q of %s, which is not an offset of system %s (%v): the job refuses to start with it; write a valid offset with --new-offsets",
						task, sourceOf(cp), cp.Offsets[ssp], ssp, ssp.System, err)
				}
			}
		}
	}
	for _, in := range t.m.Job.Inputs {
		if t.m.Job.ResetOffset(in) {
			t.notef("stream %s has samza.reset.offset=true: the job ignores its checkpointed offsets and starts at its default on every start", in)
		}
	}
	_, err = t.opts.Stdout.Write(b.Bytes())
	return err
}

// checkStored checks a stored offset of ssp with the system's admin.
func (t *Tool) checkStored(ssp system.SystemStreamPartition, off string) error {
	admin, ok := t.m.Admin(ssp.System)
	if !ok {
		return nil
	}
	_, err := admin.CompareOffsets(off, off)
	return err
}

// sourceOf names where cp is stored, as " (in ...)", or "" when unknown.
func sourceOf(cp checkpoint.Checkpoint) string {
	if cp.Source == "" {
		return ""
	}
	return " (in " + cp.Source + ")"
}

// writeHeader writes the comment lines that start a printed file.
func writeHeader(b *bytes.Buffer, jobName, jobID, factory, configPath string) {
	fmt.Fprintf(b, "# Checkpoints of job %s (job.id %s), from the %s checkpoint manager.\n", commentSafe(jobName), commentSafe(jobID), commentSafe(factory))
	b.WriteString("# One line per task and input partition:\n")
	b.WriteString("#   " + keyForm + "=<offset>\n")
	b.WriteString("# An offset is the NEXT offset the task will read, not the last one it processed:\n")
	b.WriteString("# 0 replays a partition from its oldest message.\n")
	b.WriteString("# To move checkpoints: stop the job, edit the offsets (deleted lines, and unchanged\n")
	b.WriteString("# lines of stored offsets, keep them), and write them back with\n")
	fmt.Fprintf(b, "#   sluice checkpoint-tool --config-path=%s --new-offsets=FILE [--dry-run]\n", commentSafe(configPath))
}

// writeTask writes the lines of one task that reads ssps, in that order: its stored
// offset for each partition of cp (has: the task has a checkpoint), else the offset it
// would start at by default, under comment lines that say so. defaults is called at
// most once, when a partition has no stored offset.
func writeTask(b *bytes.Buffer, task string, ssps []system.SystemStreamPartition, cp checkpoint.Checkpoint, has bool,
	defaults func() (map[system.SystemStreamPartition]offset.Start, error)) error {
	var starts map[system.SystemStreamPartition]offset.Start
	b.WriteString("\n")
	inDefaults := false
	for _, ssp := range ssps {
		off, ok := cp.Offsets[ssp]
		if !ok {
			if starts == nil {
				var err error
				if starts, err = defaults(); err != nil {
					return fmt.Errorf("default starting offsets of task %q: %w", task, err)
				}
			}
			off = starts[ssp].Offset
			if !inDefaults {
				if has {
					fmt.Fprintf(b, "# %s has no checkpoint of the partitions below yet: their offsets are not stored ones,\n", commentSafe(task))
				} else {
					fmt.Fprintf(b, "# %s has no checkpoint yet: the offsets below are not stored ones,\n", commentSafe(task))
				}
				b.WriteString("# but where it would start by default now (samza.offset.default). Written back, they\n")
				b.WriteString("# are stored, which pins it there; delete them to keep starting at the default.\n")
			}
			inDefaults = true
			if starts[ssp].Reason == offset.FromNewPartition {
				fmt.Fprintf(b, "# (new partition: the job has checkpoints of other partitions of %s, so this one starts at its oldest offset)\n", commentSafe(ssp.SystemStream.String()))
			}
		} else {
			inDefaults = false
		}
		fmt.Fprintf(b, "%s=%s\n", properties.EscapeKey(Key(task, ssp)), properties.EscapeValue(off))
	}
	return nil
}

// commentSafe keeps s on one comment line.
func commentSafe(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 }) {
		return strings.Trim(fmt.Sprintf("%q", s), `"`)
	}
	return s
}
