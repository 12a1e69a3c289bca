package checkpointtool_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/checkpointtool"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/config/properties"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// The fixture job reads mem.PageViewEvent and mem.clicks.v2 (a dotted stream name),
// three partitions each, so it has tasks Partition 0, 1 and 2:
//
//	PageViewEvent#0: offsets 2..9 retained (0 and 1 deleted by retention), at times T0+2m..T0+9m
//	PageViewEvent#1: offsets 0..4
//	PageViewEvent#2: empty
//	clicks.v2#0..2:  offsets 0..2
//
// Stored checkpoints: Partition 0 {PageViewEvent#0: 5, clicks.v2#0: 1}; Partition 1
// {PageViewEvent#1: 3} (none for clicks.v2#1); Partition 2 none.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

var (
	pv0 = system.NewSSP("mem", "PageViewEvent", 0)
	pv1 = system.NewSSP("mem", "PageViewEvent", 1)
	pv2 = system.NewSSP("mem", "PageViewEvent", 2)
	cl0 = system.NewSSP("mem", "clicks.v2", 0)
	cl1 = system.NewSSP("mem", "clicks.v2", 1)
	cl2 = system.NewSSP("mem", "clicks.v2", 2)
)

type fixture struct {
	store *inmem.Store
	dir   string // checkpoint directory
	cfg   map[string]string
	// wrap, if set, wraps the checkpoint manager the tool gets.
	wrap func(checkpoint.Manager) checkpoint.Manager
	// noTimeLookup hides the inmem admin's OffsetForTime.
	noTimeLookup bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: inmem.NewStore(), dir: t.TempDir()}
	f.cfg = map[string]string{
		"job.name":                         "page-views",
		"task.class":                       "noop",
		"task.inputs":                      "mem.PageViewEvent,mem.clicks.v2",
		"systems.mem.samza.factory":        "inmem",
		"systems.mem.samza.offset.default": "oldest",
		"task.checkpoint.factory":          "filesystem",
		"task.checkpoint.path":             filepath.Join(f.dir, "checkpoints"),
	}
	must(t, f.store.CreateStream("PageViewEvent", 3))
	must(t, f.store.CreateStream("clicks.v2", 3))
	for i := range 10 {
		_, err := f.store.AppendAt("PageViewEvent", 0, nil, []byte("pv"), t0.Add(time.Duration(i)*time.Minute))
		must(t, err)
	}
	must(t, f.store.Truncate("PageViewEvent", 0, 2))
	for range 5 {
		_, err := f.store.AppendAt("PageViewEvent", 1, nil, []byte("pv"), t0)
		must(t, err)
	}
	for p := range int32(3) {
		for i := range 3 {
			_, err := f.store.AppendAt("clicks.v2", p, nil, []byte("c"), t0.Add(time.Duration(i)*time.Hour))
			must(t, err)
		}
	}
	f.write(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: "5", cl0: "1"})
	f.write(t, "Partition 1", map[system.SystemStreamPartition]string{pv1: "3"})
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) manager(t *testing.T) *filesystem.Manager {
	t.Helper()
	m, err := filesystem.New(f.cfg["task.checkpoint.path"], f.cfg["job.name"], "1")
	must(t, err)
	must(t, m.Start(context.Background()))
	t.Cleanup(func() { m.Close() })
	return m
}

func (f *fixture) write(t *testing.T, task string, offsets map[system.SystemStreamPartition]string) {
	t.Helper()
	must(t, f.manager(t).Write(context.Background(), task, checkpoint.New(offsets)))
}

// stored describes every checkpoint in the store, one line per task.
func (f *fixture) stored(t *testing.T) string {
	t.Helper()
	m := f.manager(t)
	tasks, err := m.Tasks(context.Background())
	must(t, err)
	var b strings.Builder
	for _, task := range tasks {
		cp, err := m.Read(context.Background(), task)
		if err != nil {
			fmt.Fprintf(&b, "%s: error: %v\n", task, err)
			continue
		}
		fmt.Fprintf(&b, "%s:", task)
		for _, ssp := range cp.Partitions() {
			fmt.Fprintf(&b, " %s=%s", ssp, cp.Offsets[ssp])
		}
		b.WriteString("\n")
	}
	if len(tasks) == 0 {
		b.WriteString("(none)\n")
	}
	return b.String()
}

