package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
)

// Running-job detection and fencing.
//
// Every running container of a job is a member of the consumer group
// sluice-job-<job.name>-<job.id> (RunLockGroup), a static one: its group instance id
// (group.instance.id, RunLockInstanceID) names the container, so the coordinator
// holds at most one member per container. The checkpoint tool, while it rewrites the
// checkpoints, is a member too, a dynamic one, with a client ID that says so
// (sluice-checkpoint-tool-...). Members join, sync and heartbeat with requests of
// their own (protocol type "consumer", protocol sluice-run-lock); they consume
// nothing and commit nothing.
//
// Each side waits until the coordinator lists it as a member, and only then looks at
// the other members: a container that finds the tool refuses to start, the tool that
// finds a container refuses to write. Whichever joined second sees the other, so the
// two never overlap. A member that died without a clean stop stays listed until its
// session times out (RunLockSessionTimeout).
//
// Two processes with the same --container-id: a member joining with an instance id
// that another member holds replaces it, and the coordinator answers the replaced
// member's next request with FENCED_INSTANCE_ID. A container's client ID carries its
// PID, host and start time, so the replaced one can tell who replaced it. The rule
// is that the process that took the lock first keeps it: a replaced container that
// heard from the coordinator within the session timeout, and started before the
// newcomer, joins again at once (replacing the newcomer in turn); otherwise it has
// lost its lock (RunLock.Lost) and must stop. A container that finds its instance id
// held when it starts (by a live container, or one killed less than a session ago)
// waits RunLockProbe before it processes anything: a live holder takes its id back
// within that time (it heartbeats every RunLockHeartbeat) and the newcomer is
// refused, naming it; a dead one does not, and the newcomer runs. A holder of the
// same host whose process no longer exists (a container killed and restarted there)
// is not waited for.

const (
	// RunLockHeartbeat is how often a running container's run-lock member heartbeats:
	// how soon it hears that another process took its container over.
	RunLockHeartbeat = 200 * time.Millisecond
	// RunLockProbe is how long a container that finds its group instance id held
	// when it starts waits before it processes anything, for a live holder to take
	// the id back.
	RunLockProbe = 5 * RunLockHeartbeat

	// runLockClientPrefix starts the client ID of a container's run-lock member.
	runLockClientPrefix = "sluice-run-lock-"
	// rewriteClientPrefix starts the client ID of the checkpoint tool's member.
	rewriteClientPrefix = "sluice-checkpoint-tool-"
	// runLockProtocol is the group protocol members join with.
	runLockProtocol = "sluice-run-lock"
	// runLockListedTimeout bounds the wait for the coordinator to list a new member.
	runLockListedTimeout = 15 * time.Second
	// probeHeartbeat is how often a member heartbeats until AcquireRunLock returns.
	probeHeartbeat = 20 * time.Millisecond
)

var _ checkpoint.RunLocker = (*CheckpointManager)(nil)

// RunLockGroup returns the consumer group that running containers of the job join.
func (m *CheckpointManager) RunLockGroup() string {
	return "sluice-job-" + m.job + "-" + m.jobID
}

// RunLockInstanceID returns the group instance id of container id's member of the
// run-lock group: <RunLockGroup>-container-<id>.
func (m *CheckpointManager) RunLockInstanceID(id int) string {
	return m.RunLockGroup() + "-container-" + strconv.Itoa(id)
}

