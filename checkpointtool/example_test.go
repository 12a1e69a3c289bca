package checkpointtool_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/checkpointtool"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

// Example prints a job's checkpoints, then moves one partition back to offset 0 with
// an edited file, as `sluice checkpoint-tool` does.
func Example() {
	dir, err := os.MkdirTemp("", "checkpointtool-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// A job reading two partitions of an in-memory stream, with filesystem checkpoints.
	store := inmem.NewStore()
	_ = store.CreateStream("PageViewEvent", 2)
	for range 3 {
		_, _ = store.Append("PageViewEvent", 0, nil, []byte("view"))
	}
	cfg := config.New(map[string]string{
		"job.name":                  "page-views",
		"task.class":                "noop",
		"task.inputs":               "mem.PageViewEvent",
		"systems.mem.samza.factory": "inmem",
		"task.checkpoint.factory":   "filesystem",
		"task.checkpoint.path":      filepath.Join(dir, "checkpoints"),
	})
	// The job's systems and checkpoint manager, built and opened as the tool opens
	// them: no task runs, and task.class needs no implementation.
	var problems config.Problems
	fs := jobmodel.Factories{
		Systems: map[string]system.Factory{"inmem": store.Factory()},
		Checkpoints: map[string]jobmodel.CheckpointFactory{
			"filesystem": func(jc *job.Config, _ map[string]system.System, _ *slog.Logger) (checkpoint.Manager, error) {
				return filesystem.New(jc.CheckpointPath, jc.Name, jc.ID)
			},
		},
	}
	parts := jobmodel.Build(&problems, cfg, fs, nil)
	parts.BuildCheckpoints(&problems, cfg, fs, nil)
	if err := problems.Err(); err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	m, err := jobmodel.Open(ctx, parts, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	_ = m.Checkpoints.Write(ctx, "Partition 0", checkpoint.New(map[system.SystemStreamPartition]string{
		system.NewSSP("mem", "PageViewEvent", 0): "3",
	}))

	// Print: comments and the offsets of both tasks (Partition 1 has no checkpoint, so
	// its default starting offset is shown).
	var out strings.Builder
	tool := checkpointtool.New(m, checkpointtool.Options{Stdout: &out, Stderr: os.Stdout})
	if err := tool.Print(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "tasknames.") {
			fmt.Println(line)
		}
	}

	// Replay partition 0 from the start: offsets are the next offset to read.
	p, err := tool.PlanFile(ctx, "edited.properties",
		strings.NewReader(`tasknames.Partition\ 0.systems.mem.streams.PageViewEvent.partitions.0=0`), false)
	if err != nil {
		fmt.Println(err)
		return
	}
	tool = checkpointtool.New(m, checkpointtool.Options{Stdout: os.Stdout, Stderr: os.Stdout})
	if err := tool.Apply(ctx, p); err != nil {
		fmt.Println(err)
	}
	// Output:
	// tasknames.Partition\ 0.systems.mem.streams.PageViewEvent.partitions.0=3
	// tasknames.Partition\ 1.systems.mem.streams.PageViewEvent.partitions.1=0
	// TASK         PARTITION            OLD  NEW
	// Partition 0  mem.PageViewEvent#0  3    0
	// wrote the checkpoints of 1 task (1 offset changed): Partition 0
	// the job starts from them the next time it starts
}