// files describes every checkpoint file of the store byte for byte, with its
// modification time, so that any rewrite shows, even one that stores the same offsets
// (every write has a new checkpoint id and time). Lock files are left out.
func (f *fixture) files(t *testing.T) string {
	t.Helper()
	dir := f.cfg["task.checkpoint.path"]
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "(no directory)\n"
	}
	must(t, err)
	var b strings.Builder
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".lock") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		must(t, err)
		fi, err := de.Info()
		must(t, err)
		fmt.Fprintf(&b, "%s mtime=%d %q\n", de.Name(), fi.ModTime().UnixNano(), data)
	}
	return b.String()
}

// open builds the job's parts and opens its model, as `sluice checkpoint-tool` does:
// task.class names no task this program knows.
func (f *fixture) open(t *testing.T) *jobmodel.Model {
	t.Helper()
	var p config.Problems
	fs := jobmodel.Factories{
		Systems: map[string]system.Factory{"inmem": func(name string, cfg config.Config, l *slog.Logger) (system.System, error) {
			s, err := f.store.Factory()(name, cfg, l)
			if f.noTimeLookup {
				return noTimeSystem{s}, err
			}
			return s, err
		}},
		Checkpoints: map[string]jobmodel.CheckpointFactory{
			"filesystem": func(jc *job.Config, _ map[string]system.System, _ *slog.Logger) (checkpoint.Manager, error) {
				return filesystem.New(jc.CheckpointPath, jc.Name, jc.ID)
			},
		},
	}
	cfg := config.New(f.cfg)
	parts := jobmodel.Build(&p, cfg, fs, nil)
	parts.BuildCheckpoints(&p, cfg, fs, nil)
	must(t, p.Err())
	m, err := jobmodel.Open(context.Background(), parts, nil)
	must(t, err)
	t.Cleanup(func() { m.Close() })
	if f.wrap != nil {
		m.Checkpoints = f.wrap(m.Checkpoints)
	}
	return m
}

type result struct {
	stdout, stderr string
	err            error
}

// run runs the tool with command-line style args over the fixture.
func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	var req checkpointtool.Request
	var opts checkpointtool.Options
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "--new-offsets":
			req.NewOffsets = v
		case "--replace":
			req.Replace = true
		case "--reset-to":
			req.ResetTo = v
		case "--streams":
			req.Streams = strings.Split(v, ",")
		case "--dry-run":
			opts.DryRun = true
		case "--force":
			opts.Force = true
		default:
			t.Fatalf("unknown test arg %q", a)
		}
	}
	var stdout, stderr bytes.Buffer
	opts.Stdout, opts.Stderr, opts.ConfigPath = &stdout, &stderr, "job.properties"
	err := checkpointtool.New(f.open(t), opts).Run(context.Background(), req)
	return result{stdout.String(), stderr.String(), err}
}

