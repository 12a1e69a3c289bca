package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/decimal"
)

// System is a Kafka system: the admin, consumers and producers of one configured
// cluster (systems.<name>.*). It implements system.System.
type System struct {
	name string
	set  *settings
	log  *slog.Logger
	klog *kgoLogger
	// clock tells time for the retries of the system and its checkpoint manager;
	// nil is the real clock. A test hook: tests set a backoff.FakeClock.
	clock backoff.Clock

	doneCtx   context.Context // already cancelled; see Producer.Flush
	deadlines *deliveryDeadlines

	mu      sync.Mutex
	state   int // stateNew, stateStarted, stateClosed
	admin   *kgo.Client
	adm     *kadm.Client
	prod    *kgo.Client
	opened  map[*Consumer]struct{}
	resets  atomic.Int64
	skipped atomic.Int64
	// del deletes committed input messages (samza.delete.committed.messages); nil
	// when the system deletes none.
	del *deleter
	// mirrorGroup is the consumer group checkpoints are mirrored to; "" when off.
	mirrorGroup string
}

// adminMetadataMinAge is how long admin clients reuse cached metadata: short, so
// that a topic just created (or deleted) is seen within the retries of a lookup.
const adminMetadataMinAge = 100 * time.Millisecond

const (
	stateNew = iota
	stateStarted
	stateClosed
)

var _ system.System = (*System)(nil)

// Factory is New as a system.Factory, for the container's table of systems; NewFactory
// gives it options.
func Factory(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
	s, err := New(name, cfg, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// New validates the keys of system name (systems.<name>.consumer.*, .producer.* and
// the per-stream systems.<name>.streams.<stream>.consumer.auto.offset.reset) and
// returns the system, unconnected. Every problem is reported at once, as an
// errors.Join of *config.Error each naming the full key and its value (secrets are
// hidden). A nil logger discards. opts add what the keys cannot say (WithClientOpts).
func New(name string, cfg config.Config, logger *slog.Logger, opts ...Option) (*System, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if name == "" || strings.Contains(name, ".") {
		return nil, &config.Error{Key: "systems.<name>", Value: name, Msg: "a system name must be non-empty and contain no dot"}
	}
	set, err := parseSettings(name, cfg)
	var mp config.Problems
	group := mirrorSettings(&mp, cfg)
	if err := errors.Join(err, mp.Err()); err != nil {
		return nil, err
	}
	logger = logger.With("system", name)
	doneCtx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &System{name: name, set: set, log: logger, klog: &kgoLogger{l: logger}, opened: map[*Consumer]struct{}{}, doneCtx: doneCtx,
		deadlines: newDeliveryDeadlines(set.deliveryTimeout), mirrorGroup: group}
	// A safety net: everything kgo checks should have been checked above.
	if err := kgo.ValidateOpts(set.consumerOpts(s.klog)...); err != nil {
		return nil, &config.Error{Key: "systems." + name + ".consumer", Msg: fmt.Sprintf("rejected by the Kafka client: %v", err)}
	}
	if err := kgo.ValidateOpts(set.producerOpts(s.klog)...); err != nil {
		return nil, &config.Error{Key: "systems." + name + ".producer", Msg: fmt.Sprintf("rejected by the Kafka client: %v", err)}
	}
	// The program's options are checked when the clients are created: fn may build
	// something per client, so it is not called for nothing here.
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	set.extra = o.client
	if set.delete.any() {
		s.del = newDeleter(s)
	}
	return s, nil
}

// Name returns the system's name.
func (s *System) Name() string { return s.name }

// ResetPolicy returns what consumers of stream do when their next offset no longer
// exists: the stream's own auto.offset.reset, else the system's, else ResetOldest.
func (s *System) ResetPolicy(stream string) system.ResetPolicy { return s.set.resets.Of(stream) }

// Stats counts what the system's consumers did that users should know about.
type Stats struct {
	// OutOfRangeResets counts the times a consumer found its next offset gone (deleted
	// by retention, or lost by the broker) and resumed elsewhere per its ResetPolicy.
	OutOfRangeResets int64
	// MessagesSkipped is how many messages those resets skipped over.
	MessagesSkipped int64
}

// Stats returns the system's counters. It is safe to call at any time.
func (s *System) Stats() Stats {
	return Stats{OutOfRangeResets: s.resets.Load(), MessagesSkipped: s.skipped.Load()}
}

// OutOfRangeResets implements system.ResetCounter.
func (s *System) OutOfRangeResets() (resets, skipped int64) {
	st := s.Stats()
	return st.OutOfRangeResets, st.MessagesSkipped
}

// Start connects: it creates the admin and producer clients and checks that the
// cluster answers, within StartTimeout or ctx, whichever ends first. The error names
// the bootstrap servers.
func (s *System) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateStarted:
		return nil
	case stateClosed:
		return fmt.Errorf("kafka system %q: Start after Close", s.name)
	}
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()

	admin, err := kgo.NewClient(append(s.clientOpts(RoleAdmin), kgo.MetadataMinAge(adminMetadataMinAge))...)
	if err != nil {
		return fmt.Errorf("kafka system %q: %w", s.name, err)
	}
	if err := ping(ctx, s.clock, admin, s.set.consumer); err != nil {
		admin.Close()
		return fmt.Errorf("kafka system %q: %w", s.name, err)
	}
	prod, err := kgo.NewClient(s.set.producerOpts(s.klog)...)
	if err != nil {
		admin.Close()
		return fmt.Errorf("kafka system %q: %w", s.name, err)
	}
	if !sameConn(s.set.consumer, s.set.producer) {
		if err := ping(ctx, s.clock, prod, s.set.producer); err != nil {
			admin.Close()
			prod.Close()
			return fmt.Errorf("kafka system %q: %w", s.name, err)
		}
	}
	s.admin, s.adm, s.prod = admin, kadm.NewClient(admin), prod
	s.state = stateStarted
	go s.deadlines.run()
	s.log.Info("kafka: connected", "bootstrap.servers", strings.Join(s.set.consumer.seeds, ","))
	return nil
}

