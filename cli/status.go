package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

// Exit codes of `sluice status` besides ExitOK (the job runs), ExitFailure and
// ExitUsage.
const (
	// ExitNotRunning says no container of the job runs.
	ExitNotRunning = 3
	// ExitRunUnknown says the checkpoint manager cannot tell whether the job runs.
	ExitRunUnknown = 4
)

const statusSynopsis = `--config-path=PATH [--json]

Prints one line per task of the job: the container that runs it (when the job runs),
its checkpointed offset per input partition with the partition's high watermark, its
lag (messages from the checkpointed offsets to the high watermarks) and the age of its
last checkpoint. It works whether or not the job runs, and writes nothing.

exit codes: 0 the job is running, 3 it is not, 4 the checkpoint manager cannot tell,
1 runtime failure (unreachable system, corrupt checkpoint), 2 usage or configuration`

// jobStatus is what `sluice status` prints; --json prints it as is.
type jobStatus struct {
	Job     string `json:"job"`
	JobID   string `json:"job_id"`
	Running *bool  `json:"running"` // nil: unknown
	// Containers are the ids of the containers running (static mode, or group members
	// with --container-id); Group says job.coordinator.factory=kafka.
	Containers []int        `json:"containers"`
	Group      bool         `json:"group,omitempty"`
	Note       string       `json:"note,omitempty"`
	Tasks      []taskStatus `json:"tasks"`
	LagTotal   int64        `json:"lag_total"`
}

type taskStatus struct {
	Task string `json:"task"`
	// Container runs the task: its id, "" when the job does not run (or, in a group,
	// when it cannot be told).
	Container            string            `json:"container,omitempty"`
	Lag                  int64             `json:"lag"`
	LastCheckpoint       *time.Time        `json:"last_checkpoint,omitempty"`
	CheckpointAgeSeconds *float64          `json:"checkpoint_age_seconds,omitempty"`
	Partitions           []partitionStatus `json:"partitions"`
}

type partitionStatus struct {
	System    string `json:"system"`
	Stream    string `json:"stream"`
	Partition int32  `json:"partition"`
	// Checkpointed is the stored offset (the next to read); "" when none is stored.
	Checkpointed  string `json:"checkpointed_offset,omitempty"`
	HighWatermark string `json:"high_watermark"`
	// Lag counts from the checkpointed offset, or from where the partition would
	// start without one; -1 when it cannot be told.
	Lag int64 `json:"lag"`
}

// runningContainers is implemented by the checkpoint managers that can list the
// containers holding their run locks (kafka, filesystem).
type runningContainers interface {
	RunningContainers(ctx context.Context, count int) ([]int, error)
}

func (e *env) status(ctx context.Context, args []string) int {
	fs, level := e.flags("status", statusSynopsis)
	if f := fs.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
		*level = "warn"
	}
	path := fs.String("config-path", "", "the job's .properties file: a path or a file:// URL (required)")
	asJSON := fs.Bool("json", false, "print the status as one JSON document")
	if code, stop := e.parse(fs, args); stop {
		return code
	}
	if *path == "" {
		fmt.Fprintln(e.stderr, "sluice status: --config-path is required")
		fs.Usage()
		return ExitUsage
	}
	log, err := e.logger(*level)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice status:", err)
		return ExitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return e.configErr("cannot load the configuration", err)
	}
	parts, err := e.reg.jobParts(cfg, log, false)
	if err != nil {
		return e.configErr("the configuration in "+*path+" has problems; nothing was read", err)
	}
	m, err := jobmodel.Open(ctx, parts.Parts, log)
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice status: cannot read the job's partitions and checkpoints:", err)
		return ExitFailure
	}
	st, err := readStatus(ctx, m, time.Now())
	if cerr := m.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing: %w", cerr)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "sluice status:", err)
		return ExitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return ExitFailure
		}
	} else {
		writeStatus(e.stdout, st, time.Now())
	}
	switch {
	case st.Running == nil:
		return ExitRunUnknown
	case *st.Running:
		return ExitOK
	}
	return ExitNotRunning
}

// groupOwners fills owner with the container running each task in the job's task
// group: its container id, or dynamic@host without one; "none" for a task no member
// runs at the moment (a rebalance, or a container that died).
func groupOwners(ctx context.Context, m *jobmodel.Model, owner map[string]string) error {
	s, _ := m.System(m.Job.CoordinatorSystem)
	ks, ok := s.(*kafka.System)
	if !ok {
		return fmt.Errorf("the coordinator system %s is not a Kafka system", m.Job.CoordinatorSystem)
	}
	owners, err := kafka.TaskOwners(ctx, ks, m.Job.Name, m.Job.ID)
	if err != nil {
		return err
	}
	for task := range m.Tasks {
		p, _ := job.TaskPartition(task)
		owner[task] = cmp.Or(owners[p], "none")
	}
	return nil
}

