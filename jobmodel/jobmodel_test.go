package jobmodel_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

func factories(store *inmem.Store) jobmodel.Factories {
	return jobmodel.Factories{Systems: map[string]system.Factory{"inmem": store.Factory()}}
}

// TestOpenGroupsPartitionsIntoTasks: a job whose task no program here implements opens
// all the same; its tasks are its partition numbers, each with the broadcast partition.
func TestOpenGroupsPartitionsIntoTasks(t *testing.T) {
	store := inmem.NewStore()
	store.CreateStream("a", 3)
	store.CreateStream("b", 2)
	store.CreateStream("control", 2)
	cfg := config.New(map[string]string{
		"job.name": "j", "task.class": "nobody.knows.this.Task", "task.inputs": "mem.a,mem.b",
		"systems.mem.samza.factory": "inmem", "task.broadcast.inputs": "mem.control#1",
	})
	var p config.Problems
	parts := jobmodel.Build(&p, cfg, factories(store), nil)
	parts.BuildCheckpoints(&p, cfg, factories(store), nil)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	m, err := jobmodel.Open(context.Background(), parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := map[string]string{}
	for name, ssps := range m.Tasks {
		var s []string
		for _, ssp := range ssps {
			s = append(s, ssp.String())
		}
		got[name] = strings.Join(s, " ")
	}
	want := map[string]string{
		"Partition 0": "mem.a#0 mem.b#0 mem.control#1",
		"Partition 1": "mem.a#1 mem.b#1 mem.control#1",
		"Partition 2": "mem.a#2 mem.control#1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tasks %v, want %v", got, want)
	}
	if _, ok := m.Meta[system.NewSSP("mem", "control", 0)]; ok {
		t.Error("the metadata holds control#0, which the job does not read")
	}
	if m.Checkpoints != nil {
		t.Error("a job without task.checkpoint.factory has a checkpoint manager")
	}
}

func TestBuildReportsEveryProblem(t *testing.T) {
	cfg := config.New(map[string]string{
		"task.class": "t", "task.inputs": "mem.a", "systems.mem.samza.factory": "nosuch",
		"task.checkpoint.factory": "alsonosuch", "task.comit.ms": "5",
	})
	var p config.Problems
	parts := jobmodel.Build(&p, cfg, factories(inmem.NewStore()), nil)
	parts.BuildCheckpoints(&p, cfg, factories(inmem.NewStore()), nil)
	keys := jobmodel.CheckKeys(&p, cfg, parts.Job, nil, nil, nil, true)
	err := p.Err()
	for _, want := range []string{"job.name: is required", "systems.mem.samza.factory=nosuch: unknown system factory",
		"task.checkpoint.factory=alsonosuch: unknown checkpoint manager", "task.comit.ms=5", "did you mean task.commit.ms"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(keys.Warnings) != 0 {
		t.Errorf("strict: warnings %v are not problems", keys.Warnings)
	}
}

func TestTaskPartitionsLeavesBroadcastPartitionsOutOfTheGrouping(t *testing.T) {
	var p config.Problems
	store := inmem.NewStore()
	cfg := config.New(map[string]string{"job.name": "j", "task.class": "t", "task.inputs": "mem.a",
		"systems.mem.samza.factory": "inmem", "task.broadcast.inputs": "mem.a#1"})
	parts := jobmodel.Build(&p, cfg, factories(store), nil)
	meta := map[system.SystemStreamPartition]system.PartitionMetadata{}
	for q := range int32(3) {
		meta[system.NewSSP("mem", "a", q)] = system.PartitionMetadata{}
	}
	tasks := jobmodel.TaskPartitions(parts.Job, meta)
	if len(tasks) != 2 || !slices.Contains(tasks[2], system.NewSSP("mem", "a", 1)) || tasks[1] != nil {
		t.Errorf("tasks %v: want Partition 0 and 2, each with mem.a#1", tasks)
	}
}

// pickySystem refuses stream names with a '!', as Kafka refuses some topic names.
type pickySystem struct{ system.System }

func (pickySystem) ValidateStreamName(stream string) error {
	if strings.Contains(stream, "!") {
		return fmt.Errorf("has a '!'")
	}
	return nil
}

func TestCheckStreamsChecksBroadcastStreams(t *testing.T) {
	store := inmem.NewStore()
	f := jobmodel.Factories{Systems: map[string]system.Factory{"inmem": func(name string, cfg config.Config, l *slog.Logger) (system.System, error) {
		s, err := store.Factory()(name, cfg, l)
		return pickySystem{s}, err
	}}}
	cfg := config.New(map[string]string{"job.name": "j", "task.class": "t", "task.inputs": "mem.a",
		"systems.mem.samza.factory": "inmem", "task.broadcast.inputs": "mem.bad!#0"})
	var p config.Problems
	parts := jobmodel.Build(&p, cfg, f, nil)
	jobmodel.CheckStreams(&p, cfg, parts.Job, parts.Systems, nil)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "task.broadcast.inputs=mem.bad!#0: mem.bad!: has a '!'") {
		t.Errorf("error = %v", err)
	}
}
