package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// Keys of the offset mirror (see Consumer.OnCheckpoint).
const (
	// KeyMirrorEnabled turns the mirror of checkpoints into consumer-group offsets
	// on (true, the default) or off.
	KeyMirrorEnabled = "task.checkpoint.mirror.enabled"
	// KeyMirrorGroup names the consumer group the checkpoints are mirrored to; the
	// default is MirrorGroup(job.name, job.id).
	KeyMirrorGroup = "task.checkpoint.mirror.group"
)

// MirrorGroup is the default consumer group a job's checkpoints are mirrored to:
// sluice-offsets-<job.name>-<job.id>. It differs from the job's run-lock group
// (sluice-job-...) and task group (sluice-tasks-...) whatever the job's name.
func MirrorGroup(job, jobID string) string { return "sluice-offsets-" + job + "-" + jobID }

// mirrorSettings reads the mirror's keys: the group, "" when the mirror is off.
func mirrorSettings(p *config.Problems, cfg config.Config) string {
	on := true
	if v, ok := cfg.Get(KeyMirrorEnabled); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.Add(KeyMirrorEnabled, v, "must be true or false")
		}
		on = b
	}
	if !on {
		return ""
	}
	if g, ok := cfg.Get(KeyMirrorGroup); ok {
		if g == "" {
			p.Add(KeyMirrorGroup, g, "must not be empty; set %s=false to turn the mirror off", KeyMirrorEnabled)
		}
		return g
	}
	job, ok := cfg.Get("job.name")
	if !ok || job == "" {
		return "" // no job (a system used on its own): nothing to name the group after
	}
	return MirrorGroup(job, cfg.GetOr("job.id", "1"))
}

// mirrorRetry is how long the mirror waits after a failed commit before it tries
// again with the latest offsets.
const mirrorRetry = time.Second

// mirror commits the offsets of a consumer's checkpoints to a consumer group of its
// cluster, in the background: the latest offsets of each partition are kept, and
// committed as soon as the previous commit is done, so a slow or unreachable broker
// never holds up a task's commit, and a burst of checkpoints makes one commit.
type mirror struct {
	group string
	sys   *System

	mu      sync.Mutex
	pending kadm.Offsets
	adm     *kadm.Client
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}

	commits  atomic.Int64
	failures atomic.Int64
}

func newMirror(s *System, group string) *mirror {
	return &mirror{group: group, sys: s, wake: make(chan struct{}, 1)}
}

// start begins committing through cl.
func (m *mirror) start(cl *kgo.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	m.mu.Lock()
	m.adm, m.stop, m.done = kadm.NewClient(cl), cancel, make(chan struct{})
	m.mu.Unlock()
	go m.run(ctx)
}

// add records offsets (the next offsets to read) to be committed.
func (m *mirror) add(offsets map[system.SystemStreamPartition]string) error {
	var bad []error
	m.mu.Lock()
	if m.pending == nil {
		m.pending = kadm.Offsets{}
	}
	for ssp, off := range offsets {
		n, err := ParseOffset(off)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", ssp, err))
			continue
		}
		m.pending.Delete(ssp.Stream, ssp.Partition) // the latest wins, also when lower (a rewind)
		m.pending.Add(kadm.Offset{Topic: ssp.Stream, Partition: ssp.Partition, At: n, LeaderEpoch: -1})
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return errors.Join(bad...)
}

func (m *mirror) run(ctx context.Context) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
		if err := m.flush(ctx); err != nil && ctx.Err() == nil {
			if n := m.failures.Add(1); n <= 5 || n%100 == 0 {
				m.sys.log.Warn("kafka: mirroring checkpoints to consumer-group offsets failed; retrying (the checkpoints stand: the group's offsets are informational)",
					"group", m.group, "error", err, "failures_so_far", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(mirrorRetry):
			}
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
	}
}

// flush commits the pending offsets; on failure they are pending again, unless newer
// ones came meanwhile.
func (m *mirror) flush(ctx context.Context) error {
	m.mu.Lock()
	offs, adm := m.pending, m.adm
	m.pending = nil
	m.mu.Unlock()
	if len(offs) == 0 || adm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Generation -1 and no member: a commit to a group without members, which the
	// broker accepts from any client.
	resp, err := adm.CommitOffsets(ctx, m.group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		m.mu.Lock()
		if m.pending == nil {
			m.pending = kadm.Offsets{}
		}
		offs.Each(func(o kadm.Offset) {
			if _, newer := m.pending.Lookup(o.Topic, o.Partition); !newer {
				m.pending.Add(o)
			}
		})
		m.mu.Unlock()
		return err
	}
	m.commits.Add(1)
	return nil
}

// close commits what is pending (within a second) and stops.
func (m *mirror) close() {
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.flush(ctx); err != nil {
		m.sys.log.Warn("kafka: the last checkpoints were not mirrored to consumer-group offsets", "group", m.group, "error", err)
	}
}

// mirrorCheckpoint, called by OnCheckpoint unless
// task.checkpoint.mirror.enabled=false, mirrors each checkpoint into the offsets
// of a consumer group of the cluster (task.checkpoint.mirror.group, by default
// sluice-offsets-<job.name>-<job.id>), so that kafka-consumer-groups.sh --describe,
// kcat and lag exporters show the job's lag per partition. The commit is made in the
// background and never delays the task. The mirror is informational: the job reads
// only its checkpoints, so resetting the group's offsets changes nothing.
func (c *Consumer) mirrorCheckpoint(offsets map[system.SystemStreamPartition]string) error {
	if c.mirror == nil {
		return nil
	}
	return c.mirror.add(offsets)
}

// MirrorGroup returns the consumer group the consumer mirrors checkpoints to, ""
// when the mirror is off.
func (c *Consumer) MirrorGroup() string {
	if c.mirror == nil {
		return ""
	}
	return c.mirror.group
}

// contact records when a client last heard from a broker.
type contact struct{ at atomic.Int64 }

var _ kgo.HookBrokerRead = (*contact)(nil)

// OnBrokerRead implements kgo.HookBrokerRead.
func (h *contact) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		h.at.Store(time.Now().UnixNano())
	}
}

// LastContact returns when the consumer last had an answer from a broker (any
// response, with records or not: an idle consumer's fetches return every
// fetch.max.wait.ms); zero before the first.
func (c *Consumer) LastContact() time.Time {
	if n := c.contact.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
