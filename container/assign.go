package container

import "slices"

// assignment decides which tasks this container runs: the seam between today's static
// assignment and one that changes while the container runs.
type assignment interface {
	// tasks returns, of the job's tasks (by partition number), those of this container.
	tasks(all []int32) []int32
}

// staticAssignment spreads tasks round-robin over job.container.count containers by
// partition number: container id takes every count-th task, starting at its id.
// Partitions added to an input get higher numbers, so the tasks a container has keep
// going to it.
type staticAssignment struct{ count, id int }

func (s staticAssignment) tasks(all []int32) []int32 {
	all = slices.Sorted(slices.Values(all))
	var mine []int32
	for i, p := range all {
		if i%s.count == s.id {
			mine = append(mine, p)
		}
	}
	return mine
}
