package jobmodel_test

import (
	"context"
	"fmt"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

// A tool opens a job without running it, and sees its tasks.
func Example() {
	store := inmem.NewStore()
	store.CreateStream("PageViewEvent", 2)
	cfg := config.New(map[string]string{
		"job.name": "page-views", "task.class": "com.example.PageViewTask", "task.inputs": "mem.PageViewEvent",
		"systems.mem.samza.factory": "inmem",
	})
	f := jobmodel.Factories{Systems: map[string]system.Factory{"inmem": store.Factory()}}
	var p config.Problems
	parts := jobmodel.Build(&p, cfg, f, nil)
	parts.BuildCheckpoints(&p, cfg, f, nil)
	if err := p.Err(); err != nil {
		fmt.Println(err)
		return
	}
	m, err := jobmodel.Open(context.Background(), parts, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(m.Tasks["Partition 0"], m.Tasks["Partition 1"])
	// Output: [mem.PageViewEvent#0] [mem.PageViewEvent#1]
}
