package offset_test

import (
	"fmt"
	"log/slog"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/offset"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

func Example() {
	jc, _ := job.Parse(config.New(map[string]string{
		"job.name": "j", "task.class": "t", "task.inputs": "mem.a",
		"systems.mem.samza.factory": "inmem",
	}))
	a := system.NewSSP("mem", "a", 0)
	meta := map[system.SystemStreamPartition]system.PartitionMetadata{a: {Oldest: "100", Newest: "199", Upcoming: "200"}}
	sys, _ := inmem.NewStore().Factory()("mem", config.Config{}, nil)
	admins := func(string) (system.Admin, bool) { return sys.Admin(), true }

	// The checkpoint says 42, but retention already deleted everything before 100.
	cp := checkpoint.Checkpoint{Offsets: map[system.SystemStreamPartition]string{a: "42"}}
	starts, _ := offset.Resolve(jc, "Partition 0", []system.SystemStreamPartition{a}, cp, nil, meta, admins, slog.New(slog.DiscardHandler))
	fmt.Println(starts[a].Offset, starts[a].Reason, starts[a].Gap)
	// Output:
	// 100 out-of-range 58
}
