package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TaskGroupConfig configures the consumer group through which the containers of one
// job share its tasks.
type TaskGroupConfig struct {
	// Job and JobID name the job: the group is sluice-tasks-<job>-<id> and its task
	// topic __sluice_tasks_<job>_<id>.
	Job, JobID string
	// InstanceID, when set, makes the container a static member (group.instance.id):
	// restarted within the session timeout it gets its tasks back without a
	// rebalance, and a second container with the same id fences the first.
	InstanceID string
	// Settings must be equal in every container of the job (inputs, task class, ...):
	// the group refuses a container whose settings differ, naming the difference.
	Settings map[string]string
	// SessionTimeout is how long a container may go unheard before the group gives
	// its tasks to others; RebalanceTimeout bounds how long a container may take to
	// release tasks in a rebalance.
	SessionTimeout, RebalanceTimeout time.Duration
	// ReplicationFactor of the task topic when it is created (capped at the number of
	// brokers).
	ReplicationFactor int16
}

// TaskGroupHandler hears what the group decides. The functions are called one at a
// time, from the group's goroutines.
type TaskGroupHandler struct {
	// Assigned gives the container tasks (by partition number) that no other
	// container runs any more: their previous owners committed them or lost them.
	Assigned func(tasks []int32)
	// Revoked takes tasks away; the group waits until it returns, so it must finish
	// and commit them first, before ctx ends (the rebalance timeout).
	Revoked func(ctx context.Context, tasks []int32)
	// Lost takes tasks away that may run elsewhere already (the container's session
	// expired): stop them at once, without committing.
	Lost func(tasks []int32)
	// Failed reports that the container can no longer be a member: its settings were
	// refused, a container with the same instance id fenced it, or the group failed.
	Failed func(err error)
}

// TaskGroupStatus describes the group as this container sees it.
type TaskGroupStatus struct {
	Generation int32
	Members    int
	Tasks      int32
	Owned      []int32
}

// TaskGroup is a container's membership of its job's task group: a consumer group
// over the job's task topic, whose partition N stands for task "Partition N" (see
// taskBalancer). The topic holds no records; only its partition count matters, and
// it grows with the job's inputs (Grow).
type TaskGroup struct {
	s   *System
	cfg TaskGroupConfig
	log *slog.Logger

	mu         sync.Mutex
	cl         *kgo.Client
	adm        *kadm.Client
	h          TaskGroupHandler
	owned      map[int32]bool
	generation int32
	tasks      int32
	refused    string
	failed     bool
	done       chan struct{}
	cancel     context.CancelFunc
}

// NewTaskGroup returns the task group of a job on system s, unconnected.
func NewTaskGroup(s *System, cfg TaskGroupConfig, log *slog.Logger) *TaskGroup {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TaskGroup{s: s, cfg: cfg, log: log, owned: map[int32]bool{}}
}

// heartbeatInterval is a tenth of the session timeout, between 50 and 250 ms.
func heartbeatInterval(session time.Duration) time.Duration {
	return min(max(session/10, 50*time.Millisecond), 250*time.Millisecond)
}

// Group returns the group's name.
func (g *TaskGroup) Group() string { return "sluice-tasks-" + g.cfg.Job + "-" + g.cfg.JobID }

// Topic returns the task topic's name.
func (g *TaskGroup) Topic() string { return "__sluice_tasks_" + g.cfg.Job + "_" + g.cfg.JobID }

