// Package ops answers an operator's questions about a running container over HTTP:
// is it alive (/healthz), is it working (/readyz), how far behind is it and is it
// checkpointing (/status as JSON, /metrics in Prometheus text format).
//
// Metrics holds the container's Prometheus metrics in a registry of its own (no global
// registry): counters and histograms fed by the container's Events, once per batch or
// commit and never per message, and gauges read at scrape time from
// container.Progress, which costs no request to any system. KafkaOption adds
// franz-go's client metrics (kprom) of every Kafka client. Server serves the four
// endpoints.
//
// Samza's metric names are translated to Prometheus conventions: commit-calls is
// sluice_task_commit_calls_total, messages-behind-high-watermark is
// sluice_task_messages_behind_high_watermark, and so on (docs/operations.md lists
// them all). Per-partition series carry task, system, stream and partition labels;
// with Options.DropPartitionLabels they are summed per system and stream instead, and
// per-task counters per container, for jobs with thousands of partitions.
package ops

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

// Options configures Metrics and Server.
type Options struct {
	// DropPartitionLabels sums per-partition series per system and stream, and
	// per-task ones per container (metrics.partition.labels=false).
	DropPartitionLabels bool
	// StallAfter is how long a task that is behind may go without progress before
	// /readyz calls it stuck; 0 means one minute.
	StallAfter time.Duration
	// WedgedAfter is how long the control loop may go without turning before /healthz
	// fails; 0 means 30 s. It turns at least once a second.
	WedgedAfter time.Duration
	// ContactAfter is how long a consumer may go without an answer from its brokers
	// before /readyz fails; 0 means 30 s.
	ContactAfter time.Duration
}

func (o *Options) defaults() {
	if o.StallAfter <= 0 {
		o.StallAfter = time.Minute
	}
	if o.WedgedAfter <= 0 {
		o.WedgedAfter = 30 * time.Second
	}
	if o.ContactAfter <= 0 {
		o.ContactAfter = 30 * time.Second
	}
}

// Source is what the metrics read at scrape time: a *container.Container.
type Source interface {
	Progress() container.Progress
	Stats() container.Stats
}

// Metrics is a container's Prometheus metrics. Create it with NewMetrics, give the
// container its Events, then Watch the container.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry
	src  atomic.Pointer[Source]

	processed      *prometheus.CounterVec
	processBatch   prometheus.Histogram
	commits        *prometheus.CounterVec
	commitFailures *prometheus.CounterVec
	commitsSkipped *prometheus.CounterVec
	commitDuration prometheus.Histogram
	windows        *prometheus.CounterVec
	windowDuration prometheus.Histogram
	startup        prometheus.Gauge
	checkpointRead prometheus.Gauge

	kafkaClients atomic.Int64
	kpromMu      sync.Mutex
}

const namespace = "sluice"

