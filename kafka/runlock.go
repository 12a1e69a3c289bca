package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
)

// Running-job detection.
//
// Every running container of a job is a member of the consumer group
// sluice-job-<job.name>-<job.id>, subscribed to the checkpoint topic but never
// fetching from it and never committing. The checkpoint tool, while it rewrites the
// checkpoints, is a member too, with a client ID that says so
// (sluice-checkpoint-tool-...; containers use sluice-run-lock-...). Each side joins,
// waits until the group coordinator lists it as a member, and only then looks at the
// other members: a container that finds the tool refuses to start, the tool that finds
// a container refuses to write. Whichever joined second sees the other, so the two
// never overlap. A member that died without a clean stop stays listed until its
// session times out (RunLockSessionTimeout).

const (
	// runLockClientPrefix starts the client ID of a container's run-lock member.
	runLockClientPrefix = "sluice-run-lock-"
	// rewriteClientPrefix starts the client ID of the checkpoint tool's member.
	rewriteClientPrefix = "sluice-checkpoint-tool-"
	// runLockListedTimeout bounds the wait for the coordinator to list a new member.
	runLockListedTimeout = 15 * time.Second
)

// RunLockGroup returns the consumer group that running containers of the job join.
func (m *CheckpointManager) RunLockGroup() string {
	return "sluice-job-" + m.job + "-" + m.jobID
}