// Start makes sure the task topic has at least tasks partitions and joins the group;
// h hears from then on which tasks this container runs. The system must be started.
func (g *TaskGroup) Start(ctx context.Context, tasks int32, h TaskGroupHandler) error {
	if err := g.s.started(); err != nil {
		return err
	}
	g.h = h
	if err := g.ensureTopic(ctx, tasks); err != nil {
		return err
	}
	b := &taskBalancer{topic: g.Topic(), self: memberInfo{Version: taskProtocolVersion, Container: g.cfg.InstanceID, Settings: g.cfg.Settings}, onSync: g.synced}
	opts := append(g.s.clientOpts(RoleCoordinator),
		kgo.ConsumerGroup(g.Group()),
		kgo.ConsumeTopics(g.Topic()),
		kgo.Balancers(b),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(g.cfg.SessionTimeout),
		kgo.RebalanceTimeout(g.cfg.RebalanceTimeout),
		// Members learn of a rebalance at their next heartbeat, and a planned move of a
		// task takes two rounds (cooperative): frequent heartbeats keep the pause of a
		// moved task short, for a few requests a second.
		kgo.HeartbeatInterval(heartbeatInterval(g.cfg.SessionTimeout)),
		kgo.MetadataMinAge(time.Second),
		kgo.MetadataMaxAge(max(g.cfg.SessionTimeout/2, 2*time.Second)),
		kgo.OnPartitionsAssigned(g.assigned),
		kgo.OnPartitionsRevoked(g.revoked),
		kgo.OnPartitionsLost(g.lost),
	)
	if g.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(g.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka system %q: task group %s: %w", g.s.name, g.Group(), err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	g.mu.Lock()
	g.cl, g.adm, g.done, g.cancel = cl, kadm.NewClient(cl), make(chan struct{}), cancel
	g.mu.Unlock()
	go g.poll(pctx, cl)
	g.log.Info("task group: joining", "group", g.Group(), "task_topic", g.Topic(), "tasks", tasks, "instance_id", g.cfg.InstanceID)
	return nil
}

// poll drives the group client: the task topic has no records, so polls only carry
// the errors that end the membership.
func (g *TaskGroup) poll(ctx context.Context, cl *kgo.Client) {
	defer close(g.done)
	for {
		fs := cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		var fatal error
		fs.EachError(func(_ string, _ int32, err error) {
			if fatal == nil && !kerr.IsRetriable(err) && !errors.Is(err, context.Canceled) {
				fatal = err
			}
		})
		if fatal != nil {
			if errors.Is(fatal, kerr.FencedInstanceID) {
				fatal = fmt.Errorf("another container joined the job's task group with the same container id (group.instance.id %q) and fenced this one: %w", g.cfg.InstanceID, fatal)
			}
			g.fail(fmt.Errorf("task group %s: %w", g.Group(), fatal))
			return
		}
	}
}

func (g *TaskGroup) fail(err error) {
	g.mu.Lock()
	already := g.failed
	g.failed = true
	g.mu.Unlock()
	if !already && g.h.Failed != nil {
		g.h.Failed(err)
	}
}

// synced records this member's assignment of the round (called by the balancer).
func (g *TaskGroup) synced(a assignment) {
	g.mu.Lock()
	g.refused = a.refused
	g.mu.Unlock()
}

func (g *TaskGroup) assigned(_ context.Context, cl *kgo.Client, got map[string][]int32) {
	_, generation := cl.GroupMetadata()
	g.mu.Lock()
	refused := g.refused
	g.generation = generation
	var tasks []int32
	for _, t := range got[g.Topic()] {
		if !g.owned[t] {
			g.owned[t] = true
			tasks = append(tasks, t)
		}
	}
	g.mu.Unlock()
	if refused != "" {
		g.fail(fmt.Errorf("the job's task group %s refused this container: %s", g.Group(), refused))
		return
	}
	slices.Sort(tasks)
	if len(tasks) > 0 && g.h.Assigned != nil {
		g.h.Assigned(tasks)
	}
}

func (g *TaskGroup) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	tasks := g.forget(lost)
	if len(tasks) > 0 && g.h.Revoked != nil {
		rctx, cancel := context.WithTimeout(ctx, g.cfg.RebalanceTimeout*3/4)
		defer cancel()
		g.h.Revoked(rctx, tasks)
	}
}