// transcript renders one run for a golden file, with temporary paths replaced.
func (f *fixture) transcript(args []string, file string, r result, after string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", strings.Join(append([]string{"sluice checkpoint-tool --config-path=job.properties"}, args...), " "))
	if file != "" {
		fmt.Fprintf(&b, "-- offsets.properties --\n%s", file)
	}
	fmt.Fprintf(&b, "-- stdout --\n%s-- stderr --\n%s", r.stdout, r.stderr)
	switch {
	case r.err == nil:
		b.WriteString("-- error --\n(none)\n")
	default:
		fmt.Fprintf(&b, "-- error (bad input: %v) --\n%v\n", errors.Is(r.err, checkpointtool.ErrBadInput), r.err)
	}
	fmt.Fprintf(&b, "-- stored checkpoints after --\n%s", after)
	return strings.ReplaceAll(b.String(), f.dir, "$TMP")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (go test -update rewrites it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// printed is the stdout of printing the fixture's checkpoints.
func printed(t *testing.T, f *fixture) string {
	t.Helper()
	r := f.run(t)
	must(t, r.err)
	return r.stdout
}

// edit replaces the value of key in a printed file.
func edit(t *testing.T, file, key, value string) string {
	t.Helper()
	var out []string
	found := false
	for _, line := range strings.Split(file, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && k == key {
			line, found = k+"="+value, true
		}
		out = append(out, line)
	}
	if !found {
		t.Fatalf("no key %s in\n%s", key, file)
	}
	return strings.Join(out, "\n")
}

const (
	kPV0 = `tasknames.Partition\ 0.systems.mem.streams.PageViewEvent.partitions.0`
	kCL0 = `tasknames.Partition\ 0.systems.mem.streams.clicks.v2.partitions.0`
	kPV1 = `tasknames.Partition\ 1.systems.mem.streams.PageViewEvent.partitions.1`
	kCL1 = `tasknames.Partition\ 1.systems.mem.streams.clicks.v2.partitions.1`
	kPV2 = `tasknames.Partition\ 2.systems.mem.streams.PageViewEvent.partitions.2`
	kCL2 = `tasknames.Partition\ 2.systems.mem.streams.clicks.v2.partitions.2`
)

// TestTranscripts runs the tool against the fixture and compares the whole transcript
// (arguments, the --new-offsets file, stdout, stderr, the error, and the stored
// checkpoints afterwards) with testdata/<name>.golden.
func TestTranscripts(t *testing.T) {
	allZero := "# every offset to 0: replay everything\n" + strings.Join([]string{kPV0 + "=0", kCL0 + "=0", kPV1 + "=0", kCL1 + "=0", kPV2 + "=0", kCL2 + "=0"}, "\n") + "\n"
	for _, tc := range []struct {
		name string
		args []string
		// file is the --new-offsets file; fileFn builds it from the printed checkpoints.
		file   string
		fileFn func(t *testing.T, printed string) string
		setup  func(t *testing.T, f *fixture)
		// wantErr: "" none, "bad" ErrBadInput, "fail" another error.
		wantErr   string
		unchanged bool // no checkpoint may be rewritten: the files are byte for byte as before
		restored  bool // checkpoints were rewritten (undone), but hold the offsets they held before
	}{
		{name: "print", unchanged: true},
		{name: "print-running", unchanged: true, setup: holdRunLock},
		{name: "print-corrupt", wantErr: "fail", unchanged: true, setup: corrupt("Partition 1")},
		{name: "print-stale-task-and-stream", unchanged: true, setup: func(t *testing.T, f *fixture) {
			f.write(t, "Partition 7", map[system.SystemStreamPartition]string{system.NewSSP("mem", "PageViewEvent", 7): "1"})
			f.write(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: "5", cl0: "1", system.NewSSP("mem", "old", 0): "42"})
		}},
		// A broadcast partition is shown under every task, with each task's own offset.
		{name: "print-broadcast", unchanged: true, setup: func(t *testing.T, f *fixture) {
			must(t, f.store.CreateStream("control", 2))
			for range 4 {
				_, err := f.store.Append("control", 1, nil, []byte("c"))
				must(t, err)
			}
			f.cfg["task.broadcast.inputs"] = "mem.control#1"
			f.write(t, "Partition 0", map[system.SystemStreamPartition]string{pv0: "5", cl0: "1", system.NewSSP("mem", "control", 1): "3"})
		}},
		{name: "print-reset-offset-stream", unchanged: true, setup: func(t *testing.T, f *fixture) {
			f.cfg["systems.mem.streams.clicks.v2.samza.reset.offset"] = "true"
		}},
		// Every partition has a checkpoint: the printed file fed back writes nothing.
		{name: "roundtrip-noop", args: []string{"--new-offsets=FILE"}, unchanged: true, setup: checkpointAll,
			fileFn: func(t *testing.T, p string) string { return p }},
		// Partitions without a checkpoint are printed with their defaults; fed back,
		// those lines pin them (and only they are written).
		{name: "roundtrip-pins-defaults", args: []string{"--new-offsets=FILE"},
			fileFn: func(t *testing.T, p string) string { return p }},
		{name: "roundtrip-pins-upcoming-default", args: []string{"--new-offsets=FILE"},
			setup:  func(t *testing.T, f *fixture) { f.cfg["systems.mem.samza.offset.default"] = "upcoming" },
			fileFn: func(t *testing.T, p string) string { return p }},
		{name: "merge", args: []string{"--new-offsets=FILE"},
			fileFn: func(t *testing.T, p string) string { return edit(t, p, kPV0, "8") }},
		{name: "merge-only-named-lines", args: []string{"--new-offsets=FILE"}, file: kCL2 + "=2\n" + kPV1 + " = 4\n"},
		{name: "merge-default-pinned", args: []string{"--new-offsets=FILE"},
			fileFn: func(t *testing.T, p string) string { return edit(t, p, kCL1, "2") }},
		{name: "replace", args: []string{"--new-offsets=FILE", "--replace"}, file: kPV0 + "=7\n"},
		{name: "replace-corrupt", args: []string{"--new-offsets=FILE", "--replace"}, file: kPV1 + "=1\n" + kCL1 + "=1\n", setup: corrupt("Partition 1")},
		{name: "merge-corrupt", args: []string{"--new-offsets=FILE"}, file: kPV1 + "=1\n", wantErr: "fail", unchanged: true, setup: corrupt("Partition 1")},
		{name: "all-zero", args: []string{"--new-offsets=FILE"}, file: allZero},
		// 0 means "from the beginning" whatever the out-of-range policy: below the log
		// start it is stored as the oldest retained offset, never left to the policy.
		{name: "all-zero-policy-fail", args: []string{"--new-offsets=FILE"}, file: allZero, setup: func(t *testing.T, f *fixture) {
			f.cfg["systems.mem.consumer.auto.offset.reset"] = "fail"
		}},
		{name: "validation-errors", args: []string{"--new-offsets=FILE"}, wantErr: "bad", unchanged: true, file: strings.Join([]string{
			"# every problem at once",
			"job.name=page-views",
			`tasknames.Partition\ 9.systems.mem.streams.PageViewEvent.partitions.9=1`,
			`tasknames.Partition\ 0.systems.mem.streams.PageViewEvent.partitions.1=1`,
			`tasknames.Partition\ 0.systems.mem.streams.PageViewEvent.partitions.7=1`,
			`tasknames.Partition\ 0.systems.mem.streams.Nope.partitions.0=1`,
			`tasknames.Partition\ 0.systems.mem.streams.clicks.v2.partitions.x=1`,
			`tasknames.Partition\ 0.systems.mem.streams.clicks.v2=1`,
			kPV0 + "=abc",
			kCL0 + "=-1",
			kPV1 + "=",
			kPV1 + "=2",
			kCL1 + "=1.5",
			kPV2 + "=+0",
			kCL2 + "=99",
			kPV0 + "=1",
			`tasknames.Partition 0.systems.mem.streams.PageViewEvent.partitions.0=3`,
			"",
		}, "\n")},
		{name: "validation-offset-forms", args: []string{"--new-offsets=FILE"}, wantErr: "bad", unchanged: true, file: strings.Join([]string{
			"# offsets are written as the tool prints them, like the partition numbers in keys",
			kPV0 + "=+5",
			kCL0 + "=007",
			kPV1 + "=00",
			kCL1 + "=0x1",
			kPV2 + "=-0",
			kCL2 + "=  2  ",
			"",
		}, "\n")},
		{name: "validation-duplicate", args: []string{"--new-offsets=FILE"}, wantErr: "bad", unchanged: true,
			file: kPV0 + "=6\n" + kCL0 + "=2\n" + kPV0 + "=7\n"},
		{name: "validation-syntax", args: []string{"--new-offsets=FILE"}, wantErr: "bad", unchanged: true,
			file: kPV0 + "=6\n" + `tasknames.Partition\ 0.systems.mem.streams.clicks\u00ZZ=1` + "\n"},
		{name: "validation-empty-file", args: []string{"--new-offsets=FILE"}, wantErr: "bad", unchanged: true, file: "# nothing\n\n"},
		{name: "force-out-of-range", args: []string{"--new-offsets=FILE", "--force"}, file: kPV0 + "=1\n" + kPV1 + "=6\n"},
		{name: "dry-run", args: []string{"--new-offsets=FILE", "--dry-run"}, unchanged: true,
			fileFn: func(t *testing.T, p string) string { return edit(t, edit(t, p, kPV0, "9"), kCL2, "1") }},
		{name: "dry-run-noop", args: []string{"--new-offsets=FILE", "--dry-run"}, unchanged: true, setup: checkpointAll,
			fileFn: func(t *testing.T, p string) string { return p }},
		{name: "refuse-running", args: []string{"--new-offsets=FILE"}, file: kPV0 + "=6\n", wantErr: "fail", unchanged: true, setup: holdRunLock},
		{name: "refuse-running-dry-run", args: []string{"--reset-to=oldest", "--dry-run"}, unchanged: true, setup: holdRunLock},
		{name: "force-while-running", args: []string{"--new-offsets=FILE", "--force"}, file: kPV0 + "=6\n", setup: holdRunLock},
		{name: "refuse-other-tool", args: []string{"--new-offsets=FILE", "--force"}, file: kPV0 + "=6\n", wantErr: "fail", unchanged: true, setup: holdRewriteLock},
		{name: "print-other-tool", unchanged: true, setup: holdRewriteLock},
		{name: "reset-oldest", args: []string{"--reset-to=oldest"}},
		{name: "reset-upcoming", args: []string{"--reset-to=upcoming"}},
		{name: "reset-time", args: []string{"--reset-to=2024-05-01T12:04:30Z"}},
		{name: "reset-time-after-everything", args: []string{"--reset-to=2030-01-01T00:00:00+02:00"}},
		{name: "reset-time-unsupported", args: []string{"--reset-to=2024-05-01T12:04:30Z"}, wantErr: "bad", unchanged: true,
			setup: func(t *testing.T, f *fixture) { f.noTimeLookup = true }},
		{name: "reset-streams", args: []string{"--reset-to=upcoming", "--streams=mem.clicks.v2"}},
		{name: "reset-streams-corrupt", args: []string{"--reset-to=upcoming", "--streams=mem.clicks.v2"}, wantErr: "fail", unchanged: true, setup: corrupt("Partition 1")},
		{name: "reset-all-corrupt", args: []string{"--reset-to=oldest"}, setup: corrupt("Partition 1")},
		{name: "reset-unknown-stream", args: []string{"--reset-to=upcoming", "--streams=mem.nope,kafka.PageViewEvent"}, wantErr: "bad", unchanged: true},
		{name: "usage-conflicts", args: []string{"--new-offsets=FILE", "--reset-to=yesterday", "--streams=nodot"}, file: kPV0 + "=1\n", wantErr: "bad", unchanged: true},
		{name: "usage-dry-run-print", args: []string{"--dry-run"}, wantErr: "bad", unchanged: true},
		{name: "missing-file", args: []string{"--new-offsets=$TMP/missing.properties"}, wantErr: "bad", unchanged: true},
		// A write fails part way: the tasks written are put back as they were.
		{name: "partial-write", args: []string{"--reset-to=upcoming"}, wantErr: "fail", restored: true, setup: failWrites(failingWrites{fail: "Partition 2"})},
		{name: "partial-write-no-delete", args: []string{"--reset-to=upcoming"}, wantErr: "fail", setup: func(t *testing.T, f *fixture) {
			removeCheckpoint("Partition 0")(t, f)
			failWrites(failingWrites{fail: "Partition 1", noDelete: true})(t, f)
		}},
		{name: "partial-write-undo-fails", args: []string{"--reset-to=upcoming"}, wantErr: "fail", setup: func(t *testing.T, f *fixture) {
			removeCheckpoint("Partition 1")(t, f)
			failWrites(failingWrites{fail: "Partition 2", always: true, failUndo: []string{"Partition 0", "Partition 1"}})(t, f)
		}},
		{name: "partial-write-corrupt-last", args: []string{"--reset-to=oldest"}, wantErr: "fail", restored: true, setup: func(t *testing.T, f *fixture) {
			corrupt("Partition 0")(t, f)
			failWrites(failingWrites{fail: "Partition 2"})(t, f)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			before, beforeFiles := f.stored(t), f.files(t)
			file := tc.file
			if tc.fileFn != nil {
				file = tc.fileFn(t, printed(t, f))
			}
			args := slices.Clone(tc.args)
			for i, a := range args {
				path := filepath.Join(f.dir, "offsets.properties")
				if a == "--new-offsets=FILE" {
					must(t, os.WriteFile(path, []byte(file), 0o644))
					args[i] = "--new-offsets=" + path
				}
				args[i] = strings.ReplaceAll(args[i], "$TMP", f.dir)
			}
			r := f.run(t, args...)
			switch {
			case tc.wantErr == "" && r.err != nil:
				t.Errorf("error: %v", r.err)
			case tc.wantErr == "bad" && !errors.Is(r.err, checkpointtool.ErrBadInput):
				t.Errorf("error = %v, want bad input", r.err)
			case tc.wantErr == "fail" && (r.err == nil || errors.Is(r.err, checkpointtool.ErrBadInput)):
				t.Errorf("error = %v, want a runtime failure", r.err)
			}
			after := f.stored(t)
			if (tc.unchanged || tc.restored) && after != before {
				t.Errorf("stored checkpoints changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if afterFiles := f.files(t); tc.unchanged && afterFiles != beforeFiles {
				t.Errorf("checkpoint files were rewritten:\nbefore:\n%s\nafter:\n%s", beforeFiles, afterFiles)
			}
			if !tc.unchanged && after == before && tc.wantErr == "" {
				t.Errorf("stored checkpoints did not change:\n%s", after)
			}
			golden(t, tc.name, f.transcript(args, file, r, after))
		})
	}
}

// noTimeSystem is a system whose admin cannot look offsets up by time.
type noTimeSystem struct{ system.System }

func (s noTimeSystem) Admin() system.Admin { return struct{ system.Admin }{s.System.Admin()} }

// holdRunLock makes the job look running, as a container does.
func holdRunLock(t *testing.T, f *fixture) {
	t.Helper()
	l, err := f.manager(t).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
	must(t, err)
	t.Cleanup(func() { l.Close() })
}

// checkpointAll gives every partition of every task a checkpoint.
func checkpointAll(t *testing.T, f *fixture) {
	t.Helper()
	f.write(t, "Partition 1", map[system.SystemStreamPartition]string{pv1: "3", cl1: "1"})
	f.write(t, "Partition 2", map[system.SystemStreamPartition]string{pv2: "0", cl2: "2"})
}

// holdRewriteLock makes it look as if another checkpoint tool were writing.
func holdRewriteLock(t *testing.T, f *fixture) {
	t.Helper()
	l, err := f.manager(t).LockForRewrite(t.Context())
	must(t, err)
	t.Cleanup(func() { l.Close() })
}

func corrupt(task string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		must(t, os.WriteFile(f.manager(t).Path(task), []byte("sluice-checkpoint 1 crc32c=00000000 len=2\n{}\n"), 0o644))
	}
}

func removeCheckpoint(task string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		must(t, os.Remove(f.manager(t).Path(task)))
	}
}

