package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/checkpoint"
)

// Running-job detection.
//
// Every running container of a job is a member of the consumer group
// sluice-job-<job.name>-<job.id>, subscribed to the checkpoint topic but never
// fetching from it and never committing. The checkpoint tool asks the group
// coordinator whether the group has members. A container killed without a clean
// stop stays a member until its session times out (RunLockSessionTimeout).

// RunLockGroup returns the consumer group that running containers of the job join.
func (m *CheckpointManager) RunLockGroup() string {
	return "sluice-job-" + m.job + "-" + m.jobID
}

// AcquireRunLock makes this process a member of the job's run-lock group and returns
// at once: the join completes in the background (logged when done), so that a
// container restarted after a crash does not wait for the dead member's session to
// expire before it processes anything. Until the join completes the dead member still
// marks the job as running, so the checkpoint tool refuses to write meanwhile. Call it
// after Start (the group subscribes to the checkpoint topic). Close the returned value
// to leave the group. ctx bounds only the client's creation.
func (m *CheckpointManager) AcquireRunLock(ctx context.Context) (io.Closer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	group := m.RunLockGroup()
	// The client's own context lets Close abandon a join still in progress (after a
	// crash it waits for the dead member's session), instead of waiting it out.
	lctx, cancel := context.WithCancel(context.Background())
	opts := append(m.sys.set.producer.opts(m.sys.klog),
		kgo.WithContext(lctx),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(m.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(RunLockSessionTimeout),
		kgo.HeartbeatInterval(RunLockSessionTimeout/5),
		kgo.FetchMaxBytes(1024),
		kgo.FetchMaxPartitionBytes(1024),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("checkpoint: run lock: %w", err)
	}
	// Membership is all we want: fetch nothing.
	cl.PauseFetchTopics(m.topic)
	l := &runLock{cl: cl, cancel: cancel, closed: make(chan struct{}), done: make(chan struct{})}
	go l.watch(m, group)
	return l, nil
}

type runLock struct {
	once   sync.Once
	cl     *kgo.Client
	cancel context.CancelFunc
	closed chan struct{} // closed by Close
	done   chan struct{} // closed when watch returns
}

// watch logs when the join completes; it returns when the lock is closed.
func (l *runLock) watch(m *CheckpointManager, group string) {
	defer close(l.done)
	tick := time.NewTicker(5 * time.Millisecond) // an atomic load
	defer tick.Stop()
	started := time.Now()
	for {
		if _, gen := l.cl.GroupMetadata(); gen > 0 {
			m.log.Info("checkpoint: joined the job's run-lock group", "group", group, "took", time.Since(started).Round(time.Millisecond))
			return
		}
		select {
		case <-tick.C:
		case <-l.closed:
			return
		}
	}
}

// Close leaves the group, or abandons a join still in progress.
func (l *runLock) Close() error {
	l.once.Do(func() {
		close(l.closed)
		<-l.done
		if _, gen := l.cl.GroupMetadata(); gen <= 0 {
			l.cancel() // still joining: abandon the join rather than wait it out
		}
		l.cl.Close() // a member leaves the group properly
		l.cancel()
	})
	return nil
}

// CheckNotRunning returns an error wrapping checkpoint.ErrJobRunning when the job's
// run-lock group has members. It does not need Start.
func (m *CheckpointManager) CheckNotRunning(ctx context.Context) error {
	m.mu.Lock()
	adm := m.adm
	m.mu.Unlock()
	if adm == nil {
		cl, err := kgo.NewClient(m.sys.set.producer.opts(m.sys.klog)...)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		defer cl.Close()
		adm = kadm.NewClient(cl)
	}
	group := m.RunLockGroup()
	var g kadm.DescribedGroup
	err := retry(ctx, metadataAttempts, func(ctx context.Context) error {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		g = gs[group]
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			return g.Err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: cannot tell whether job %q (id %s) is running: describing consumer group %s: %w", m.job, m.jobID, group, err)
	}
	if n := len(g.Members); n > 0 {
		return fmt.Errorf("job %q (id %s) is running: its consumer group %s has %d member(s) (state %s); stop the job first. "+
			"A container killed without a clean stop stays a member until its session times out (%v) — wait that long and retry: %w",
			m.job, m.jobID, group, n, g.State, RunLockSessionTimeout, checkpoint.ErrJobRunning)
	}
	return nil
}