func (g *TaskGroup) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	tasks := g.forget(lost)
	if len(tasks) > 0 && g.h.Lost != nil {
		g.h.Lost(tasks)
	}
}

func (g *TaskGroup) forget(m map[string][]int32) []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var tasks []int32
	for _, t := range m[g.Topic()] {
		if g.owned[t] {
			delete(g.owned, t)
			tasks = append(tasks, t)
		}
	}
	slices.Sort(tasks)
	return tasks
}

// Grow makes the task topic hold at least tasks partitions, so the group balances the
// new tasks too (every container of the job may call it; the first one does it).
func (g *TaskGroup) Grow(ctx context.Context, tasks int32) error {
	if err := g.ensureTopic(ctx, tasks); err != nil {
		return err
	}
	g.mu.Lock()
	cl := g.cl
	g.mu.Unlock()
	if cl != nil {
		cl.ForceMetadataRefresh()
	}
	return nil
}

// ensureTopic creates the task topic with tasks partitions, or adds partitions up to
// tasks.
func (g *TaskGroup) ensureTopic(ctx context.Context, tasks int32) error {
	adm := g.s.adm
	topic := g.Topic()
	var have int32 = -1
	err := metadataRetry(g.s.clock).Do(ctx, func(ctx context.Context) error {
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		if d, ok := td[topic]; ok && d.Err == nil {
			have = int32(len(d.Partitions))
		} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return d.Err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("task group: looking up topic %s: %w", topic, err)
	}
	switch {
	case have < 0:
		rf := g.cfg.ReplicationFactor
		if md, err := adm.BrokerMetadata(ctx); err == nil && len(md.Brokers) > 0 && int(rf) > len(md.Brokers) {
			rf = int16(len(md.Brokers))
		}
		_, err := adm.CreateTopic(ctx, tasks, rf, nil, topic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("task group: creating topic %s (%d partitions, replication factor %d): %w", topic, tasks, rf, err)
		}
		if err == nil {
			g.log.Info("task group: created the task topic", "topic", topic, "partitions", tasks, "replication_factor", rf)
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return g.ensureTopic(ctx, tasks) // another container made it first: grow it if needed
		}
	case have < tasks:
		resp, err := adm.UpdatePartitions(ctx, int(tasks), topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.InvalidPartitions) { // another container grew it first
			return fmt.Errorf("task group: growing topic %s from %d to %d partitions: %w", topic, have, tasks, err)
		}
		g.log.Info("task group: the task topic grows with the inputs", "topic", topic, "from", have, "to", tasks)
	}
	g.mu.Lock()
	g.tasks = max(g.tasks, tasks)
	g.mu.Unlock()
	return nil
}

// Status returns the group's generation, members and tasks, and this container's
// tasks; the members are looked up at the coordinator, within ctx.
func (g *TaskGroup) Status(ctx context.Context) (TaskGroupStatus, error) {
	g.mu.Lock()
	st := TaskGroupStatus{Generation: g.generation, Tasks: g.tasks}
	for t := range g.owned {
		st.Owned = append(st.Owned, t)
	}
	adm := g.adm
	g.mu.Unlock()
	slices.Sort(st.Owned)
	if adm == nil {
		return st, nil
	}
	groups, err := adm.DescribeGroups(ctx, g.Group())
	if err != nil {
		return st, err
	}
	if d, ok := groups[g.Group()]; ok {
		st.Members = len(d.Members)
	}
	return st, nil
}

// Close leaves the group (a static member only stops heartbeating, so that a restart
// within the session timeout gets its tasks back) and stops the client.
func (g *TaskGroup) Close() error {
	g.mu.Lock()
	cl, cancel, done := g.cl, g.cancel, g.done
	g.cl, g.adm = nil, nil
	g.mu.Unlock()
	if cl == nil {
		return nil
	}
	cl.Close()
	cancel()
	<-done
	return nil
}