// sameConn reports whether two roles reach the cluster the same way.
func sameConn(a, b conn) bool {
	return slices.Equal(a.seeds, b.seeds) &&
		(a.secInherited || b.secInherited || a.protocol == "PLAINTEXT" && b.protocol == "PLAINTEXT")
}

// pingRetry is how ping retries: every 250 ms until its context ends (Start's
// StartTimeout), as a broker may still be starting.
var pingRetry = backoff.Policy{Initial: 250 * time.Millisecond}

// ping checks that a broker answers, retrying under pingRetry on clock (nil: the real
// clock), and names the servers when none does.
func ping(ctx context.Context, clock backoff.Clock, cl *kgo.Client, c conn) error {
	err := backoff.Retrier{Policy: pingRetry, Clock: clock, Retriable: func(err error) bool { return !permanent(err) }}.Do(ctx, cl.Ping)
	var ended *backoff.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ended) && ended.Ctx != nil:
		return fmt.Errorf("no broker answered at %s (%s, security.protocol=%s) within %v; check that the brokers are running and reachable: %w (last error: %v)",
			strings.Join(c.seeds, ","), c.seedsFrom, c.protocol, ended.Elapsed.Round(time.Millisecond), ended.Ctx, ended.Err)
	}
	return fmt.Errorf("cannot connect to %s (%s, security.protocol=%s): %w", strings.Join(c.seeds, ","), c.seedsFrom, c.protocol, err)
}

// permanent reports connection errors that retrying cannot fix: failed
// authentication, an untrusted or misnamed broker certificate.
func permanent(err error) bool {
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return !ke.Retriable
	}
	var (
		verify   *tls.CertificateVerificationError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &hostname) || errors.As(err, &unknown) || errors.As(err, &invalid)
}