// failingWrites fails the first write of one task (every write of it if always), and
// the second write or delete of each task in failUndo: putting it back after a failure.
// It implements checkpoint.Deleter unless noDelete.
type failingWrites struct {
	checkpoint.Manager
	fail     string
	always   bool
	failUndo []string
	noDelete bool

	mu    *sync.Mutex
	calls map[string]int
	log   []string // every write and delete, in order
}

// failWrites makes the tool's checkpoint manager a failingWrites like fw.
func failWrites(fw failingWrites) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		f.wrap = func(m checkpoint.Manager) checkpoint.Manager {
			w := fw
			w.Manager, w.mu, w.calls = m, new(sync.Mutex), map[string]int{}
			if w.noDelete {
				return &w
			}
			return deletingFailingWrites{&w}
		}
	}
}

func (m *failingWrites) CheckNotRunning() error {
	return m.Manager.(*filesystem.Manager).CheckNotRunning()
}

func (m *failingWrites) LockForRewrite(ctx context.Context) (io.Closer, error) {
	return m.Manager.(*filesystem.Manager).LockForRewrite(ctx)
}

func (m *failingWrites) Path(task string) string { return m.Manager.(*filesystem.Manager).Path(task) }

// call records a write or delete of task and says whether it fails.
func (m *failingWrites) call(op, task string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[task]++
	m.log = append(m.log, op+" "+task)
	switch n := m.calls[task]; {
	case task == m.fail && (n == 1 || m.always):
		return errors.New("disk full")
	case n == 2 && slices.Contains(m.failUndo, task):
		return errors.New("permission denied")
	}
	return nil
}

