package kafka

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// taskBalancer is the group protocol of a job's containers (job.coordinator.factory=
// kafka): a cooperative balancer over the partitions of the job's task topic, where
// partition N stands for task "Partition N" (partition N of every input), so a task is
// never split. It is sticky (a member keeps the tasks it owns while the balance allows
// it) and balances by task count. Being cooperative, a task moving from one member to
// another is first taken from its owner only; the owner finishes and commits it,
// rejoins, and the next round gives it to its new owner (BalancePlan.AdjustCooperative),
// so a task never runs in two containers at once and the tasks that do not move keep
// running through a rebalance.
//
// Each member's metadata carries what must be the same in every container of the job
// (its inputs, task class, job id, guarantee) and its container id. The leader
// assigns no task to a member whose settings differ from its own, and tells it why in
// its assignment; that member then stops with that reason.
type taskBalancer struct {
	topic  string
	self   memberInfo
	onSync func(assignment) // a member's own assignment, decoded
}

// memberInfo is the user data of a member's metadata.
type memberInfo struct {
	Version   int               `json:"v"`
	Container string            `json:"container,omitempty"`
	Settings  map[string]string `json:"settings"`
}

// assignmentInfo is the user data of a member's assignment.
type assignmentInfo struct {
	Version int    `json:"v"`
	Refused string `json:"refused,omitempty"`
}

// assignment is what a member was given in one round.
type assignment struct {
	tasks   []int32
	refused string
}

const taskProtocolVersion = 1

var (
	_ kgo.GroupBalancer           = (*taskBalancer)(nil)
	_ kgo.ConsumerBalancerBalance = (*taskBalancer)(nil)
)

func (b *taskBalancer) ProtocolName() string { return "sluice-tasks" }

func (b *taskBalancer) IsCooperative() bool { return true }

func (b *taskBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for _, topic := range slices.Sorted(maps.Keys(current)) {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic, owned.Partitions = topic, current[topic]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	meta.UserData, _ = json.Marshal(b.self)
	return meta.AppendTo(nil)
}

func (b *taskBalancer) ParseSyncAssignment(raw []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("sluice task group: undecodable assignment: %w", err)
	}
	out := map[string][]int32{}
	var got assignment
	for _, t := range a.Topics {
		if t.Topic == b.topic {
			out[t.Topic] = t.Partitions
			got.tasks = slices.Clone(t.Partitions)
		}
	}
	var info assignmentInfo
	if len(a.UserData) > 0 && json.Unmarshal(a.UserData, &info) == nil {
		got.refused = info.Refused
	}
	if b.onSync != nil {
		b.onSync(got)
	}
	return out, nil
}

func (b *taskBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance; it runs on the leader.
func (b *taskBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	n := topics[b.topic]
	var members []planMember
	leader := cb.Info().LeaderID
	var reference *memberInfo
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		pm := planMember{m: m, generation: meta.Generation}
		if err := json.Unmarshal(meta.UserData, &pm.info); err != nil || pm.info.Version != taskProtocolVersion {
			pm.refused = "its group metadata is not that of this Sluice version's containers"
		}
		for _, o := range meta.OwnedPartitions {
			if o.Topic == b.topic {
				pm.owned = slices.Clone(o.Partitions)
			}
		}
		if m.MemberID == leader && pm.refused == "" {
			info := pm.info
			reference = &info
		}
		members = append(members, pm)
	})
	if reference == nil { // no usable leader metadata: take this process's own
		reference = &b.self
	}
	for i := range members {
		if members[i].refused == "" {
			members[i].refused = settingsDiff(reference.Settings, members[i].info.Settings)
		}
	}
	plan := cb.NewPlan()
	for m, tasks := range balanceTasks(members, n) {
		plan.AddPartitions(m, b.topic, tasks)
	}
	plan.AdjustCooperative(cb)
	refusals := map[string]string{}
	for _, pm := range members {
		if pm.refused != "" {
			refusals[pm.m.MemberID] = pm.refused
		}
	}
	return taskPlan{plan: plan, refusals: refusals}
}