// AcquireRunLock makes this process a member of the job's run-lock group. It returns
// once the group coordinator lists the member, without waiting for the group to
// settle: after a crash, the dead member is still in the group until its session
// expires, and the join completes in the background (logged when done), so that a
// restarted container does not wait that long before it processes anything. Until the
// dead member is gone it still marks the job as running, so the checkpoint tool
// refuses to write meanwhile.
//
// It fails with an error wrapping checkpoint.ErrRewriting when the checkpoint tool is
// a member (it is rewriting the checkpoints; see LockForRewrite). Otherwise it then
// reads the checkpoint records written since Start, so that Read answers with the
// checkpoints stored when the run lock was taken, not those of Start. If the
// coordinator does not list the member within 15 seconds, it logs a warning and
// carries on as if it did.
//
// Call it after Start (the group subscribes to the checkpoint topic). Close the
// returned value to leave the group.
func (m *CheckpointManager) AcquireRunLock(ctx context.Context) (io.Closer, error) {
	l, others, err := m.joinAndList(ctx, runLockClientPrefix)
	if l == nil {
		return nil, err
	}
	switch {
	case ctx.Err() != nil:
		l.Close()
		return nil, ctx.Err()
	case err != nil:
		m.log.Warn("checkpoint: the group coordinator does not list this container in the job's run-lock group yet; starting anyway, but the checkpoint tool may not see that the job is running until it does",
			"group", m.RunLockGroup(), "err", err)
	default:
		if _, tools := splitMembers(others); tools > 0 {
			l.Close()
			return nil, fmt.Errorf("checkpoint: the checkpoint tool is rewriting the checkpoints of job %q (id %s): it is a member of consumer group %s. "+
				"Start the container again once it is done (a tool killed while writing stays a member until its session times out, %v): %w",
				m.job, m.jobID, m.RunLockGroup(), RunLockSessionTimeout, checkpoint.ErrRewriting)
		}
	}
	if err := m.refreshSinceStart(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// LockForRewrite makes this process (the checkpoint tool) a member of the job's
// run-lock group and returns once the group coordinator lists it, with no container
// of the job among the members: until the returned value is closed, containers that
// start refuse to (see AcquireRunLock). It fails, leaving the group, with an error
// wrapping checkpoint.ErrJobRunning when a container is a member, and with one
// wrapping checkpoint.ErrRewriting when another checkpoint tool is. It does not need
// Start; on a started manager it then fences earlier checkpoint tool runs (see
// RewriteTransactionalID) and reads the checkpoint records written since Start, so
// that Read answers with the checkpoints stored when the lock was taken (a container
// may have committed before it stopped).
func (m *CheckpointManager) LockForRewrite(ctx context.Context) (io.Closer, error) {
	l, others, err := m.joinAndList(ctx, rewriteClientPrefix)
	if l == nil {
		return nil, err
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("checkpoint: cannot tell whether job %q (id %s) is running: joining consumer group %s: %w", m.job, m.jobID, m.RunLockGroup(), err)
	}
	if err := m.runningErr(others, ""); err != nil {
		l.Close()
		return nil, err
	}
	m.fenceRewrites(ctx)
	if err := m.refreshSinceStart(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// fenceRewrites, on a started manager, initialises WriteAll's transactional producer
// (see RewriteTransactionalID): an earlier checkpoint tool killed while writing is
// fenced, and the transaction it left open is aborted before the checkpoints are
// read again. A failure is logged; WriteAll reports it again.
func (m *CheckpointManager) fenceRewrites(ctx context.Context) {
	m.mu.Lock()
	started := m.state == stateStarted
	m.mu.Unlock()
	if !started {
		return
	}
	if _, err := m.rewriteClient(ctx); err != nil {
		m.log.Warn("checkpoint: cannot initialise the transactional producer of rewrites", "transactional_id", m.RewriteTransactionalID(), "err", err)
	}
}

// joinAndList joins the run-lock group with a client ID starting with prefix and
// waits until the coordinator lists the member (see waitListed). l is nil when the
// join could not even start (err says why); otherwise err is waitListed's, and others
// the group's other members.
func (m *CheckpointManager) joinAndList(ctx context.Context, prefix string) (l *runLock, others []kadm.DescribedGroupMember, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	adm, done, err := m.admin()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	id := prefix + memberNonce()
	if l, err = m.joinRunLockGroup(id); err != nil {
		return nil, nil, err
	}
	others, err = m.waitListed(ctx, adm, l, id)
	return l, others, err
}

// refreshSinceStart reads, on a started manager, the checkpoint records written since
// Start, so that Read answers with the checkpoints stored now.
func (m *CheckpointManager) refreshSinceStart(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateStarted {
		return nil
	}
	if err := m.refreshLocked(ctx); err != nil {
		return fmt.Errorf("checkpoint: reading the checkpoints written since start: %w", err)
	}
	return nil
}

// joinRunLockGroup starts a client that joins the run-lock group as clientID, in the
// background.
func (m *CheckpointManager) joinRunLockGroup(clientID string) (*runLock, error) {
	group := m.RunLockGroup()
	// The client's own context lets Close abandon a join still in progress (after a
	// crash it waits for the dead member's session), instead of waiting it out.
	lctx, cancel := context.WithCancel(context.Background())
	opts := append(m.sys.clientOpts(RoleCheckpoint),
		kgo.WithContext(lctx),
		kgo.ClientID(clientID),
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
	l := &runLock{m: m, cl: cl, cancel: cancel, closed: make(chan struct{}), done: make(chan struct{})}
	go l.watch(m, group)
	return l, nil
}

// admin returns the manager's admin client, or a new one (closed by done) when the
// manager is not started.
func (m *CheckpointManager) admin() (adm *kadm.Client, done func(), err error) {
	m.mu.Lock()
	adm = m.adm
	m.mu.Unlock()
	if adm != nil {
		return adm, func() {}, nil
	}
	cl, err := kgo.NewClient(m.sys.clientOpts(RoleCheckpoint)...)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// waitListed waits until the coordinator lists l's member, with clientID, in the
// run-lock group, notes its member ID in l, and returns the group's other members then.
func (m *CheckpointManager) waitListed(ctx context.Context, adm *kadm.Client, l *runLock, clientID string) ([]kadm.DescribedGroupMember, error) {
	group := m.RunLockGroup()
	wctx, cancel := context.WithTimeout(ctx, runLockListedTimeout)
	defer cancel()
	var last error
	for {
		gs, err := adm.DescribeGroups(wctx, group)
		if err == nil {
			err = gs[group].Err
		}
		if err == nil || errors.Is(err, kerr.GroupIDNotFound) {
			var others []kadm.DescribedGroupMember
			listed := false
			for _, mem := range gs[group].Members {
				if mem.ClientID == clientID {
					listed = true
					l.memberID = mem.MemberID
				} else {
					others = append(others, mem)
				}
			}
			if listed {
				return others, nil
			}
		} else {
			last = err
		}
		if sleep(wctx, 20*time.Millisecond) != nil {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if last != nil {
				return nil, fmt.Errorf("the group coordinator did not list this process as a member within %v: %w", runLockListedTimeout, last)
			}
			return nil, fmt.Errorf("the group coordinator did not list this process as a member within %v", runLockListedTimeout)
		}
	}
}

// splitMembers counts the containers and checkpoint tools among members.
func splitMembers(members []kadm.DescribedGroupMember) (containers, tools int) {
	for _, mem := range members {
		if strings.HasPrefix(mem.ClientID, rewriteClientPrefix) {
			tools++
		} else {
			containers++
		}
	}
	return containers, tools
}

// runningErr returns an error wrapping checkpoint.ErrJobRunning when members holds a
// container, or checkpoint.ErrRewriting when it holds a checkpoint tool; nil otherwise.
func (m *CheckpointManager) runningErr(members []kadm.DescribedGroupMember, state string) error {
	group := m.RunLockGroup()
	containers, tools := splitMembers(members)
	if state != "" {
		state = fmt.Sprintf(" (state %s)", state)
	}
	switch {
	case containers > 0:
		return fmt.Errorf("job %q (id %s) is running: its consumer group %s has %d member(s)%s; stop the job first. "+
			"A container killed without a clean stop stays a member until its session times out (%v) — wait that long and retry: %w",
			m.job, m.jobID, group, containers, state, RunLockSessionTimeout, checkpoint.ErrJobRunning)
	case tools > 0:
		return fmt.Errorf("another checkpoint tool is rewriting the checkpoints of job %q (id %s): it is a member of consumer group %s. "+
			"Wait for it and retry (a tool killed while writing stays a member until its session times out, %v): %w",
			m.job, m.jobID, group, RunLockSessionTimeout, checkpoint.ErrRewriting)
	}
	return nil
}

// memberNonce returns a random suffix that makes a run-lock client ID unique.
func memberNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type runLock struct {
	once     sync.Once
	m        *CheckpointManager
	memberID string // the coordinator's ID for the member, once listed
	cl       *kgo.Client
	cancel   context.CancelFunc
	closed   chan struct{} // closed by Close
	done     chan struct{} // closed when watch returns
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
		joining := false
		if _, gen := l.cl.GroupMetadata(); gen <= 0 {
			joining = true
			l.cancel() // still joining: abandon the join rather than wait it out
		}
		l.cl.Close() // a member leaves the group properly
		l.cancel()
		if joining && l.memberID != "" {
			// An abandoned join leaves no LeaveGroup behind: the coordinator would
			// list the member until its session times out. Leave explicitly.
			l.m.leaveGroup(l.memberID)
		}
	})
	return nil
}

// leaveGroup removes memberID from the run-lock group, on a client of its own (the
// lock's is closed, and so may the manager's be), trying for a few seconds.
func (m *CheckpointManager) leaveGroup(memberID string) {
	cl, err := kgo.NewClient(m.sys.clientOpts(RoleCheckpoint)...)
	if err != nil {
		m.log.Warn("checkpoint: cannot leave the run-lock group", "group", m.RunLockGroup(), "err", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = m.RunLockGroup()
	req.MemberID = memberID
	mem := kmsg.NewLeaveGroupRequestMember()
	mem.MemberID = memberID
	req.Members = append(req.Members, mem)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, mr := range resp.Members {
			if err == nil {
				err = kerr.ErrorForCode(mr.ErrorCode)
			}
		}
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		m.log.Warn("checkpoint: cannot leave the run-lock group; the coordinator lists this process until its session times out",
			"group", m.RunLockGroup(), "member", memberID, "timeout", RunLockSessionTimeout, "err", err)
	}
}

// CheckNotRunning returns an error wrapping checkpoint.ErrJobRunning when a container
// of the job is a member of its run-lock group, one wrapping checkpoint.ErrRewriting
// when only a checkpoint tool is, and nil when the group has no members. It only looks:
// use LockForRewrite to keep containers from starting. It does not need Start.
func (m *CheckpointManager) CheckNotRunning(ctx context.Context) error {
	adm, done, err := m.admin()
	if err != nil {
		return err
	}
	defer done()
	group := m.RunLockGroup()
	var g kadm.DescribedGroup
	err = retry(ctx, metadataAttempts, func(ctx context.Context) error {
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
	return m.runningErr(g.Members, g.State)
}