func (m *failingWrites) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	if err := m.call("write", task); err != nil {
		return err
	}
	return m.Manager.Write(ctx, task, cp)
}

type deletingFailingWrites struct{ *failingWrites }

func (m deletingFailingWrites) Delete(ctx context.Context, task string) error {
	if err := m.call("delete", task); err != nil {
		return err
	}
	return m.Manager.(checkpoint.Deleter).Delete(ctx, task)
}

// TestRoundTripRewritesOnlyDefaults checks the property behind roundtrip-noop and
// roundtrip-pins-defaults on several store states, in both modes: the printed file fed
// back rewrites no partition that has a checkpoint, writes (pins) exactly those that
// have none, and the file printed afterwards, fed back, writes nothing at all.
func TestRoundTripRewritesOnlyDefaults(t *testing.T) {
	for _, setup := range []func(t *testing.T, f *fixture){
		func(*testing.T, *fixture) {},
		func(t *testing.T, f *fixture) { f.cfg["systems.mem.samza.offset.default"] = "upcoming" },
		func(t *testing.T, f *fixture) { f.cfg["systems.mem.samza.offset.default"] = "newest" },
		func(t *testing.T, f *fixture) {
			f.write(t, "Partition 2", map[system.SystemStreamPartition]string{pv2: "0", cl2: "3"})
		},
		checkpointAll,
	} {
		for _, mode := range [][]string{nil, {"--replace"}} {
			f := newFixture(t)
			setup(t, f)
			m := f.open(t)
			var defaults []string // "task ssp", of the partitions without a checkpoint
			for task, ssps := range m.Tasks {
				cp, err := m.Checkpoints.Read(context.Background(), task)
				if err != nil && !errors.Is(err, checkpoint.ErrNoCheckpoint) {
					t.Fatal(err)
				}
				for _, ssp := range ssps {
					if _, ok := cp.Offsets[ssp]; !ok {
						defaults = append(defaults, task+" "+ssp.String())
					}
				}
			}
			slices.Sort(defaults)
			before := f.stored(t)

			path := filepath.Join(f.dir, "offsets.properties")
			must(t, os.WriteFile(path, []byte(printed(t, f)), 0o644))
			r := f.run(t, append([]string{"--new-offsets=" + path}, mode...)...)
			must(t, r.err)
			var written []string // from the table of changes
			for _, line := range strings.Split(r.stdout, "\n") {
				if line == "" || strings.HasPrefix(line, "TASK") {
					continue
				}
				fs := strings.Fields(line) // Partition N, partition, old, new
				if len(fs) != 5 || fs[3] != "(none)" {
					t.Errorf("%v: a partition with a checkpoint changed: %q", mode, line)
					continue
				}
				written = append(written, fs[0]+" "+fs[1]+" "+fs[2])
			}
			slices.Sort(written)
			if !slices.Equal(written, defaults) {
				t.Errorf("%v: written %q, want exactly the partitions without a checkpoint %q\n%s", mode, written, defaults, r.stderr)
			}
			for _, line := range strings.Split(before, "\n") {
				if !strings.Contains(f.stored(t), line) {
					t.Errorf("%v: stored offsets %q lost:\n%s", mode, line, f.stored(t))
				}
			}

			// Now every partition has a checkpoint: a full round trip is a no-op.
			files := f.files(t)
			must(t, os.WriteFile(path, []byte(printed(t, f)), 0o644))
			r = f.run(t, append([]string{"--new-offsets=" + path}, mode...)...)
			if r.err != nil || r.stdout != "" || !strings.HasPrefix(r.stderr, "no change:") {
				t.Errorf("%v: feeding the printed file back again: err=%v stdout=%q stderr=%q", mode, r.err, r.stdout, r.stderr)
			}
			if after := f.files(t); after != files {
				t.Errorf("%v: checkpoint files were rewritten:\n%s\n%s", mode, files, after)
			}
		}
	}
}