func (s *System) started() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew:
		return fmt.Errorf("kafka system %q is not started", s.name)
	case stateClosed:
		return fmt.Errorf("kafka system %q is closed", s.name)
	}
	return nil
}

// Admin returns the system's admin. It may be called before Start; its methods
// that talk to the cluster fail until then.
func (s *System) Admin() system.Admin { return &Admin{Offsets: decimal.Offsets{Prefix: "kafka"}, s: s} }

// NewConsumer returns a consumer with its own client; Register its partitions, then
// Start it.
func (s *System) NewConsumer() (system.Consumer, error) {
	if err := s.started(); err != nil {
		return nil, err
	}
	c := newConsumer(s)
	s.mu.Lock()
	s.opened[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

func (s *System) forget(c *Consumer) {
	s.mu.Lock()
	delete(s.opened, c)
	s.mu.Unlock()
}

// NewProducer returns a producer for one task. All of a system's producers share one
// client; each one's Flush waits for its own messages only.
func (s *System) NewProducer() (system.Producer, error) {
	if err := s.started(); err != nil {
		return nil, err
	}
	return newProducer(s), nil
}

// Close closes the system's clients and any consumer still open. Messages sent but
// not flushed are failed. Close is idempotent.
func (s *System) Close() error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	if s.del != nil {
		// Unlocked: a round under way takes s.mu for the admin client.
		s.mu.Unlock()
		s.del.close()
		s.mu.Lock()
	}
	consumers := make([]*Consumer, 0, len(s.opened))
	for c := range s.opened {
		consumers = append(consumers, c)
	}
	admin, prod := s.admin, s.prod
	started := prod != nil
	s.mu.Unlock()
	var errs []error
	for _, c := range consumers {
		errs = append(errs, c.Close())
	}
	if prod != nil {
		prod.Close()
	}
	s.deadlines.close(started)
	if admin != nil {
		admin.Close()
	}
	return errors.Join(errs...)
}

// kgoLogger sends franz-go's log lines to slog. franz-go's info lines are chatty, so
// they go out at debug level.
type kgoLogger struct{ l *slog.Logger }

func (k *kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, "kafka client: "+msg, keyvals...)
}

// retriable reports whether err is worth retrying: a retriable Kafka error, or a
// sharded admin failure made only of those.
func retriable(err error) bool {
	if kerr.IsRetriable(err) {
		return true
	}
	if se, ok := errors.AsType[*kadm.ShardErrors](err); ok && len(se.Errs) > 0 {
		for _, e := range se.Errs {
			if !kerr.IsRetriable(e.Err) {
				return false
			}
		}
		return true
	}
	return false
}

// metadataRetry is how lookups of metadata and offsets retry a retriable error (a
// leader moving, a topic just created): metadataAttempts (5) attempts, waiting 0.1,
// 0.2, 0.4 and 0.8 s in between (1.5 s in all), on clock (nil: the real clock).
func metadataRetry(clock backoff.Clock) backoff.Retrier {
	return backoff.Retrier{
		Policy:    backoff.Policy{Initial: 100 * time.Millisecond, Multiplier: 2, Max: 2 * time.Second, Attempts: metadataAttempts},
		Clock:     clock,
		Retriable: retriable,
	}
}

// retry calls fn under metadataRetry with attempts attempts, on the real clock.
// (The run lock's code calls it; the rest uses metadataRetry with the system's clock.)
func retry(ctx context.Context, attempts int, fn func(context.Context) error) error {
	r := metadataRetry(nil)
	r.Attempts = attempts
	return r.Do(ctx, fn)
}

// sleep waits d on the real clock unless ctx ends first. (The run lock's code calls
// it; the rest uses backoff.Sleep with the system's clock.)
func sleep(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, nil, d) }