// NewMetrics returns the metrics of one container, registered in a registry of their
// own together with the Go and process collectors.
func NewMetrics(opts Options) *Metrics {
	opts.defaults()
	m := &Metrics{opts: opts, reg: prometheus.NewRegistry()}
	ssp := m.sspLabels()
	tl := m.taskLabels()
	m.processed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_messages_processed_total",
		Help: "Messages processed (Samza's messages-actually-processed), per input partition."}, ssp)
	m.processBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "process_batch_duration_seconds",
		Help:    "Time a task took to process one batch of messages of one partition (Samza's process-ns, per batch: one poll of one partition).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10)})
	m.commits = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_commit_calls_total",
		Help: "Commits of a task, successful or not (Samza's commit-calls)."}, tl)
	m.commitFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_commit_failures_total",
		Help: "Commits of a task that failed."}, tl)
	m.commitsSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_commits_skipped_total",
		Help: "Commits that wrote no checkpoint: the offsets equalled the last checkpoint (outputs were flushed only)."}, tl)
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "commit_duration_seconds",
		Help:    "Time a commit took: flushing the task's outputs and writing its checkpoint (Samza's commit-ns).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)})
	m.windows = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "task_window_calls_total",
		Help: "Calls of a task's Window (Samza's window-calls)."}, tl)
	m.windowDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "window_duration_seconds",
		Help:    "Time a call of Window took (Samza's window-ns).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10)})
	m.startup = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "container_startup_seconds",
		Help: "Time from the start of the container to its first message (Samza's container-startup-time)."})
	m.checkpointRead = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "checkpoint_read_seconds",
		Help: "Time the container took at start-up to read its tasks' checkpoints."})
	m.reg.MustRegister(m.processed, m.processBatch, m.commits, m.commitFailures, m.commitsSkipped, m.commitDuration,
		m.windows, m.windowDuration, m.startup, m.checkpointRead, progressCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics are in, to add the program's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Watch makes the scrape-time gauges read src (the container).
func (m *Metrics) Watch(src Source) { m.src.Store(&src) }

func (m *Metrics) source() Source {
	if p := m.src.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *Metrics) sspLabels() []string {
	if m.opts.DropPartitionLabels {
		return []string{"system", "stream"}
	}
	return []string{"task", "system", "stream", "partition"}
}

func (m *Metrics) taskLabels() []string {
	if m.opts.DropPartitionLabels {
		return nil
	}
	return []string{"task"}
}

func (m *Metrics) sspValues(task string, ssp system.SystemStreamPartition) []string {
	if m.opts.DropPartitionLabels {
		return []string{ssp.System, ssp.Stream}
	}
	return []string{task, ssp.System, ssp.Stream, strconv.Itoa(int(ssp.Partition))}
}

func (m *Metrics) taskValues(task string) []string {
	if m.opts.DropPartitionLabels {
		return nil
	}
	return []string{task}
}

// Events returns the container events that feed the metrics: set it as
// container.Options.Events. Each is a few counter and histogram updates.
func (m *Metrics) Events() *container.Events {
	return &container.Events{
		Processed: func(ev container.ProcessEvent) {
			m.processed.WithLabelValues(m.sspValues(ev.Task, ev.SSP)...).Add(float64(ev.Messages))
			m.processBatch.Observe(ev.Duration.Seconds())
		},
		CommitDone: func(ev container.CommitEvent) {
			m.commits.WithLabelValues(m.taskValues(ev.Task)...).Inc()
			if !ev.Written {
				m.commitsSkipped.WithLabelValues(m.taskValues(ev.Task)...).Inc()
			}
			m.commitDuration.Observe(ev.Duration.Seconds())
		},
		CommitFailed: func(ev container.CommitEvent) {
			m.commits.WithLabelValues(m.taskValues(ev.Task)...).Inc()
			m.commitFailures.WithLabelValues(m.taskValues(ev.Task)...).Inc()
			m.commitDuration.Observe(ev.Duration.Seconds())
		},
		WindowDone: func(ev container.WindowEvent) {
			m.windows.WithLabelValues(m.taskValues(ev.Task)...).Inc()
			m.windowDuration.Observe(ev.Duration.Seconds())
		},
		Started: func(ev container.StartEvent) {
			m.startup.Set(ev.Duration.Seconds())
			m.checkpointRead.Set(ev.CheckpointRead.Seconds())
		},
	}
}

// KafkaOption returns the option that gives every client of a Kafka system franz-go's
// client metrics (kprom: connections, bytes and requests per broker, produced and
// fetched batches, buffered records), as sluice_kafka_* series labelled with the
// client's role and a number.
func (m *Metrics) KafkaOption() kafka.Option {
	return kafka.WithClientOptsFunc(func(role kafka.Role) []kgo.Opt {
		n := m.kafkaClients.Add(1)
		km := kprom.NewMetrics(namespace+"_kafka", kprom.Registerer(lockedRegisterer{m}),
			kprom.WithStaticLabel(prometheus.Labels{"role": string(role), "client": strconv.FormatInt(n, 10)}))
		return []kgo.Opt{kgo.WithHooks(km)}
	})
}

// lockedRegisterer registers kprom's collectors one client at a time, so that two
// clients created together do not race for the same descriptors, and ignores a
// collector registered already.
type lockedRegisterer struct{ m *Metrics }

func (l lockedRegisterer) Register(c prometheus.Collector) error {
	l.m.kpromMu.Lock()
	defer l.m.kpromMu.Unlock()
	return l.m.reg.Register(c)
}

func (l lockedRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := l.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
				panic(err) // as promauto does: a programming error
			}
		}
	}
}

func (l lockedRegisterer) Unregister(c prometheus.Collector) bool {
	l.m.kpromMu.Lock()
	defer l.m.kpromMu.Unlock()
	return l.m.reg.Unregister(c)
}

// progressCollector reads the container's Progress and Stats at scrape time.
type progressCollector struct{ m *Metrics }

