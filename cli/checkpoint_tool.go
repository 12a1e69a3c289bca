package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-streams/sluice/checkpointtool"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/jobmodel"
)

const checkpointToolSynopsis = `--config-path=PATH [--new-offsets=PATH [--replace] | --reset-to=oldest|upcoming|TIME [--streams=system.stream,...]] [--dry-run] [--force] [--strict]

Prints the job's latest checkpoints to stdout as a properties file, one line per task
and input partition; each offset is the NEXT offset the task reads. With --new-offsets
or --reset-to it rewrites them instead (stop the job first). Notes, warnings and errors
go to stderr.

exit codes: 0 done (or nothing to change), 1 runtime failure (unreachable system,
corrupt checkpoint, job running, failed write), 2 usage, configuration or bad
--new-offsets file (nothing written)`

// rewriteHook, when set, is the checkpoint tool's checkpointtool.Options.AfterWrite:
// it is called after each task's checkpoint of a rewrite is stored. Only tests set it
// (SetRewriteHook, in export_test.go), to stop a tool part way through a rewrite and
// kill it; nothing in a sluice binary can set it, so there it is always nil.
var rewriteHook func(task string, n int)

// checkpointTool runs `sluice checkpoint-tool`; the logic is in package checkpointtool.
func (e *env) checkpointTool(ctx context.Context, args []string) int {
	fs, level := e.flags("checkpoint-tool", checkpointToolSynopsis)
	// The tool's stderr is for people: systems' info logs are noise there.
	if f := fs.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
		*level = "warn"
	}
	path := fs.String("config-path", "", "the job's .properties file: a path or a file:// URL (required)")
	newOffsets := fs.String("new-offsets", "", "write the offsets of this properties file (a path or a file:// URL), merged into the stored checkpoints")
	replace := fs.Bool("replace", false, "with --new-offsets: each task named in the file gets exactly the file's partitions; its others lose their checkpoint")
	resetTo := fs.String("reset-to", "", "set every task's offsets to the `target`: oldest, upcoming, or the first message at or after an RFC 3339 time (2024-05-01T12:00:00Z)")
	streams := fs.String("streams", "", "with --reset-to: only these input streams, comma-separated system.stream")
	dryRun := fs.Bool("dry-run", false, "print the changes on stdout and write nothing")
	force := fs.Bool("force", false, "write even while the job is running, and offsets outside the range the system retains (each with a warning)")
	strict := strictFlag(fs)
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	if *path == "" {
		fmt.Fprintln(e.stderr, "sluice checkpoint-tool: --config-path is required")
		fs.Usage()
		return ExitUsage
	}
	req := checkpointtool.Request{NewOffsets: *newOffsets, Replace: *replace, ResetTo: *resetTo}
	for _, s := range strings.Split(*streams, ",") {
		if s = strings.TrimSpace(s); s != "" {
			req.Streams = append(req.Streams, s)
		}
	}
	if err := req.Check(); err != nil {
		e.printErr(err)
		return ExitUsage
	}
	if *dryRun && req.NewOffsets == "" && req.ResetTo == "" {
		fmt.Fprintln(e.stderr, "sluice checkpoint-tool: --dry-run needs --new-offsets or --reset-to (printing writes nothing anyway)")
		return ExitUsage
	}
	log, err := e.logger(*level)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice checkpoint-tool:", err)
		return ExitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return e.configErr("cannot load the configuration", err)
	}
	parts, err := e.reg.jobParts(cfg, log, *strict)
	if err != nil {
		return e.configErr("the configuration in "+*path+" has problems; nothing was read or written", err)
	}
	e.warn(parts.warnings)
	m, err := jobmodel.Open(ctx, parts.Parts, log)
	if err != nil {
		e.printErr(fmt.Errorf("cannot read the job's partitions and checkpoints: %w", err))
		return ExitFailure
	}
	tool := checkpointtool.New(m, checkpointtool.Options{
		Stdout: e.stdout, Stderr: e.stderr, ConfigPath: *path, Force: *force, DryRun: *dryRun,
		AfterWrite: rewriteHook,
	})
	err = tool.Run(ctx, req)
	if cerr := m.Close(); cerr != nil {
		fmt.Fprintln(e.stderr, "sluice checkpoint-tool: closing:", cerr)
		if err == nil {
			return ExitFailure
		}
	}
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, checkpointtool.ErrBadInput):
		e.printErr(err)
		return ExitUsage
	}
	e.printErr(err)
	return ExitFailure
}

// printErr prints err's first line after the command's name and its other lines
// indented below it.
func (e *env) printErr(err error) {
	lines := strings.Split(err.Error(), "\n")
	fmt.Fprintln(e.stderr, "sluice checkpoint-tool:", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintln(e.stderr, "  "+l)
	}
}