// readStatus reads the job's checkpoints, whether it runs and which containers run.
func readStatus(ctx context.Context, m *jobmodel.Model, now time.Time) (*jobStatus, error) {
	jc := m.Job
	st := &jobStatus{Job: jc.Name, JobID: jc.ID, Group: jc.Coordinator == job.KafkaCoordinator, Containers: []int{}, Tasks: []taskStatus{}}
	cps := map[string]checkpoint.Checkpoint{}
	if m.Checkpoints == nil {
		st.Note = "the job has no checkpoint manager (task.checkpoint.factory): it keeps no checkpoints, and whether it runs cannot be told"
	} else {
		for task := range m.Tasks {
			cp, err := m.Checkpoints.Read(ctx, task)
			switch {
			case err == nil:
				cps[task] = cp
			case errors.Is(err, checkpoint.ErrNoCheckpoint):
			default:
				return nil, fmt.Errorf("read the checkpoint of task %q: %w", task, err)
			}
		}
		running, err := isRunning(ctx, m.Checkpoints)
		if err != nil {
			st.Note = "cannot tell whether the job is running: " + err.Error()
		}
		st.Running = running
		if running != nil && *running {
			if rc, ok := m.Checkpoints.(runningContainers); ok {
				n := jc.ContainerCount
				if st.Group {
					n = len(m.Tasks) // ids of group members are below the task count
				}
				ids, err := rc.RunningContainers(ctx, n)
				if err != nil {
					st.Note = "cannot tell which containers run: " + err.Error()
				}
				st.Containers = append(st.Containers, ids...)
			}
		}
	}
	// The static assignment: container id runs every count-th task by partition.
	owner := map[string]string{}
	if !st.Group && st.Running != nil && *st.Running {
		names := slices.SortedFunc(maps.Keys(m.Tasks), job.CompareTaskNames)
		for i, task := range names {
			id := i % max(jc.ContainerCount, 1)
			if slices.Contains(st.Containers, id) {
				owner[task] = strconv.Itoa(id)
			} else {
				owner[task] = "none"
			}
		}
	}
	if st.Group && st.Running != nil && *st.Running {
		if err := groupOwners(ctx, m, owner); err != nil {
			st.Note = "cannot tell which container runs each task: " + err.Error()
		}
	}
	known := map[system.SystemStream]bool{}
	for _, cp := range cps {
		for ssp := range cp.Offsets {
			known[ssp.SystemStream] = true
		}
	}
	for _, task := range slices.SortedFunc(maps.Keys(m.Tasks), job.CompareTaskNames) {
		cp := cps[task]
		ts := taskStatus{Task: task, Container: owner[task], Partitions: []partitionStatus{}}
		if !cp.Written.IsZero() {
			at := cp.Written.UTC()
			age := now.Sub(at).Seconds()
			ts.LastCheckpoint, ts.CheckpointAgeSeconds = &at, &age
		}
		var defaults map[string]string
		for _, ssp := range m.Tasks[task] {
			ps := partitionStatus{System: ssp.System, Stream: ssp.Stream, Partition: ssp.Partition, Checkpointed: cp.Offsets[ssp],
				HighWatermark: m.Meta[ssp].Upcoming, Lag: -1}
			from := ps.Checkpointed
			if from == "" {
				if defaults == nil {
					defaults = map[string]string{}
					if starts, err := m.DefaultStarts(task, known); err == nil {
						for s, st := range starts {
							defaults[s.String()] = st.Offset
						}
					}
				}
				from = defaults[ssp.String()]
			}
			if admin, ok := m.Admin(ssp.System); ok && from != "" && ps.HighWatermark != "" {
				if d, err := admin.Distance(from, ps.HighWatermark); err == nil {
					ps.Lag = max(d, 0)
				}
			}
			ts.Lag += max(ps.Lag, 0)
			ts.Partitions = append(ts.Partitions, ps)
		}
		st.LagTotal += ts.Lag
		st.Tasks = append(st.Tasks, ts)
	}
	return st, nil
}

// isRunning asks the checkpoint manager whether a container of the job runs; nil when
// it cannot tell.
func isRunning(ctx context.Context, cpm checkpoint.Manager) (*bool, error) {
	var err error
	switch c := cpm.(type) {
	case interface{ CheckNotRunning(context.Context) error }:
		err = c.CheckNotRunning(ctx)
	case interface{ CheckNotRunning() error }:
		err = c.CheckNotRunning()
	default:
		return nil, errors.New("its checkpoint manager keeps no run lock")
	}
	yes, no := true, false
	switch {
	case err == nil, errors.Is(err, checkpoint.ErrRewriting):
		return &no, nil
	case errors.Is(err, checkpoint.ErrJobRunning):
		return &yes, nil
	}
	return nil, err
}

// writeStatus prints st as a header line and a table, one line per task.
func writeStatus(w interface{ Write([]byte) (int, error) }, st *jobStatus, now time.Time) {
	state := "not running"
	switch {
	case st.Running == nil:
		state = "running: unknown"
	case *st.Running && st.Group:
		state = "running (job.coordinator.factory=kafka)"
		if len(st.Containers) > 0 {
			state += ", containers with ids: " + joinInts(st.Containers)
		}
	case *st.Running:
		state = "running, containers: " + joinInts(st.Containers)
	}
	fmt.Fprintf(w, "job %s (job.id %s): %s; lag %d\n", st.Job, st.JobID, state, st.LagTotal)
	if st.Note != "" {
		fmt.Fprintf(w, "note: %s\n", st.Note)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tCONTAINER\tLAG\tLAST CHECKPOINT\tPARTITIONS (checkpointed offset / high watermark)")
	for _, ts := range st.Tasks {
		owner := ts.Container
		if owner == "" {
			owner = "-"
		}
		age := "none"
		if ts.LastCheckpoint != nil {
			age = now.Sub(*ts.LastCheckpoint).Round(time.Second).String() + " ago"
		}
		var parts []string
		for _, p := range ts.Partitions {
			off := p.Checkpointed
			if off == "" {
				off = "none"
			}
			parts = append(parts, fmt.Sprintf("%s.%s#%d=%s/%s", p.System, p.Stream, p.Partition, off, p.HighWatermark))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", ts.Task, owner, ts.Lag, age, strings.Join(parts, " "))
	}
	tw.Flush()
}

func joinInts(ids []int) string {
	if len(ids) == 0 {
		return "none found"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}