// TestPrintedFileParses checks that the printed file is a clean properties file whose
// keys name exactly the job's tasks and partitions.
func TestPrintedFileParses(t *testing.T) {
	f := newFixture(t)
	m := f.open(t)
	var out bytes.Buffer
	must(t, checkpointtool.New(m, checkpointtool.Options{Stdout: &out}).Print(context.Background()))
	entries, err := properties.ParseMap(&out)
	must(t, err)
	var want []string
	for task, ssps := range m.Tasks {
		for _, ssp := range ssps {
			want = append(want, checkpointtool.Key(task, ssp))
		}
	}
	slices.Sort(want)
	keys := slices.Sorted(maps.Keys(entries))
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %q\nwant %q", keys, want)
	}
	if entries[checkpointtool.Key("Partition 0", pv0)] != "5" || entries[checkpointtool.Key("Partition 1", cl1)] != "0" {
		t.Errorf("entries = %v", entries)
	}
}

// TestApplyWritesThroughManager checks a plan's checkpoints and that Apply writes them.
func TestApplyWritesThroughManager(t *testing.T) {
	f := newFixture(t)
	m := f.open(t)
	var stderr bytes.Buffer
	tool := checkpointtool.New(m, checkpointtool.Options{Stderr: &stderr})
	p, err := tool.PlanFile(context.Background(), "x.properties", strings.NewReader(kPV0+"=9\n"+kCL2+"=3\n"), false)
	must(t, err)
	cps := p.Checkpoints()
	if got := cps["Partition 0"].Offsets; !maps.Equal(got, map[system.SystemStreamPartition]string{pv0: "9", cl0: "1"}) {
		t.Errorf("Partition 0 = %v, want the merge", got)
	}
	if got := cps["Partition 2"].Offsets; !maps.Equal(got, map[system.SystemStreamPartition]string{cl2: "3"}) {
		t.Errorf("Partition 2 = %v, want only clicks", got)
	}
	if _, ok := cps["Partition 1"]; ok {
		t.Error("Partition 1 is written though the file does not name it")
	}
	if len(p.Changes) != 2 {
		t.Errorf("changes = %+v", p.Changes)
	}
	must(t, tool.Apply(context.Background(), p))
	got, err := f.manager(t).Read(context.Background(), "Partition 2")
	must(t, err)
	if !got.Equal(cps["Partition 2"]) {
		t.Errorf("stored %v, want %v", got.Offsets, cps["Partition 2"].Offsets)
	}
}

