// Package broker is Sluice's embedded development broker: a one-node server that
// speaks the Kafka protocol (franz-go's kfake), listens on a TCP address, and keeps
// its topics, records and committed offsets in a data directory across restarts. It
// is what `sluice broker --listen=127.0.0.1:9092 --data-dir=DIR` runs, so that
// jobs, the checkpoint tool and tests need no Kafka installation.
//
// It is for development and tests only, never production: it has one node and no
// replication, and without SyncWrites a crash can lose the most recent writes. It
// says so in a warning when it starts.
//
// Lifecycle: New validates the options and starts nothing. Start binds the address
// and serves in the background; Addr then returns the address clients should use
// (useful with port 0). Close stops serving and persists everything; it is
// idempotent. Run(ctx) is Start, then Close when ctx is done, for commands.
//
// Behaviour a developer may rely on, matching a default Kafka broker: topics are
// created automatically, with one partition, when a client that asks for automatic
// creation (such as the Java producer) uses a topic that does not exist; topic
// configs such as cleanup.policy=compact are kept; consumer groups and their
// committed offsets survive restarts.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultListen is the address the broker listens on when Options.Listen is empty.
const DefaultListen = "127.0.0.1:9092"

// Options configures a Broker.
type Options struct {
	// Listen is host:port to listen on; DefaultListen when empty. Port 0 picks a free
	// port (see Addr). The host is also what the broker tells clients to connect
	// to; a wildcard host (":9092", "0.0.0.0:9092") listens everywhere but tells
	// clients 127.0.0.1, so only local clients can use it.
	Listen string
	// DataDir holds the broker's data; it is created if missing and reloaded on
	// start. Empty keeps everything in memory, lost when the broker stops.
	DataDir string
	// SyncWrites fsyncs every write, so that not even a crash loses acknowledged
	// records. Without it, like Kafka by default, the OS flushes writes when it
	// chooses; a clean Close always persists everything.
	SyncWrites bool
	// Logger receives the broker's warnings and errors; nil discards.
	Logger *slog.Logger
}

// Broker is an embedded, single-node Kafka-protocol broker.
type Broker struct {
	opts      Options
	host      string
	port      int
	advertise string
	log       *slog.Logger

	mu      sync.Mutex
	cluster *kfake.Cluster
	addr    string
	closed  bool
}

// New validates opts and returns a broker that is not yet serving.
func New(opts Options) (*Broker, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen address %q: want host:port: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("broker: listen address %q: bad port %q", opts.Listen, portStr)
	}
	if opts.DataDir != "" {
		if fi, err := os.Stat(opts.DataDir); err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("broker: data directory %s is a file", opts.DataDir)
		}
	}
	b := &Broker{opts: opts, host: host, port: port, log: opts.Logger.With("component", "broker")}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		b.advertise = "127.0.0.1"
	}
	return b, nil
}

// Start binds the listen address, loads the data directory and serves in the
// background. It logs a warning that the broker is for development and tests only.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return errors.New("broker: Start after Close")
	case b.cluster != nil:
		return errors.New("broker: already started")
	}
	if b.opts.DataDir != "" {
		if err := os.MkdirAll(b.opts.DataDir, 0o755); err != nil {
			return fmt.Errorf("broker: data directory: %w", err)
		}
	}
	listen := net.JoinHostPort(b.host, strconv.Itoa(b.port))
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, listen)
			if err != nil || b.advertise == "" {
				return ln, err
			}
			return advertised{ln, b.advertise}, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
		kfake.WithLogger(kfakeLogger{b.log}),
	}
	if b.opts.DataDir != "" {
		opts = append(opts, kfake.DataDir(b.opts.DataDir))
	}
	if b.opts.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("broker: starting on %s (data directory %q): %w", listen, b.opts.DataDir, err)
	}
	b.cluster = c
	b.addr = c.ListenAddrs()[0]
	b.log.Warn("development broker: for development and tests only, NOT for production (one node, no replication)",
		"addr", b.addr, "listen", listen, "data_dir", b.opts.DataDir, "sync_writes", b.opts.SyncWrites)
	if b.opts.DataDir == "" {
		b.log.Warn("development broker: no data directory; everything is lost when it stops")
	}
	if b.advertise != "" {
		b.log.Warn("development broker: listening on every interface but telling clients to connect to 127.0.0.1; clients on other machines cannot use it", "listen", listen)
	}
	return nil
}

// Addr returns the address clients connect to (host:port), or "" before Start.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// Close stops serving and writes everything to the data directory. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	c := b.cluster
	b.cluster, b.closed = nil, true
	b.mu.Unlock()
	if c != nil {
		c.Close()
		b.log.Info("development broker stopped", "data_dir", b.opts.DataDir)
	}
	return nil
}

// Run starts the broker unless it is already started, serves until ctx is done, and
// closes it. It returns nil after a clean stop.
func (b *Broker) Run(ctx context.Context) error {
	b.mu.Lock()
	started := b.cluster != nil
	b.mu.Unlock()
	if !started {
		if err := b.Start(); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return b.Close()
}

// advertised is a listener that reports another host, so that the broker tells
// clients an address they can reach.
type advertised struct {
	net.Listener
	host string
}

func (a advertised) Addr() net.Addr {
	_, port, _ := net.SplitHostPort(a.Listener.Addr().String())
	return hostAddr(net.JoinHostPort(a.host, port))
}

type hostAddr string

func (hostAddr) Network() string  { return "tcp" }
func (h hostAddr) String() string { return string(h) }

// kfakeLogger sends kfake's warnings and errors to slog; its info and debug lines
// describe every request and are dropped.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error("development broker: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn("development broker: " + fmt.Sprintf(format, args...))
	}
}