// planMember is one member as the leader balances.
type planMember struct {
	m          *kmsg.JoinGroupResponseMember
	info       memberInfo
	owned      []int32
	generation int32
	refused    string // why it gets no tasks
}

// balanceTasks gives each of the n tasks to one eligible member (one not refused), in
// member order: every member keeps as many of its owned tasks as its share allows,
// and the rest go to the members below their share. A task two members claim (one of
// them was thought dead) stays with the claim of the newer generation.
func balanceTasks(members []planMember, n int32) map[*kmsg.JoinGroupResponseMember][]int32 {
	var eligible []*planMember
	for i := range members {
		if members[i].refused == "" {
			eligible = append(eligible, &members[i])
		}
	}
	out := map[*kmsg.JoinGroupResponseMember][]int32{}
	if len(eligible) == 0 || n <= 0 {
		return out
	}
	claim := map[int32]*planMember{}
	for _, pm := range eligible {
		for _, t := range pm.owned {
			if t < 0 || t >= n {
				continue
			}
			if prev, ok := claim[t]; !ok || pm.generation > prev.generation {
				claim[t] = pm
			}
		}
	}
	kept := map[*planMember][]int32{}
	for t, pm := range claim {
		kept[pm] = append(kept[pm], t)
	}
	// Shares: n/k each, and one more for the first n%k members, preferring those
	// that own the most, so fewer tasks move.
	order := slices.Clone(eligible)
	slices.SortStableFunc(order, func(a, b *planMember) int { return len(kept[b]) - len(kept[a]) })
	share := map[*planMember]int{}
	base, extra := int(n)/len(order), int(n)%len(order)
	for i, pm := range order {
		share[pm] = base
		if i < extra {
			share[pm]++
		}
	}
	var free []int32
	for t := range n {
		if _, ok := claim[t]; !ok {
			free = append(free, t)
		}
	}
	for _, pm := range eligible {
		ts := kept[pm]
		slices.Sort(ts)
		if len(ts) > share[pm] {
			free = append(free, ts[share[pm]:]...)
			ts = ts[:share[pm]]
		}
		kept[pm] = ts
	}
	slices.Sort(free)
	for _, pm := range eligible {
		for len(kept[pm]) < share[pm] && len(free) > 0 {
			kept[pm] = append(kept[pm], free[0])
			free = free[1:]
		}
		ts := kept[pm]
		slices.Sort(ts)
		out[pm.m] = ts
	}
	return out
}

// settingsDiff says how a member's settings differ from the group's, or "" when they
// do not.
func settingsDiff(want, got map[string]string) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s is %q in this container but %q in the group", k, got[k], want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s is %q in this container but not set in the group", k, got[k]))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return "its configuration differs from the group's: " + strings.Join(diffs, "; ")
}

// taskPlan is the leader's answer: each member's tasks, and why a refused member got
// none.
type taskPlan struct {
	plan     *kgo.BalancePlan
	refusals map[string]string
}

func (p taskPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	plan := p.plan.AsMemberIDMap()
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(plan))
	for _, member := range slices.Sorted(maps.Keys(plan)) {
		a := kmsg.NewConsumerMemberAssignment()
		for _, topic := range slices.Sorted(maps.Keys(plan[member])) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic = topic
			t.Partitions = slices.Sorted(slices.Values(plan[member][topic]))
			a.Topics = append(a.Topics, t)
		}
		a.UserData, _ = json.Marshal(assignmentInfo{Version: taskProtocolVersion, Refused: p.refusals[member]})
		sa := kmsg.NewSyncGroupRequestGroupAssignment()
		sa.MemberID = member
		sa.MemberAssignment = a.AppendTo(nil)
		out = append(out, sa)
	}
	return out
}