// TestApplyUndoesFailedWrite checks the *WriteError of a failed rewrite and the order
// of the writes: a task with a corrupt checkpoint (which cannot be put back) is written
// last, and every task written before the failure is put back, the failed one too.
func TestApplyUndoesFailedWrite(t *testing.T) {
	f := newFixture(t)
	corrupt("Partition 0")(t, f)
	var fw *failingWrites
	f.wrap = func(m checkpoint.Manager) checkpoint.Manager {
		fw = &failingWrites{Manager: m, fail: "Partition 2", mu: new(sync.Mutex), calls: map[string]int{}}
		return deletingFailingWrites{fw}
	}
	r := f.run(t, "--reset-to=oldest")
	var we *checkpointtool.WriteError
	if !errors.As(r.err, &we) {
		t.Fatalf("error %v, want a *WriteError", r.err)
	}
	if we.Failed != "Partition 2" || len(we.LeftChanged) != 0 || we.FailedRestored != checkpointtool.RestoredDeleted ||
		!slices.Equal(we.NotWritten, []string{"Partition 0"}) ||
		!slices.Equal(we.Restored, []checkpointtool.Restored{{Task: "Partition 1", How: checkpointtool.RestoredOld}}) {
		t.Errorf("WriteError = %+v", we)
	}
	want := []string{"write Partition 1", "write Partition 2", "write Partition 1", "delete Partition 2"}
	if !slices.Equal(fw.log, want) {
		t.Errorf("calls %q, want %q", fw.log, want)
	}
	if got := f.stored(t); !strings.Contains(got, "Partition 1: mem.PageViewEvent#1=3\n") || strings.Contains(got, "Partition 2") {
		t.Errorf("stored after:\n%s", got)
	}
}

