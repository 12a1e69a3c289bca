package container

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// status writes the periodic progress line: throughput, lag of the tasks still
// catching up, the time of the last checkpoint, and the job's containers that do not
// hold their run lock (peers_missing: their tasks are not processed).
type status struct {
	r        *run
	lastAt   time.Time
	lastSeen int64
}

func newStatus(r *run) *status {
	return &status{r: r, lastAt: time.Now(), lastSeen: r.c.stats.processed.Load()}
}

// maxLagEntries bounds how many tasks the status line names.
const maxLagEntries = 8

func (s *status) report(ctx context.Context) {
	now := time.Now()
	st := s.r.c.Stats()
	rate := float64(st.Processed-s.lastSeen) / now.Sub(s.lastAt).Seconds()
	s.lastAt, s.lastSeen = now, st.Processed

	attrs := []any{"processed", st.Processed, "rate_per_s", fmt.Sprintf("%.0f", rate)}
	if lags, total, err := s.lags(ctx); err != nil {
		attrs = append(attrs, "lag", "unknown: "+err.Error())
	} else {
		attrs = append(attrs, "lag_total", total)
		if len(lags) > 0 {
			attrs = append(attrs, "lag_by_task", lags)
		}
	}
	var booting []string
	for _, name := range sortedNames(s.r.tasks) {
		if s.r.tasks[name].core.bootstrapping.Load() {
			booting = append(booting, strings.TrimPrefix(name, "Partition "))
		}
	}
	if len(booting) > 0 {
		attrs = append(attrs, "bootstrapping", strings.Join(booting, ","))
	}
	if co := s.r.coord; co != nil {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		gs, err := co.Status(gctx)
		cancel()
		if err != nil {
			attrs = append(attrs, "group", "unknown: "+err.Error())
		} else {
			attrs = append(attrs, "group_generation", gs.Generation, "group_containers", gs.Containers, "group_tasks", gs.Tasks, "tasks_here", len(s.r.tasks))
		}
	}
	if missing, err := s.missingPeers(ctx); err != nil {
		attrs = append(attrs, "peers", "unknown: "+err.Error())
	} else if missing != "" {
		attrs = append(attrs, "peers_missing", missing)
	}
	if st.LastCheckpoint.IsZero() {
		attrs = append(attrs, "last_checkpoint", "none yet")
	} else {
		attrs = append(attrs, "last_checkpoint", st.LastCheckpoint.Format(time.TimeOnly),
			"checkpoint_age", now.Sub(st.LastCheckpoint).Round(100*time.Millisecond).String())
	}
	s.r.log.Info("status", attrs...)
}

// missingPeers returns the ids of the job's other containers that do not hold their
// run lock, as "1,2", or "" when none is missing (or the run lock cannot tell).
func (s *status) missingPeers(ctx context.Context) (string, error) {
	n := s.r.c.jc.ContainerCount
	if s.r.runLock == nil || n < 2 {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	live, err := s.r.runLock.Peers(ctx)
	if err != nil {
		return "", err
	}
	var missing []string
	for id := range n {
		if !slices.Contains(live, id) {
			missing = append(missing, strconv.Itoa(id))
		}
	}
	return strings.Join(missing, ","), nil
}

// lags returns the tasks that are behind, most behind first, and the total lag. It
// asks no system: the high watermarks are those the consumers last heard (see
// Container.Progress), so it never holds up the control loop.
func (s *status) lags(context.Context) (string, int64, error) {
	byTask := map[string]int64{}
	var total int64
	for _, tp := range s.r.c.Progress().Tasks {
		for _, pp := range tp.Partitions {
			if pp.Lag < 0 {
				return "", 0, fmt.Errorf("the end of %s is not known yet", pp.SSP)
			}
			if pp.Lag > 0 {
				byTask[tp.Task] += pp.Lag
				total += pp.Lag
			}
		}
	}
	names := slices.Collect(maps.Keys(byTask))
	slices.SortFunc(names, func(a, b string) int {
		if byTask[a] != byTask[b] {
			return int(byTask[b] - byTask[a])
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for i, n := range names {
		if i == maxLagEntries {
			fmt.Fprintf(&b, " …%d more", len(names)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", strings.TrimPrefix(n, "Partition "), byTask[n])
	}
	return b.String(), total, nil
}
