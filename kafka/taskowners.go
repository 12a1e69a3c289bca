package kafka

import (
	"context"
	"fmt"
	"strings"
)

// TaskOwners returns who runs each task of the job's task group (job.coordinator.
// factory=kafka) now, by task partition: the member's container id when it has one
// (--container-id, its group.instance.id), else its client host, as "dynamic@<host>".
// A group with no members (the job does not run) gives none.
func TaskOwners(ctx context.Context, s *System, job, jobID string) (map[int32]string, error) {
	if err := s.started(); err != nil {
		return nil, err
	}
	g := &TaskGroup{cfg: TaskGroupConfig{Job: job, JobID: jobID}}
	described, err := s.adm.DescribeGroups(ctx, g.Group())
	if err != nil {
		return nil, fmt.Errorf("describe the job's task group %s: %w", g.Group(), err)
	}
	owners := map[int32]string{}
	if err := described.Error(); err != nil {
		return nil, fmt.Errorf("describe the job's task group %s: %w", g.Group(), err)
	}
	for _, d := range described.Sorted() {
		for _, m := range d.Members {
			who := "dynamic@" + strings.TrimPrefix(m.ClientHost, "/")
			if m.InstanceID != nil && *m.InstanceID != "" {
				who = *m.InstanceID
			}
			c, ok := m.Assigned.AsConsumer()
			if !ok {
				continue
			}
			for _, t := range c.Topics {
				if t.Topic != g.Topic() {
					continue
				}
				for _, p := range t.Partitions {
					owners[p] = who
				}
			}
		}
	}
	return owners, nil
}