var (
	descCheckpointed = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_task_checkpointed_offset",
			"The offset in the task's latest checkpoint: the next offset it reads after a restart (Samza's checkpointed-offset).", labels, nil)
	}
	descNext = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_task_processed_offset",
			"The offset after the last message the task processed: the next one it processes.", labels, nil)
	}
	descHWM = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_task_high_watermark",
			"The partition's high watermark (upcoming offset) as the consumer last heard it with a fetch response (Samza's high-watermark).", labels, nil)
	}
	descLag = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_task_messages_behind_high_watermark",
			"Messages from the task's next offset up to the high watermark: its lag (Samza's messages-behind-high-watermark).", labels, nil)
	}
	descLastCheckpoint = func(labels []string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_task_last_checkpoint_timestamp_seconds",
			"When the task's latest checkpoint was written, in seconds since the epoch.", labels, nil)
	}
	descRunning = prometheus.NewDesc(namespace+"_container_running", "1 while the container processes (start-up over, not stopping), else 0.", nil, nil)
	descTasks   = prometheus.NewDesc(namespace+"_container_tasks", "Tasks the container runs.", nil, nil)
	descMsgs    = prometheus.NewDesc(namespace+"_messages_processed_total", "Messages the container processed.", nil, nil)
	descWrites  = prometheus.NewDesc(namespace+"_checkpoint_writes_total", "Checkpoints the container wrote.", nil, nil)
	descListen  = prometheus.NewDesc(namespace+"_checkpoint_listener_errors_total", "Failures of consumers' checkpoint listeners (the checkpoint stands).", nil, nil)
	descResets  = prometheus.NewDesc(namespace+"_out_of_range_resets_total", "Times a partition's next offset no longer existed and reading moved per auto.offset.reset.", nil, nil)
	descSkipped = prometheus.NewDesc(namespace+"_out_of_range_skipped_messages_total", "Messages those moves skipped.", nil, nil)
	descIgnored = prometheus.NewDesc(namespace+"_ignored_errors_total", "Messages set aside because their processing failed with an error of task.ignored.exceptions.", nil, nil)
)

func (p progressCollector) Describe(ch chan<- *prometheus.Desc) {
	m := p.m
	ssp, tl := m.sspLabels(), m.taskLabels()
	if !m.opts.DropPartitionLabels {
		ch <- descCheckpointed(ssp)
		ch <- descNext(ssp)
		ch <- descHWM(ssp)
		ch <- descLastCheckpoint(tl)
	}
	ch <- descLag(ssp)
	for _, d := range []*prometheus.Desc{descRunning, descTasks, descMsgs, descWrites, descListen, descResets, descSkipped, descIgnored} {
		ch <- d
	}
}

func (p progressCollector) Collect(ch chan<- prometheus.Metric) {
	m := p.m
	src := m.source()
	if src == nil {
		return
	}
	pr := src.Progress()
	st := src.Stats()
	running := 0.0
	if pr.Running {
		running = 1
	}
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, running)
	ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(len(pr.Tasks)))
	ch <- prometheus.MustNewConstMetric(descMsgs, prometheus.CounterValue, float64(st.Processed))
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(st.CheckpointWrites))
	ch <- prometheus.MustNewConstMetric(descListen, prometheus.CounterValue, float64(st.ListenerErrors))
	ch <- prometheus.MustNewConstMetric(descResets, prometheus.CounterValue, float64(st.OutOfRangeResets))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.MessagesSkipped))
	ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.CounterValue, float64(st.IgnoredErrors))

	ssp := m.sspLabels()
	lag := descLag(ssp)
	if m.opts.DropPartitionLabels {
		sums := map[system.SystemStream]float64{}
		for _, tp := range pr.Tasks {
			for _, pp := range tp.Partitions {
				if pp.Lag >= 0 {
					sums[pp.SSP.SystemStream] += float64(pp.Lag)
				}
			}
		}
		for ss, v := range sums {
			ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, v, ss.System, ss.Stream)
		}
		return
	}
	cpd, next, hwm, last := descCheckpointed(ssp), descNext(ssp), descHWM(ssp), descLastCheckpoint(m.taskLabels())
	for _, tp := range pr.Tasks {
		if !tp.LastCheckpoint.IsZero() {
			ch <- prometheus.MustNewConstMetric(last, prometheus.GaugeValue, float64(tp.LastCheckpoint.UnixNano())/1e9, tp.Task)
		}
		for _, pp := range tp.Partitions {
			lv := m.sspValues(tp.Task, pp.SSP)
			if v, ok := number(pp.Checkpointed); ok {
				ch <- prometheus.MustNewConstMetric(cpd, prometheus.GaugeValue, v, lv...)
			}
			if v, ok := number(pp.Next); ok {
				ch <- prometheus.MustNewConstMetric(next, prometheus.GaugeValue, v, lv...)
			}
			if v, ok := number(pp.HighWatermark); ok {
				ch <- prometheus.MustNewConstMetric(hwm, prometheus.GaugeValue, v, lv...)
			}
			if pp.Lag >= 0 {
				ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, float64(pp.Lag), lv...)
			}
		}
	}
}

// number parses a numeric offset (Kafka's, inmem's); other systems' offsets have no
// gauge.
func number(off string) (float64, bool) {
	n, err := strconv.ParseInt(off, 10, 64)
	return float64(n), err == nil
}
