package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// RunningContainers returns, in order, the ids among 0..count-1 of the job's
// containers that hold their run lock now (members of the run-lock group with their
// container's instance id), for `sluice status`. Containers of a group started
// without --container-id hold no id, and are not listed. It does not need Start.
func (m *CheckpointManager) RunningContainers(ctx context.Context, count int) ([]int, error) {
	adm, done, err := m.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	group := m.RunLockGroup()
	gs, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = gs[group].Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("checkpoint: describing the run-lock group %s: %w", group, err)
	}
	var ids []int
	prefix := group + "-container-"
	for _, mem := range gs[group].Members {
		if mem.InstanceID == nil {
			continue
		}
		s, ok := strings.CutPrefix(*mem.InstanceID, prefix)
		if id, err := strconv.Atoi(s); ok && err == nil && id >= 0 && id < count {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