// probing tries to start a container of the job (take its run lock) at every read and
// write of the tool, and records what happened.
type probing struct {
	checkpoint.Manager
	f      *fixture
	t      *testing.T
	probes []error
}

func (m *probing) LockForRewrite(ctx context.Context) (io.Closer, error) {
	return m.Manager.(*filesystem.Manager).LockForRewrite(ctx)
}

func (m *probing) probe() {
	l, err := m.f.manager(m.t).AcquireRunLock(m.t.Context(), checkpoint.Container{ID: 0, Count: 1})
	if err == nil {
		l.Close()
	}
	m.probes = append(m.probes, err)
}

func (m *probing) Read(ctx context.Context, task string) (checkpoint.Checkpoint, error) {
	m.probe()
	return m.Manager.Read(ctx, task)
}

func (m *probing) Write(ctx context.Context, task string, cp checkpoint.Checkpoint) error {
	m.probe()
	return m.Manager.Write(ctx, task, cp)
}

// TestNoContainerStartsWhileRewriting checks that the tool holds the job's run lock
// exclusively from before it reads the stored checkpoints to plan until its last
// write: a container that starts meanwhile fails to take its run lock, saying why. A
// dry run takes no lock; and the lock is released when the tool is done.
func TestNoContainerStartsWhileRewriting(t *testing.T) {
	for _, args := range [][]string{{"--reset-to=upcoming"}, {"--reset-to=upcoming", "--dry-run"}} {
		f := newFixture(t)
		var p *probing
		f.wrap = func(m checkpoint.Manager) checkpoint.Manager {
			p = &probing{Manager: m, f: f, t: t}
			return p
		}
		r := f.run(t, args...)
		must(t, r.err)
		dry := len(args) > 1
		if len(p.probes) < 3 {
			t.Fatalf("%v: only %d probes", args, len(p.probes))
		}
		for i, err := range p.probes {
			switch {
			case dry && err != nil:
				t.Errorf("%v: probe %d: a container could not start during a dry run: %v", args, i, err)
			case !dry && !errors.Is(err, checkpoint.ErrRewriting):
				t.Errorf("%v: probe %d: a container starting while the tool rewrites got %v, want ErrRewriting", args, i, err)
			case !dry && !strings.Contains(err.Error(), "held exclusively"):
				t.Errorf("%v: probe %d: %v does not say why", args, i, err)
			}
		}
		l, err := f.manager(t).AcquireRunLock(t.Context(), checkpoint.Container{ID: 0, Count: 1})
		if err != nil {
			t.Fatalf("%v: a container cannot start after the tool is done: %v", args, err)
		}
		l.Close()
	}
}

// TestFilesSeesEveryRewrite checks the test's own helper: rewriting a checkpoint with
// the offsets it already holds changes what files reports, though stored does not.
func TestFilesSeesEveryRewrite(t *testing.T) {
	f := newFixture(t)
	stored, files := f.stored(t), f.files(t)
	f.write(t, "Partition 1", map[system.SystemStreamPartition]string{pv1: "3"})
	if f.stored(t) != stored {
		t.Fatalf("the same offsets read back differently:\n%s\n%s", stored, f.stored(t))
	}
	if f.files(t) == files {
		t.Errorf("a rewrite with the same offsets is not seen:\n%s", files)
	}
}
