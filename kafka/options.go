package kafka

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// Role names one kind of client a Kafka system creates, for the options of
// WithClientOptsFunc.
type Role string

// The clients of a Kafka system.
const (
	// RoleAdmin is the system's admin client (metadata, offsets, time lookups): one
	// per system, connected as the consumers are.
	RoleAdmin Role = "admin"
	// RoleConsumer is the client of one consumer; a container has one per system.
	RoleConsumer Role = "consumer"
	// RoleProducer is the system's one producer client, which all its tasks share.
	RoleProducer Role = "producer"
	// RoleCheckpoint is every client of the Kafka checkpoint manager built on the
	// system (reads, writes, the run and rewrite locks), connected as the producer is.
	RoleCheckpoint Role = "checkpoint"
	// RoleCoordinator is the client through which a container shares the job's tasks
	// with the other containers (job.coordinator.factory=kafka), connected as the
	// consumers are.
	RoleCoordinator Role = "coordinator"
)

// An Option gives a Kafka system what its configuration keys cannot express: extra
// franz-go options such as a SASL mechanism (OAUTHBEARER, AWS_MSK_IAM), a custom
// dialer, or hooks (kprom, kotel).
type Option func(*options)

type options struct {
	client []func(Role) []kgo.Opt
}

// WithClientOpts adds opts to every client the system creates, and so to those of
// the Kafka checkpoint manager built on it. See WithClientOptsFunc for where they go.
func WithClientOpts(opts ...kgo.Opt) Option {
	return WithClientOptsFunc(func(Role) []kgo.Opt { return opts })
}

// WithClientOptsFunc adds the options fn returns to each client the system creates;
// fn is called once per client, as it is created (possibly from several goroutines),
// with the client's role, so that it can return a fresh value per client (a kprom
// metrics plugin with a per-role namespace, say).
//
// The options come after those Sluice derives from the connection keys
// (bootstrap.servers, client.id, security.protocol, ssl.*, sasl.*), so they may
// replace them (a kgo.SASL here is added to any sasl.mechanism, so set none), and
// before the options Sluice needs of each client (acks=all, its partitioner, the
// partitions and offsets it consumes, the fetch and batch limits of the keys), so
// they cannot weaken those. The options are checked when a client is created: Start
// (or a consumer's Start, or the checkpoint manager's) fails with franz-go's error.
func WithClientOptsFunc(fn func(Role) []kgo.Opt) Option {
	return func(o *options) {
		if fn != nil {
			o.client = append(o.client, fn)
		}
	}
}

// NewFactory returns New with opts as a system.Factory, for the container's table
// of systems (or cli.WithSystem).
func NewFactory(opts ...Option) system.Factory {
	return func(name string, cfg config.Config, logger *slog.Logger) (system.System, error) {
		s, err := New(name, cfg, logger, opts...)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}
}

// connOpts are the connection options of a client of role, with the program's extra
// options (WithClientOptsFunc) after them.
func (s *settings) connOpts(role Role, l *kgoLogger) []kgo.Opt {
	c := s.consumer
	if role == RoleProducer || role == RoleCheckpoint {
		c = s.producer
	}
	opts := c.opts(l)
	for _, fn := range s.extra {
		opts = append(opts, fn(role)...)
	}
	return opts
}

// clientOpts are the connection options of a client of role of this system.
func (s *System) clientOpts(role Role) []kgo.Opt { return s.set.connOpts(role, s.klog) }
