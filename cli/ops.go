package cli

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/ops"
)

// Keys of the HTTP endpoint, read by `sluice run`.
const (
	// KeyHTTPListen is the address of the HTTP endpoint (/metrics, /healthz, /readyz,
	// /status); off unless set. --http-listen overrides it.
	KeyHTTPListen = "job.http.listen"
	// KeyHTTPStallMs is how long a task that is behind may make no progress before
	// /readyz calls it stuck.
	KeyHTTPStallMs = "job.http.stall.ms"
	// KeyPartitionLabels set to false sums per-partition metrics per stream.
	KeyPartitionLabels = "metrics.partition.labels"
)

// endpoint is the HTTP endpoint of one `sluice run`, nil when off.
type endpoint struct {
	addr string
	opts ops.Options
	m    *ops.Metrics
}

// newEndpoint reads the endpoint's settings: flag wins over KeyHTTPListen. It returns
// nil when the endpoint is off; its keys are checked either way.
func newEndpoint(cfg config.Config, flag string) (*endpoint, error) {
	addr := flag
	if addr == "" {
		addr = cfg.GetOr(KeyHTTPListen, "")
	}
	var p config.Problems
	var o ops.Options
	if v, ok := cfg.Get(KeyPartitionLabels); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.Add(KeyPartitionLabels, v, "must be true or false")
		}
		o.DropPartitionLabels = !b
	}
	if v, ok := cfg.Get(KeyHTTPStallMs); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			p.Add(KeyHTTPStallMs, v, "must be a positive number of milliseconds")
		}
		o.StallAfter = time.Duration(n) * time.Millisecond
	}
	if err := p.Err(); err != nil || addr == "" {
		return nil, err
	}
	return &endpoint{addr: addr, opts: o, m: ops.NewMetrics(o)}, nil
}

// instrument makes the container's events and (unless the program replaced the kafka
// system) its Kafka clients feed the metrics.
func (ep *endpoint) instrument(opts *container.Options, kafkaReplaced bool) {
	opts.Events = ep.m.Events()
	if !kafkaReplaced {
		opts.Systems = maps.Clone(opts.Systems)
		opts.Systems["kafka"] = kafka.NewFactory(ep.m.KafkaOption())
	}
}

// serve starts serving c's endpoints until ctx is done; the returned function stops
// it and waits.
func (ep *endpoint) serve(ctx context.Context, c *container.Container, container string, log *slog.Logger) (func(), error) {
	ep.m.Watch(c)
	jc := c.Job()
	srv, err := ops.Listen(ep.addr, c, ep.m, ops.JobInfo{Job: jc.Name, JobID: jc.ID, Container: container}, ep.opts)
	if err != nil {
		return nil, err
	}
	log.Info("http endpoint listening: /metrics, /healthz, /readyz, /status", "addr", srv.Addr())
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			log.Error("http endpoint failed", "error", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// containerLabel names the container for /status: its id, "" in a group without one.
func containerLabel(opts container.Options, group bool) string {
	if group && !opts.ContainerIDSet {
		return ""
	}
	return fmt.Sprint(opts.ContainerID)
}
