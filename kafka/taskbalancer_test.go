package kafka

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func members(owned ...[]int32) []planMember {
	out := make([]planMember, len(owned))
	for i, o := range owned {
		out[i] = planMember{m: &kmsg.JoinGroupResponseMember{MemberID: fmt.Sprintf("m%d", i)}, owned: o, generation: 1}
	}
	return out
}

func plan(ms []planMember, n int32) [][]int32 {
	got := balanceTasks(ms, n)
	out := make([][]int32, len(ms))
	for i, m := range ms {
		out[i] = got[m.m]
	}
	return out
}

func TestBalanceTasks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []planMember
		n       int32
		want    [][]int32
	}{
		{"first member takes all", members(nil), 4, [][]int32{{0, 1, 2, 3}}},
		{"a new member takes half, the owner keeps the rest", members([]int32{0, 1, 2, 3}, nil), 4, [][]int32{{0, 1}, {2, 3}}},
		{"sticky: nothing moves when balanced", members([]int32{1, 3}, []int32{0, 2}), 4, [][]int32{{1, 3}, {0, 2}}},
		{"a dead member's tasks are shared", members([]int32{0, 1, 2}, []int32{3, 4, 5}, nil), 9, [][]int32{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}},
		{"the extra task stays with an owner", members([]int32{0, 1, 2}, []int32{3, 4}), 5, [][]int32{{0, 1, 2}, {3, 4}}},
		{"new tasks go to the emptiest", members([]int32{0, 1}, []int32{2, 3}), 6, [][]int32{{0, 1, 4}, {2, 3, 5}}},
		{"tasks beyond the count are dropped", members([]int32{0, 7}), 2, [][]int32{{0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.members, tc.n)
			if !slices.EqualFunc(got, tc.want, slices.Equal[[]int32]) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBalanceTasksNeverSplitsOrDuplicates(t *testing.T) {
	// Two members claim task 1 (one of them was taken for dead): the newer
	// generation keeps it, and every task has exactly one owner.
	ms := members([]int32{0, 1}, []int32{1, 2})
	ms[1].generation = 2
	got := plan(ms, 4)
	owners := map[int32]int{}
	for _, ts := range got {
		for _, t := range ts {
			owners[t]++
		}
	}
	for task := range int32(4) {
		if owners[task] != 1 {
			t.Errorf("task %d has %d owners: %v", task, owners[task], got)
		}
	}
	if !slices.Contains(got[1], 1) {
		t.Errorf("task 1 left the newer generation's claim: %v", got)
	}
}

func TestBalanceTasksRefusedMembersGetNothing(t *testing.T) {
	ms := members(nil, nil)
	ms[1].refused = "different inputs"
	if got := plan(ms, 3); len(got[1]) != 0 || len(got[0]) != 3 {
		t.Errorf("got %v, want all to the first member", got)
	}
}

func TestSettingsDiff(t *testing.T) {
	want := map[string]string{"task.inputs": "kafka.a", "task.class": "x"}
	if d := settingsDiff(want, map[string]string{"task.inputs": "kafka.a", "task.class": "x"}); d != "" {
		t.Errorf("equal settings differ: %s", d)
	}
	d := settingsDiff(want, map[string]string{"task.inputs": "kafka.a,kafka.b", "task.class": "x"})
	if want := `its configuration differs from the group's: task.inputs is "kafka.a,kafka.b" in this container but "kafka.a" in the group`; d != want {
		t.Errorf("diff = %q, want %q", d, want)
	}
}