// AcquireRunLock makes this process container c's member of the job's run-lock group
// (see the comment on running-job detection in this file). It returns once the group
// coordinator lists the member, without waiting for the group to settle (the join
// completes in the background, logged when done): after a crash, other members may
// be dead too, and the group waits for them until their sessions expire.
//
// It fails with an error wrapping checkpoint.ErrRewriting when the checkpoint tool is
// a member (it is rewriting the checkpoints; see LockForRewrite), and with one
// wrapping checkpoint.ErrContainerRunning, naming the other process, when another
// container holds c's instance id and takes it back. When the instance id is held
// as it starts, it waits RunLockProbe for that. It then reads the checkpoint records
// written since Start, so that Read answers with the checkpoints stored when the run
// lock was taken, not those of Start. If the coordinator does not list the member
// within 15 seconds, it logs a warning and carries on as if it did.
//
// The lock is lost (RunLock.Lost) when a container that started earlier takes c's
// instance id back, or when another process holds it after this one did not hear
// from the coordinator for a session timeout. Call it after Start (the members name
// the checkpoint topic). Close the returned lock to leave the group.
func (m *CheckpointManager) AcquireRunLock(ctx context.Context, c checkpoint.Container) (checkpoint.RunLock, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	adm, done, err := m.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	if c.Dynamic {
		return m.acquireDynamic(ctx, adm)
	}
	instance := m.RunLockInstanceID(c.ID)
	// Who holds the container now? When we cannot tell, look as if someone did.
	prev, held, err := instanceHolder(ctx, adm, m.RunLockGroup(), instance, "")
	if err != nil {
		held = true
		m.log.Debug("checkpoint: cannot tell whether the container is listed as running", "group", m.RunLockGroup(), "err", err)
	}
	self := newMember(c.ID)
	l, err := m.joinRunLockGroup(self.clientID(), &instance, c, self)
	if err != nil {
		return nil, err
	}
	others, err := m.waitListed(ctx, adm, l)
	switch {
	case l.Err() != nil:
		l.Close()
		return nil, l.Err()
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
	if held && prev != nil && prev.goneFrom(self) {
		m.log.Info("checkpoint: this container is listed as running in the job's run-lock group, by a process of this host that has exited; starting at once",
			"container", c.ID, "listed", prev.describe(), "group", m.RunLockGroup(), "instance_id", instance)
		held = false
	}
	if held {
		holder := "a process that cannot be named"
		if prev != nil {
			holder = prev.describe()
		}
		m.log.Info("checkpoint: this container is listed as running in the job's run-lock group; waiting for it to take its instance id back, if it is alive, before starting",
			"container", c.ID, "listed", holder, "group", m.RunLockGroup(), "instance_id", instance, "wait", RunLockProbe)
		t := time.NewTimer(RunLockProbe)
		select {
		case <-l.lost:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err := l.acquire(); err != nil {
		l.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		l.Close()
		return nil, err
	}
	if err := m.refreshSinceStart(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// acquireDynamic joins the run-lock group as a dynamic member: a container of a job
// whose containers share its tasks through the task group, which keeps tasks from
// running twice; the lock only marks the job as running for the checkpoint tool.
func (m *CheckpointManager) acquireDynamic(ctx context.Context, adm *kadm.Client) (checkpoint.RunLock, error) {
	self := newMember(-1)
	l, err := m.joinRunLockGroup(self.clientID(), nil, checkpoint.Container{Dynamic: true}, self)
	if err != nil {
		return nil, err
	}
	others, err := m.waitListed(ctx, adm, l)
	switch {
	case ctx.Err() != nil:
		l.Close()
		return nil, ctx.Err()
	case err != nil:
		m.log.Warn("checkpoint: the group coordinator does not list this container in the job's run-lock group yet; starting anyway",
			"group", m.RunLockGroup(), "err", err)
	default:
		if _, tools := splitMembers(others); tools > 0 {
			l.Close()
			return nil, fmt.Errorf("checkpoint: the checkpoint tool is rewriting the checkpoints of job %q (id %s); start the container again once it is done: %w",
				m.job, m.jobID, checkpoint.ErrRewriting)
		}
	}
	if err := l.acquire(); err != nil {
		l.Close()
		return nil, err
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	adm, done, err := m.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	l, err := m.joinRunLockGroup(rewriteClientPrefix+memberNonce(), nil, checkpoint.Container{}, member{})
	if err != nil {
		return nil, err
	}
	others, err := m.waitListed(ctx, adm, l)
	if err != nil {
		l.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
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

// refreshSinceStart reads, on a started manager, the checkpoint records written since
// Start, so that Read answers with the checkpoints stored now.
func (m *CheckpointManager) refreshSinceStart(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateStarted {
		return nil
	}
	if err := m.refreshLocked(ctx); err != nil {
		return fmt.Errorf("checkpoint: reading the checkpoint records written since start: %w", err)
	}
	return nil
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

// waitListed waits until the coordinator lists l's member in the run-lock group, and
// returns the group's other members then. It returns early, with l.Err(), when l is
// lost meanwhile.
func (m *CheckpointManager) waitListed(ctx context.Context, adm *kadm.Client, l *runLock) ([]kadm.DescribedGroupMember, error) {
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
				if mem.ClientID == l.clientID {
					listed = true
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
		select {
		case <-l.lost:
			return nil, l.Err()
		default:
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

// instanceHolder describes the member of group that holds instance, unless its
// client ID is self; held says whether there is one. A holder that is not a
// container of this version (its client ID says nothing) is described by its host.
func instanceHolder(ctx context.Context, adm *kadm.Client, group, instance, self string) (holder *member, held bool, err error) {
	gs, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = gs[group].Err
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for _, mem := range gs[group].Members {
		if mem.InstanceID == nil || *mem.InstanceID != instance || mem.ClientID == self {
			continue
		}
		h, ok := parseMember(mem.ClientID)
		if !ok {
			h = member{host: mem.ClientHost}
		}
		return &h, true, nil
	}
	return nil, false, nil
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

// memberNonce returns a random suffix that makes a run-lock client ID unique.
func memberNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// member is what a container's client ID says about it:
// sluice-run-lock-<nonce>-c<container>-p<pid>-t<unix millis>-h<host>.
type member struct {
	nonce     string
	container int
	pid       int
	since     time.Time // to the millisecond, as in the client ID
	host      string
	known     bool // parsed from a client ID of this form
}

// newMember describes this process, as container id, taking its run lock now.
func newMember(id int) member {
	p := checkpoint.ThisProcess()
	return member{nonce: memberNonce(), container: id, pid: p.PID, since: time.UnixMilli(p.Since.UnixMilli()), host: p.Host, known: true}
}

func (mb member) clientID() string {
	return fmt.Sprintf("%s%s-c%d-p%d-t%d-h%s", runLockClientPrefix, mb.nonce, mb.container, mb.pid, mb.since.UnixMilli(), mb.host)
}

// parseMember parses a container's client ID (see member).
func parseMember(clientID string) (member, bool) {
	rest, ok := strings.CutPrefix(clientID, runLockClientPrefix)
	if !ok {
		return member{}, false
	}
	f := strings.SplitN(rest, "-", 5)
	if len(f) != 5 || f[0] == "" || !strings.HasPrefix(f[1], "c") || !strings.HasPrefix(f[2], "p") || !strings.HasPrefix(f[3], "t") || !strings.HasPrefix(f[4], "h") {
		return member{}, false
	}
	c, err1 := strconv.Atoi(f[1][1:])
	pid, err2 := strconv.Atoi(f[2][1:])
	ms, err3 := strconv.ParseInt(f[3][1:], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return member{}, false
	}
	return member{nonce: f[0], container: c, pid: pid, since: time.UnixMilli(ms), host: f[4][1:], known: true}, true
}

// describe says "process <pid> on host <host> since <time>".
func (mb member) describe() string {
	if !mb.known {
		return fmt.Sprintf("a process on %s that is not a container of this version of sluice", mb.host)
	}
	return checkpoint.Process{PID: mb.pid, Host: mb.host, Since: mb.since}.String()
}

// goneFrom reports whether mb is a process of self's host that no longer exists (a
// container killed there, and restarted as self): then it cannot take its instance
// id back, and self need not wait for it. A process of another host, of self's own
// PID (another lock of this process, or a PID reused after a restart) or that
// may still exist is not known to be gone.
func (mb member) goneFrom(self member) bool {
	if !mb.known || mb.host != self.host || mb.pid <= 0 || mb.pid == self.pid {
		return false
	}
	p, err := os.FindProcess(mb.pid)
	if err != nil {
		return true // Windows: no such process
	}
	defer p.Release()
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// before reports whether mb took its lock before o did (the nonce breaks ties). A
// member of an unknown form is never after.
func (mb member) before(o member) bool {
	switch {
	case !o.known:
		return false
	case !mb.since.Equal(o.since):
		return mb.since.Before(o.since)
	}
	return mb.nonce < o.nonce
}

// joinRunLockGroup creates a member of the run-lock group with clientID, static
// (container c, described by self) when instance is set, and starts it in the
// background.
func (m *CheckpointManager) joinRunLockGroup(clientID string, instance *string, c checkpoint.Container, self member) (*runLock, error) {
	cl, err := kgo.NewClient(append(m.sys.clientOpts(RoleCheckpoint), kgo.ClientID(clientID))...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: run lock: %w", err)
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{m.topic}
	ctx, cancel := context.WithCancel(context.Background())
	l := &runLock{
		m: m, cl: cl, adm: kadm.NewClient(cl), group: m.RunLockGroup(), clientID: clientID, instance: instance, c: c, self: self,
		meta: meta.AppendTo(nil), ctx: ctx, cancel: cancel, lastOK: time.Now(),
		lost: make(chan struct{}), done: make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// runLock is a member of the run-lock group: a container's run lock, or the checkpoint
// tool's rewrite lock (instance nil).
type runLock struct {
	m        *CheckpointManager
	cl       *kgo.Client
	adm      *kadm.Client
	group    string
	clientID string
	instance *string // the group instance id; nil for the checkpoint tool
	c        checkpoint.Container
	self     member
	meta     []byte // the join metadata

	ctx    context.Context // the member's life: cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	memberID string
	lastOK   time.Time // when the coordinator last accepted the member
	acquired bool      // AcquireRunLock returned the lock
	lostErr  error

	lost      chan struct{} // closed when lost, with lostErr set
	done      chan struct{} // closed when run returns
	closeOnce sync.Once
}

// Lost is closed when another process took the container over (see AcquireRunLock).
func (l *runLock) Lost() <-chan struct{} { return l.lost }

// Err returns why the lock was lost, or nil.
func (l *runLock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// acquire marks the lock as handed to the container, unless it was lost already.
func (l *runLock) acquire() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr != nil {
		return l.lostErr
	}
	l.acquired = true
	return nil
}

// lose marks the lock as lost, with err, once.
func (l *runLock) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr == nil {
		l.lostErr = err
		close(l.lost)
	}
}

func (l *runLock) accepted() {
	l.mu.Lock()
	l.lastOK = time.Now()
	l.mu.Unlock()
}

func (l *runLock) currentMember() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.memberID
}

func (l *runLock) setMember(id string) {
	l.mu.Lock()
	l.memberID = id
	l.mu.Unlock()
}

// run keeps the member in the group until the lock is closed or lost: join, sync,
// heartbeat, and join again when the coordinator asks.
func (l *runLock) run() {
	defer close(l.done)
	started := time.Now()
	joined := false
	backoff := 50 * time.Millisecond
	for l.ctx.Err() == nil {
		gen, err := l.join()
		if err == nil {
			if !joined {
				joined = true
				l.m.log.Info("checkpoint: joined the job's run-lock group", "group", l.group, "took", time.Since(started).Round(time.Millisecond))
			}
			backoff = 50 * time.Millisecond
			err = l.heartbeat(gen)
		}
		if l.ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.IllegalGeneration):
			// join again
		case errors.Is(err, kerr.FencedInstanceID), errors.Is(err, kerr.UnknownMemberID):
			if l.displaced(err) {
				return
			}
			l.setMember("")
		case errors.Is(err, kerr.InconsistentGroupProtocol), errors.Is(err, kerr.GroupAuthorizationFailed), errors.Is(err, kerr.InvalidSessionTimeout):
			l.lose(fmt.Errorf("checkpoint: cannot be a member of the job's run-lock group %s: %w", l.group, err))
			return
		default:
			l.m.log.Warn("checkpoint: run-lock group membership failed; trying again", "group", l.group, "err", err)
			if sleep(l.ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// join joins the group and syncs, and returns the generation joined.
func (l *runLock) join() (int32, error) {
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = l.group
		req.SessionTimeoutMillis = int32(RunLockSessionTimeout.Milliseconds())
		req.RebalanceTimeoutMillis = int32(RunLockSessionTimeout.Milliseconds())
		req.MemberID = l.currentMember()
		req.InstanceID = l.instance
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = runLockProtocol, l.meta
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(l.ctx, l.cl)
		if err != nil {
			return 0, err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if errors.Is(err, kerr.MemberIDRequired) {
				l.setMember(resp.MemberID)
				continue
			}
			return 0, err
		}
		l.setMember(resp.MemberID)
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group = l.group
		sync.Generation = resp.Generation
		sync.MemberID = resp.MemberID
		sync.InstanceID = l.instance
		sync.ProtocolType = kmsg.StringPtr("consumer")
		sync.Protocol = kmsg.StringPtr(runLockProtocol)
		if resp.LeaderID == resp.MemberID && !resp.SkipAssignment {
			empty := kmsg.NewConsumerMemberAssignment()
			for _, mem := range resp.Members {
				a := kmsg.NewSyncGroupRequestGroupAssignment()
				a.MemberID, a.MemberAssignment = mem.MemberID, empty.AppendTo(nil)
				sync.GroupAssignment = append(sync.GroupAssignment, a)
			}
		}
		sresp, err := sync.RequestWith(l.ctx, l.cl)
		if err == nil {
			err = kerr.ErrorForCode(sresp.ErrorCode)
		}
		if err != nil {
			return 0, err
		}
		l.accepted()
		return resp.Generation, nil
	}
}

// heartbeat heartbeats until the coordinator answers with an error, or, when it
// cannot be reached, until it has not accepted the member for a session timeout.
func (l *runLock) heartbeat(gen int32) error {
	t := time.NewTimer(l.interval())
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return l.ctx.Err()
		case <-t.C:
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group = l.group
		req.Generation = gen
		req.MemberID = l.currentMember()
		req.InstanceID = l.instance
		resp, err := req.RequestWith(l.ctx, l.cl)
		if err == nil {
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				return err
			}
			l.accepted()
		} else {
			l.mu.Lock()
			silent := time.Since(l.lastOK)
			l.mu.Unlock()
			if silent >= RunLockSessionTimeout {
				return err
			}
		}
		t.Reset(l.interval())
	}
}

// interval is how long to wait for the next heartbeat: briefly while AcquireRunLock
// waits (it wants to hear of a live holder of its instance id soon), RunLockHeartbeat
// afterwards.
func (l *runLock) interval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.acquired && l.instance != nil {
		return probeHeartbeat
	}
	return RunLockHeartbeat
}

// displaced handles the coordinator's word that the member is not (or no longer) in
// the group (cause: FENCED_INSTANCE_ID or UNKNOWN_MEMBER_ID), and reports whether the
// lock is lost. The checkpoint tool just joins again. A container looks who holds its
// instance id: nobody, and it joins again; a process that took its lock after this
// one, while this one was in touch with the coordinator, and it joins again too,
// taking the id back; anyone else, and the lock is lost.
func (l *runLock) displaced(cause error) (lost bool) {
	if l.instance == nil {
		return false
	}
	var holder *member
	var held bool
	err := retry(l.ctx, metadataAttempts, func(ctx context.Context) error {
		var err error
		holder, held, err = instanceHolder(ctx, l.adm, l.group, *l.instance, l.clientID)
		return err
	})
	if l.ctx.Err() != nil {
		return true
	}
	if err != nil {
		if !errors.Is(cause, kerr.FencedInstanceID) {
			return false // expired: join again
		}
		l.lose(fmt.Errorf("checkpoint: container %d of job %q (id %s) was taken over by another process (which cannot be named: %v): this one stops: %w",
			l.c.ID, l.m.job, l.m.jobID, err, checkpoint.ErrFenced))
		return true
	}
	if !held {
		return false
	}
	l.mu.Lock()
	recent := time.Since(l.lastOK) < RunLockSessionTimeout
	acquired := l.acquired
	l.mu.Unlock()
	if recent && l.self.before(*holder) {
		l.m.log.Warn("checkpoint: another process started this container too; it is refused and this one keeps running",
			"container", l.c.ID, "other", holder.describe(), "group", l.group, "instance_id", *l.instance)
		return false
	}
	if acquired {
		l.lose(fmt.Errorf("checkpoint: container %d of job %q (id %s) was taken over by %s (a member of consumer group %s with instance id %s): this one stops: %w",
			l.c.ID, l.m.job, l.m.jobID, holder.describe(), l.group, *l.instance, checkpoint.ErrFenced))
		return true
	}
	// Not running yet: before saying who runs the container, let other starting
	// duplicates settle (the holder may be one, about to give way to the container
	// that runs).
	holder = l.settledHolder(*holder)
	l.lose(fmt.Errorf("checkpoint: container %d of job %q (id %s) is already running: %s (a member of consumer group %s with instance id %s); stop it first, or give this one another --container-id: %w",
		l.c.ID, l.m.job, l.m.jobID, holder.describe(), l.group, *l.instance, checkpoint.ErrContainerRunning))
	return true
}

// settledHolder returns the holder of the instance id once the same one holds it for
// two heartbeats of a running container, or the last one seen after RunLockProbe.
func (l *runLock) settledHolder(last member) *member {
	deadline := time.Now().Add(RunLockProbe)
	for time.Now().Before(deadline) {
		if sleep(l.ctx, 2*RunLockHeartbeat) != nil {
			break
		}
		h, held, err := instanceHolder(l.ctx, l.adm, l.group, *l.instance, l.clientID)
		if err != nil || !held {
			continue
		}
		if h.nonce == last.nonce {
			break
		}
		last = *h
	}
	return &last
}

// Peers returns the containers of the job, among 0..Count-1, that the run-lock group
// lists (this one always). A container killed without a clean stop is listed until
// its session times out.
func (l *runLock) Peers(ctx context.Context) ([]int, error) {
	gs, err := l.adm.DescribeGroups(ctx, l.group)
	if err == nil {
		err = gs[l.group].Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("checkpoint: describing the run-lock group %s: %w", l.group, err)
	}
	ids := []int{l.c.ID}
	prefix := l.group + "-container-"
	for _, mem := range gs[l.group].Members {
		if mem.InstanceID == nil {
			continue
		}
		s, ok := strings.CutPrefix(*mem.InstanceID, prefix)
		if id, err := strconv.Atoi(s); ok && err == nil && id >= 0 && id < l.c.Count {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Close leaves the group (unless the lock was lost), or abandons a join still in
// progress. Closing twice is harmless.
func (l *runLock) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		if l.Err() == nil {
			l.leave()
		}
		l.cl.Close()
	})
	return nil
}

// leave removes the member from the group, trying for a few seconds. It looks the
// member up by its client ID first: a join abandoned by Close may have been
// answered after all, and a member replaced by another process must not remove it.
func (l *runLock) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var memberID string
	err := retry(ctx, metadataAttempts, func(ctx context.Context) error {
		gs, err := l.adm.DescribeGroups(ctx, l.group)
		if err == nil {
			err = gs[l.group].Err
		}
		if err != nil {
			return err
		}
		for _, mem := range gs[l.group].Members {
			if mem.ClientID == l.clientID {
				memberID = mem.MemberID
			}
		}
		return nil
	})
	if errors.Is(err, kerr.GroupIDNotFound) || err == nil && memberID == "" {
		return // not a member
	}
	if err == nil {
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = l.group
		req.MemberID = memberID
		mem := kmsg.NewLeaveGroupRequestMember()
		mem.MemberID = memberID
		mem.InstanceID = l.instance
		req.Members = append(req.Members, mem)
		var resp *kmsg.LeaveGroupResponse
		if resp, err = req.RequestWith(ctx, l.cl); err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
			for _, mr := range resp.Members {
				if err == nil {
					err = kerr.ErrorForCode(mr.ErrorCode)
				}
			}
		}
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.FencedInstanceID) {
		l.m.log.Warn("checkpoint: cannot leave the run-lock group; the coordinator lists this process until its session times out",
			"group", l.group, "timeout", RunLockSessionTimeout, "err", err)
	}
}
