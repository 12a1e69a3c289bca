package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-streams/sluice/container"
)

// Server serves a container's /metrics, /healthz, /readyz and /status over HTTP.
// Create it with Listen, then Run it.
type Server struct {
	opts Options
	m    *Metrics
	src  Source
	job  JobInfo
	ln   net.Listener
	srv  *http.Server

	mu    sync.Mutex
	moved map[string]progressMark // by task: when its next offsets last changed
	now   func() time.Time
}

// JobInfo names the job and container in /status.
type JobInfo struct {
	Job       string `json:"job"`
	JobID     string `json:"job_id"`
	Container string `json:"container,omitempty"`
}

type progressMark struct {
	key string
	at  time.Time
}

// Listen listens on addr (host:port; a loopback address such as 127.0.0.1:9464
// unless the endpoints are meant to be reached from elsewhere) for the endpoints of
// the container src, whose metrics are m.
func Listen(addr string, src Source, m *Metrics, job JobInfo, opts Options) (*Server, error) {
	opts.defaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http endpoint: listen on %s: %w", addr, err)
	}
	s := &Server{opts: opts, m: m, src: src, job: job, ln: ln, moved: map[string]progressMark{}, now: time.Now}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /status", s.status)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, sampling the container's progress every second for
// /readyz's stuck-task check meanwhile.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	tick := time.NewTicker(min(time.Second, s.opts.StallAfter/4))
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("http endpoint: %w", err)
		case <-tick.C:
			s.sample(s.src.Progress())
		case <-ctx.Done():
			return s.Close()
		}
	}
}

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// sample records, per task, when its next offsets last changed, and returns the
// tasks that are behind and made no progress for StallAfter.
func (s *Server) sample(p container.Progress) map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	stuck := map[string]time.Duration{}
	seen := map[string]bool{}
	for _, tp := range p.Tasks {
		seen[tp.Task] = true
		var b strings.Builder
		var lag int64
		for _, pp := range tp.Partitions {
			b.WriteString(pp.Next)
			b.WriteByte(',')
			lag += max(pp.Lag, 0)
		}
		key := b.String()
		mark, ok := s.moved[tp.Task]
		if !ok || mark.key != key || lag == 0 {
			s.moved[tp.Task] = progressMark{key: key, at: now}
			continue
		}
		if d := now.Sub(mark.at); d >= s.opts.StallAfter {
			stuck[tp.Task] = d
		}
	}
	for task := range s.moved {
		if !seen[task] {
			delete(s.moved, task)
		}
	}
	return stuck
}

// healthz answers 200 while the process is alive and its control loop turns.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	p := s.src.Progress()
	if p.Running && !p.LoopTurned.IsZero() {
		if d := s.now().Sub(p.LoopTurned); d > s.opts.WedgedAfter {
			http.Error(w, fmt.Sprintf("wedged: the control loop has not turned for %v\n", d.Round(time.Second)), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 while the container has tasks and consumes: start-up is over, it
// is not stopping, its consumers hear from their brokers, and no task is stuck.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	p := s.src.Progress()
	problems := s.notReady(p)
	if len(problems) > 0 {
		http.Error(w, "not ready:\n  "+strings.Join(problems, "\n  ")+"\n", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ready: %d tasks\n", len(p.Tasks))
}

func (s *Server) notReady(p container.Progress) []string {
	var problems []string
	switch {
	case p.Stopping:
		problems = append(problems, "the container is stopping")
	case !p.Running:
		problems = append(problems, "the container is starting")
	case p.Group && !p.Assigned:
		problems = append(problems, "the job's task group has not assigned tasks to this container yet")
	case len(p.Tasks) == 0:
		problems = append(problems, "the container has no tasks")
	}
	if p.Running {
		now := s.now()
		for _, sys := range slices.Sorted(maps.Keys(p.Consumers)) {
			at := p.Consumers[sys]
			switch {
			case at.IsZero() && p.Start != nil && now.Sub(p.Start.At) < s.opts.ContactAfter:
				// not connected yet
			case at.IsZero():
				problems = append(problems, fmt.Sprintf("the consumer of system %s has had no answer from its brokers", sys))
			case now.Sub(at) > s.opts.ContactAfter:
				problems = append(problems, fmt.Sprintf("the consumer of system %s has had no answer from its brokers for %v", sys, now.Sub(at).Round(time.Second)))
			}
		}
	}
	stuck := s.sample(p)
	for _, task := range slices.Sorted(maps.Keys(stuck)) {
		problems = append(problems, fmt.Sprintf("task %s is behind and has processed nothing for %v", task, stuck[task].Round(time.Second)))
	}
	return problems
}

// StatusJSON is what /status answers.
type StatusJSON struct {
	JobInfo
	Running  bool `json:"running"`
	Stopping bool `json:"stopping"`
	Ready    bool `json:"ready"`
	// NotReady says why the container is not ready.
	NotReady       []string     `json:"not_ready,omitempty"`
	StartupSeconds float64      `json:"startup_seconds,omitempty"`
	LagTotal       int64        `json:"lag_total"`
	Tasks          []TaskStatus `json:"tasks"`
}

// TaskStatus is one task in StatusJSON.
type TaskStatus struct {
	Task string `json:"task"`
	// LastCheckpoint is when its latest checkpoint was written (RFC 3339), and
	// CheckpointAgeSeconds how long ago; absent when unknown.
	LastCheckpoint       *time.Time        `json:"last_checkpoint,omitempty"`
	CheckpointAgeSeconds *float64          `json:"checkpoint_age_seconds,omitempty"`
	Lag                  int64             `json:"lag"`
	Bootstrapping        bool              `json:"bootstrapping,omitempty"`
	Partitions           []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one input partition of a task in StatusJSON. Offsets are the
// next offsets to read, as in checkpoints; Lag is -1 when unknown.
type PartitionStatus struct {
	System        string `json:"system"`
	Stream        string `json:"stream"`
	Partition     int32  `json:"partition"`
	Checkpointed  string `json:"checkpointed_offset,omitempty"`
	Next          string `json:"processed_offset"`
	HighWatermark string `json:"high_watermark,omitempty"`
	Lag           int64  `json:"lag"`
}

// Status returns what /status answers.
func (s *Server) Status() StatusJSON {
	p := s.src.Progress()
	problems := s.notReady(p)
	out := StatusJSON{JobInfo: s.job, Running: p.Running, Stopping: p.Stopping, Ready: len(problems) == 0, NotReady: problems, Tasks: []TaskStatus{}}
	if p.Start != nil {
		out.StartupSeconds = p.Start.Duration.Seconds()
	}
	now := s.now()
	for _, tp := range p.Tasks {
		ts := TaskStatus{Task: tp.Task, Bootstrapping: tp.Bootstrapping, Partitions: []PartitionStatus{}}
		if !tp.LastCheckpoint.IsZero() {
			at := tp.LastCheckpoint.UTC()
			age := now.Sub(at).Seconds()
			ts.LastCheckpoint, ts.CheckpointAgeSeconds = &at, &age
		}
		for _, pp := range tp.Partitions {
			ts.Partitions = append(ts.Partitions, PartitionStatus{System: pp.SSP.System, Stream: pp.SSP.Stream, Partition: pp.SSP.Partition,
				Checkpointed: pp.Checkpointed, Next: pp.Next, HighWatermark: pp.HighWatermark, Lag: pp.Lag})
			ts.Lag += max(pp.Lag, 0)
		}
		out.LagTotal += ts.Lag
		out.Tasks = append(out.Tasks, ts)
	}
	return out
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Status())
}
