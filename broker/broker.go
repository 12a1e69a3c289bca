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
// Lifecycle: New validates the options and starts nothing. Start locks the data
// directory, binds the address and serves in the background; Addr then returns the
// address clients should use (useful with port 0). Close stops serving, persists
// everything and releases the directory; it is idempotent. Run(ctx) is Start, then
// Close when ctx is done, for commands.
//
// One data directory, one broker: Start takes an exclusive flock(2) on LockFile in
// the directory and writes its process ID into it, and a second broker on the same
// directory, in this process or another, fails with an error wrapping
// ErrDataDirInUse that names the directory and the holder's process ID. The kernel
// releases the lock when the process exits, however it exits, so a broker that was
// killed leaves a stale lock file that the next one simply takes over. On platforms
// without flock(2) the directory is not locked, and Start logs a warning saying so.
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-streams/sluice/internal/flock"
)

// DefaultListen is the address the broker listens on when Options.Listen is empty.
const DefaultListen = "127.0.0.1:9092"

// LockFile is the name of the lock file in the data directory; while a broker runs,
// it holds the broker's process ID.
const LockFile = "broker.lock"

// ErrDataDirInUse is wrapped by Start's error when another broker holds the data
// directory.
var ErrDataDirInUse = errors.New("in use by another broker")

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
	lock    *os.File // the data directory's lock file, held while serving
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

// Start locks the data directory, binds the listen address, loads the directory and
// serves in the background. It logs a warning that the broker is for development and
// tests only. If another broker holds the directory, it fails with an error wrapping
// ErrDataDirInUse.
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
		lock, err := lockDataDir(b.opts.DataDir)
		if errors.Is(err, errors.ErrUnsupported) {
			b.log.Warn("development broker: the data directory cannot be locked on this platform; never start a second broker on it", "data_dir", b.opts.DataDir, "error", err)
		} else if err != nil {
			return err
		}
		b.lock = lock
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
		b.release(b.lock)
		b.lock = nil
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
	c, lock := b.cluster, b.lock
	b.cluster, b.lock, b.closed = nil, nil, true
	b.mu.Unlock()
	if c != nil {
		c.Close()
		b.release(lock)
		b.log.Info("development broker stopped", "data_dir", b.opts.DataDir)
	}
	return nil
}

// lockDataDir takes the exclusive lock on dir's LockFile, creating it if needed, and
// writes this process's ID into it. The returned file holds the lock until closed.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("broker: lock the data directory: %w", err)
	}
	if err := flock.TryExclusive(f); err != nil {
		defer f.Close()
		if !errors.Is(err, flock.ErrLocked) {
			return nil, fmt.Errorf("broker: lock the data directory %s: %w", dir, err)
		}
		holder := "process ID not written yet"
		if pid := readPID(f); pid != "" {
			holder = "process " + pid
		}
		return nil, fmt.Errorf("broker: data directory %s is %w (%s, lock file %s); stop it or use another data directory", dir, ErrDataDirInUse, holder, path)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("broker: write %s: %w", path, err)
	}
	return f, nil
}

// readPID returns the process ID in a lock file, or "" if it holds none (its
// holder has not written it yet).
func readPID(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid := strings.TrimSpace(string(buf[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return pid
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// release empties the lock file, so that no process ID is left in it, and releases
// the lock. A nil lock (no data directory, or no locking on this platform) is
// nothing to release.
func (b *Broker) release(lock *os.File) {
	if lock == nil {
		return
	}
	if err := lock.Truncate(0); err != nil {
		b.log.Warn("development broker: empty the lock file", "file", lock.Name(), "error", err)
	}
	if err := lock.Close(); err != nil {
		b.log.Warn("development broker: release the data directory", "file", lock.Name(), "error", err)
	}
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
