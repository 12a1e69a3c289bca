package checkpointtool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config/properties"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
)

// Change is one partition whose offset a plan changes.
type Change struct {
	Task string
	SSP  system.SystemStreamPartition
	// Old is the stored offset; "" when the task has no checkpoint of the partition.
	Old string
	// Corrupt is set when the task's stored checkpoint could not be decoded (Old is "").
	Corrupt bool
	// New is the offset to write; "" when the partition is dropped from the task's
	// checkpoint (Request.Replace with a file that does not name it).
	New string
}

// Plan is a validated rewrite of checkpoints, ready for Apply.
type Plan struct {
	// Source says where the new offsets come from: the file, or the --reset-to target.
	Source string
	// Changes lists every partition whose offset changes, by task then partition.
	Changes []Change
	writes  map[string]checkpoint.Checkpoint
	tasks   []string         // the tasks to write, sorted
	priors  map[string]prior // what each task to write held before, to undo the write
}

// prior is what a task's checkpoint was when the plan was made.
type prior struct {
	had     bool // the task had a checkpoint that could be read
	corrupt bool // the task had a checkpoint that could not be read
	offsets map[system.SystemStreamPartition]string
}

// Checkpoints returns the new checkpoint of every task the plan writes.
func (p *Plan) Checkpoints() map[string]checkpoint.Checkpoint {
	out := make(map[string]checkpoint.Checkpoint, len(p.writes))
	for task, cp := range p.writes {
		out[task] = checkpoint.New(cp.Offsets)
	}
	return out
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// equal reports whether two offsets of ssp are the same offset, as the system sees it.
func (t *Tool) equal(ssp system.SystemStreamPartition, a, b string) bool {
	if a == b {
		return true
	}
	admin, ok := t.m.Admin(ssp.System)
	if !ok {
		return false
	}
	c, err := admin.CompareOffsets(a, b)
	return err == nil && c == 0
}

// entry is one validated line of a --new-offsets file.
type entry struct {
	line    int
	key     string
	off     string
	changed bool
}

// PlanFile reads a --new-offsets file named name from r and validates every entry
// against the job and the stored checkpoints. It returns a *ValidationError listing
// every problem, or a plan that merges the file into the stored checkpoints (replace
// false) or replaces the checkpoints of the tasks it names (replace true).
func (t *Tool) PlanFile(ctx context.Context, name string, r io.Reader, replace bool) (*Plan, error) {
	entries, err := properties.Parse(r)
	if err != nil {
		var se *properties.SyntaxError
		if errors.As(err, &se) {
			return nil, &ValidationError{File: name, Problems: []Problem{{File: name, Line: se.Line, Msg: se.Msg}}}
		}
		return nil, badInput("cannot read %s: %v", name, err)
	}
	if len(entries) == 0 {
		return nil, badInput("%s holds no offsets (only comments or blank lines): nothing to write", name)
	}
	s, err := t.read(ctx)
	if err != nil {
		return nil, err
	}
	kp := newKeyParser(s.tasks, t.m.Tasks, t.m.Job.ReadStreams())

	var problems, warnings, notes []Problem
	problem := func(e properties.Entry, format string, args ...any) {
		problems = append(problems, Problem{File: name, Line: e.Line, Key: e.Key, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[parsedKey]int{}
	var pinned []parsedKey // partitions without a checkpoint set to their default offset
	byTask := map[string]map[system.SystemStreamPartition]entry{}
	defaults := map[string]map[system.SystemStreamPartition]offset.Start{}
	resetStreams := map[system.SystemStream]bool{}
	for _, e := range entries {
		pk, msg := kp.parse(e.Key)
		if msg != "" {
			if strings.Contains(e.Value, ".partitions.") {
				msg += ` (a space in a key must be escaped, as in tasknames.Partition\ 0.systems...)`
			}
			problem(e, "%s", msg)
			continue
		}
		if line, dup := seen[pk]; dup {
			problem(e, "task %q partition %s is set twice: on line %d and here", pk.task, pk.ssp, line)
			continue
		}
		seen[pk] = e.Line
		off := strings.TrimSpace(e.Value)
		admin, ok := t.m.Admin(pk.ssp.System)
		if !ok {
			return nil, fmt.Errorf("no admin for system %q", pk.ssp.System)
		}
		md := t.m.Meta[pk.ssp]
		switch {
		case off == "":
			problem(e, "empty offset")
			continue
		case strings.HasPrefix(off, "-"):
			problem(e, "negative offset %s: an offset is where the task reads next, 0 or more", off)
			continue
		}
		if _, err := admin.CompareOffsets(off, md.Oldest); err != nil {
			problem(e, "%q is not an offset of system %q: %v", off, pk.ssp.System, err)
			continue
		}
		if plain, ok := plainOffset(off); !ok {
			problem(e, "offset %q is not written plainly: write %s (a whole number without a sign or leading zeros, as printed)", off, plain)
			continue
		}
		// Offset 0 means "from the beginning", as the seed says. Where retention has
		// deleted the start of the partition, that is its oldest retained message:
		// store that, so the job starts there whatever its out-of-range policy.
		if off == "0" {
			if below, err := admin.CompareOffsets(off, md.Oldest); err == nil && below < 0 {
				gap := ""
				if d, err := admin.Distance(off, md.Oldest); err == nil {
					gap = fmt.Sprintf("; the %d %s before it %s deleted", d, plural(int(min(d, 2)), "message", "messages"), plural(int(min(d, 2)), "was", "were"))
				}
				notes = append(notes, Problem{File: name, Line: e.Line, Key: e.Key,
					Msg: fmt.Sprintf("offset 0 (from the beginning) is stored as %s, the oldest offset %s still holds%s", md.Oldest, pk.ssp, gap)})
				off = md.Oldest
			}
		}

		// Is it a change? Against the stored offset. A partition without a checkpoint
		// is always written: an explicit offset pins it, even one equal to where the job
		// would start it by default now (an upcoming default moves on as messages
		// arrive; a pinned offset does not).
		changed := true
		if _, bad := s.corrupt[pk.task]; !bad {
			if old, ok := s.cps[pk.task].Offsets[pk.ssp]; ok {
				changed = !t.equal(pk.ssp, old, off)
			} else {
				if defaults[pk.task] == nil {
					d, err := t.m.DefaultStarts(pk.task, s.checkpointed())
					if err != nil {
						return nil, fmt.Errorf("default starting offsets of task %q: %w", pk.task, err)
					}
					defaults[pk.task] = d
				}
				if t.equal(pk.ssp, defaults[pk.task][pk.ssp].Offset, off) {
					pinned = append(pinned, pk)
				}
			}
		}
		if changed {
			msg, refuse := t.checkRange(pk.ssp, off)
			switch {
			case msg == "":
			case refuse && !t.opts.Force:
				problem(e, "%s; write --force to write it anyway", msg)
				continue
			case refuse:
				warnings = append(warnings, Problem{File: name, Line: e.Line, Key: e.Key, Msg: msg + "; written anyway (--force)"})
			default:
				notes = append(notes, Problem{File: name, Line: e.Line, Key: e.Key, Msg: msg})
			}
			if t.m.Job.ResetOffset(pk.ssp.SystemStream) {
				resetStreams[pk.ssp.SystemStream] = true
			}
		}
		if byTask[pk.task] == nil {
			byTask[pk.task] = map[system.SystemStreamPartition]entry{}
		}
		byTask[pk.task][pk.ssp] = entry{line: e.Line, key: e.Key, off: off, changed: changed}
	}
	for _, w := range warnings {
		t.warnf("%s", w)
	}
	for _, n := range notes {
		t.notef("%s", n)
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, &ValidationError{File: name, Problems: problems}
	}
	t.noteResetStreams(resetStreams)
	t.notePinned(name, pinned)

	p := &Plan{Source: name, writes: map[string]checkpoint.Checkpoint{}}
	var corrupt []error
	for _, task := range slices.SortedFunc(maps.Keys(byTask), job.CompareTaskNames) {
		es := byTask[task]
		if err, bad := s.corrupt[task]; bad {
			if !replace {
				corrupt = append(corrupt, fmt.Errorf("task %q: %w", task, err))
				continue
			}
			t.warnf("the stored checkpoint of task %q is corrupt; --replace replaces it with the %d %s of %s", task, len(es), plural(len(es), "offset", "offsets"), name)
		}
		old := s.cps[task].Offsets
		next := map[system.SystemStreamPartition]string{}
		if !replace {
			maps.Copy(next, old)
		}
		for ssp, e := range es {
			if o, stored := old[ssp]; e.changed {
				next[ssp] = e.off
			} else if stored {
				next[ssp] = o // the same offset, as stored
			}
		}
		t.addTask(p, s, task, next)
	}
	if len(corrupt) > 0 {
		return nil, fmt.Errorf("%s cannot be merged into a corrupt checkpoint:\n%w\nadd --replace to replace those tasks' checkpoints with exactly the file's offsets for them; nothing was written", name, errors.Join(corrupt...))
	}
	return p, nil
}

// notePinned says that the partitions of pinned, which have no checkpoint, are set
// to the offsets they would start at by default now: they are stored all the same.
func (t *Tool) notePinned(name string, pinned []parsedKey) {
	switch len(pinned) {
	case 0:
		return
	case 1:
		t.notef("task %q has no checkpoint of %s, and %s sets it to the offset it would start at by default now: it is stored, which pins it there instead of following samza.offset.default; delete the line to keep the default",
			pinned[0].task, pinned[0].ssp, name)
		return
	}
	const most = 5
	var list []string
	for i, pk := range pinned {
		if i == most {
			list = append(list, fmt.Sprintf("and %d more", len(pinned)-most))
			break
		}
		list = append(list, fmt.Sprintf("%s %s", pk.task, pk.ssp))
	}
	t.notef("%d partitions without a checkpoint are set by %s to the offsets they would start at by default now (%s): they are stored, which pins them there instead of following samza.offset.default; delete their lines to keep the default",
		len(pinned), name, strings.Join(list, ", "))
}

// plainOffset reports whether an offset that is a decimal number is written the one
// way the tool prints numbers, as keys' partition numbers must be: "5", not "+5" or
// "005". It returns that plain form. Offsets that are not decimal numbers (those of
// systems whose offsets are not numbers) are left to the system's admin and pass.
func plainOffset(off string) (string, bool) {
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil {
		return off, true
	}
	plain := strconv.FormatInt(n, 10)
	return plain, plain == off
}

// addTask adds task to the plan if next differs from its stored checkpoint.
func (t *Tool) addTask(p *Plan, s *stored, task string, next map[system.SystemStreamPartition]string) {
	cp, had := s.cps[task]
	old := cp.Offsets
	corrupt := s.corrupt[task] != nil
	var changes []Change
	for _, ssp := range slices.SortedFunc(maps.Keys(union(old, next)), system.SystemStreamPartition.Compare) {
		o, hadOld := old[ssp]
		n, hasNew := next[ssp]
		if hadOld && hasNew && t.equal(ssp, o, n) {
			continue
		}
		changes = append(changes, Change{Task: task, SSP: ssp, Old: o, New: n, Corrupt: corrupt})
	}
	if len(changes) == 0 && !corrupt {
		return
	}
	p.Changes = append(p.Changes, changes...)
	p.writes[task] = checkpoint.New(next)
	p.tasks = append(p.tasks, task)
	if p.priors == nil {
		p.priors = map[string]prior{}
	}
	p.priors[task] = prior{had: had, corrupt: corrupt, offsets: maps.Clone(old)}
}

func union(a, b map[system.SystemStreamPartition]string) map[system.SystemStreamPartition]bool {
	u := map[system.SystemStreamPartition]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func (t *Tool) noteResetStreams(streams map[system.SystemStream]bool) {
	for _, ss := range slices.SortedFunc(maps.Keys(streams), func(a, b system.SystemStream) int { return strings.Compare(a.String(), b.String()) }) {
		t.notef("stream %s has samza.reset.offset=true: the job ignores its checkpointed offsets on every start, so the new ones have no effect until that setting is removed", ss)
	}
}

// checkRange checks that off lies in the range the system retains for ssp. It returns
// a message when it does not, and whether the offset is refused without --force.
func (t *Tool) checkRange(ssp system.SystemStreamPartition, off string) (msg string, refuse bool) {
	admin, _ := t.m.Admin(ssp.System)
	md := t.m.Meta[ssp]
	where, err := offset.Locate(admin, off, md)
	if err != nil {
		return fmt.Sprintf("cannot compare offset %s with the retained offsets %s to %s: %v", off, md.Oldest, md.Upcoming, err), true
	}
	policy := t.m.Job.AutoOffsetReset(ssp.SystemStream)
	switch where {
	case offset.Before:
		gap := ""
		if d, err := admin.Distance(off, md.Oldest); err == nil {
			gap = fmt.Sprintf(" (%d %s in between %s deleted)", d, plural(int(min(d, 2)), "message", "messages"), plural(int(min(d, 2)), "was", "were"))
		}
		return fmt.Sprintf("offset %s is before %s, the oldest offset %s still holds%s; on start the job would apply consumer.auto.offset.reset=%s", off, md.Oldest, ssp, gap, policy), true
	case offset.Beyond:
		return fmt.Sprintf("offset %s is beyond the end of %s (its upcoming offset is %s); on start the job would apply consumer.auto.offset.reset=%s", off, ssp, md.Upcoming, policy), true
	}
	return "", false
}

// OffsetForTimer is implemented by the Admin of systems that can find offsets by time,
// for --reset-to=<time>. Tool.PlanReset finds it by a type assertion on the Admin.
type OffsetForTimer interface {
	// OffsetForTime returns the offset of the first message of ssp whose timestamp is at
	// or after t, or the upcoming offset when there is none.
	OffsetForTime(ctx context.Context, ssp system.SystemStreamPartition, t time.Time) (string, error)
}

// ResetTarget is where --reset-to moves offsets: the oldest retained message, the
// upcoming one, or the first message at or after a time.
type ResetTarget struct {
	// Position is "oldest" or "upcoming"; "" when Time is set.
	Position string
	// Time is the time to look offsets up for, when Position is "".
	Time time.Time
}

// ParseResetTarget parses "oldest", "upcoming" or an RFC 3339 time such as
// 2024-05-01T12:00:00Z.
func ParseResetTarget(s string) (ResetTarget, error) {
	switch v := strings.TrimSpace(s); v {
	case "oldest", "upcoming":
		return ResetTarget{Position: v}, nil
	}
	tm, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return ResetTarget{}, badInput("--reset-to=%s: want oldest, upcoming, or an RFC 3339 time such as 2024-05-01T12:00:00Z", s)
	}
	return ResetTarget{Time: tm}, nil
}

// String returns the target as --reset-to takes it.
func (r ResetTarget) String() string {
	if r.Position != "" {
		return r.Position
	}
	return r.Time.Format(time.RFC3339Nano)
}

// PlanReset plans moving every task's partitions to target: all of them, or those of
// streams only when streams is not empty. Other partitions keep their stored offsets.
func (t *Tool) PlanReset(ctx context.Context, target ResetTarget, streams []system.SystemStream) (*Plan, error) {
	if target.Position != "" && target.Position != "oldest" && target.Position != "upcoming" {
		return nil, badInput("--reset-to=%s: want oldest, upcoming, or an RFC 3339 time", target.Position)
	}
	want := map[system.SystemStream]bool{}
	var bad []string
	for _, ss := range streams {
		if !slices.Contains(t.m.Job.ReadStreams(), ss) {
			bad = append(bad, ss.String())
		}
		want[ss] = true
	}
	if len(bad) > 0 {
		return nil, badInput("--streams: %s %s (task.inputs: %s)", strings.Join(bad, ", "), plural(len(bad), "is not an input of the job", "are not inputs of the job"), streamList(t.m.Job.ReadStreams()))
	}
	selected := func(ss system.SystemStream) bool { return len(want) == 0 || want[ss] }
	timers := map[string]OffsetForTimer{}
	if target.Position == "" {
		for _, in := range t.m.Job.ReadStreams() {
			if !selected(in) {
				continue
			}
			admin, ok := t.m.Admin(in.System)
			if !ok {
				return nil, fmt.Errorf("no admin for system %q", in.System)
			}
			ft, ok := admin.(OffsetForTimer)
			if !ok {
				return nil, badInput("--reset-to=%s: system %q (%s) cannot look up offsets by time; use oldest or upcoming", target, in.System, t.m.Job.SystemFactories[in.System])
			}
			timers[in.System] = ft
		}
	}
	s, err := t.read(ctx)
	if err != nil {
		return nil, err
	}
	p := &Plan{Source: "--reset-to=" + target.String(), writes: map[string]checkpoint.Checkpoint{}}
	resetStreams := map[system.SystemStream]bool{}
	var corrupt []error
	for _, task := range s.tasks {
		all := true
		next := map[system.SystemStreamPartition]string{}
		maps.Copy(next, s.cps[task].Offsets)
		for _, ssp := range t.m.Tasks[task] {
			if !selected(ssp.SystemStream) {
				all = false
				continue
			}
			md := t.m.Meta[ssp]
			var off string
			switch target.Position {
			case "oldest":
				off = md.Oldest
			case "upcoming":
				off = md.Upcoming
			default:
				off, err = timers[ssp.System].OffsetForTime(ctx, ssp, target.Time)
				if err != nil {
					return nil, fmt.Errorf("look up the offset of %s at %s: %w", ssp, target, err)
				}
			}
			if off == "" {
				return nil, fmt.Errorf("system %q reported no %s offset for %s", ssp.System, target, ssp)
			}
			next[ssp] = off
			if t.m.Job.ResetOffset(ssp.SystemStream) {
				resetStreams[ssp.SystemStream] = true
			}
		}
		if err, bad := s.corrupt[task]; bad {
			if !all {
				corrupt = append(corrupt, fmt.Errorf("task %q: %w", task, err))
				continue
			}
			t.warnf("the stored checkpoint of task %q is corrupt; it is replaced with the %s offsets", task, target)
		}
		t.addTask(p, s, task, next)
	}
	if len(corrupt) > 0 {
		return nil, fmt.Errorf("--streams keeps the other partitions' stored offsets, but these checkpoints are corrupt:\n%w\nreset every stream (leave out --streams), or replace them with --new-offsets=FILE --replace; nothing was written", errors.Join(corrupt...))
	}
	t.noteResetStreams(resetStreams)
	return p, nil
}
