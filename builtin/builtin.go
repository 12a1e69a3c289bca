// Package builtin holds the tasks the sluice binary ships, so a job can run with no user
// code: passthrough copies its inputs to an output stream, and pageview-counter counts
// page views from JSON events and emits the counts on a timer.
package builtin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// Configuration keys of the built-in tasks.
const (
	KeyPassthroughOutput = "task.passthrough.output"
	KeyPageViewOutput    = "task.pageview-counter.output"
)

// Tasks returns the built-in task definitions by task.class name.
func Tasks() map[string]task.Definition {
	return map[string]task.Definition{
		"passthrough": {
			New:     newPassthrough,
			Keys:    []string{KeyPassthroughOutput},
			Outputs: outputs(KeyPassthroughOutput),
		},
		"pageview-counter": {
			New:           newPageViewCounter,
			Keys:          []string{KeyPageViewOutput},
			Outputs:       outputs(KeyPageViewOutput),
			WindowDefault: 10 * time.Second,
		},
	}
}

// outputs returns the Outputs of a task whose one output is named by key.
func outputs(key string) func(config.Config) ([]system.SystemStream, error) {
	return func(cfg config.Config) ([]system.SystemStream, error) {
		ss, err := output(cfg, key)
		if err != nil {
			return nil, err
		}
		return []system.SystemStream{ss}, nil
	}
}

func output(cfg config.Config, key string) (system.SystemStream, error) {
	v := cfg.GetOr(key, "")
	if v == "" {
		return system.SystemStream{}, &config.Error{Key: key, Msg: "is required: the output stream, as system.stream"}
	}
	ss, err := system.ParseSystemStream(v)
	if err != nil {
		return system.SystemStream{}, &config.Error{Key: key, Value: v, Msg: err.Error()}
	}
	return ss, nil
}

// Passthrough sends every message unchanged (key, value, headers and timestamp) to
// the same partition number of its output stream.
type Passthrough struct {
	out system.SystemStream
}

func newPassthrough(_ string, cfg config.Config) (task.StreamTask, error) {
	out, err := output(cfg, KeyPassthroughOutput)
	if err != nil {
		return nil, err
	}
	return &Passthrough{out: out}, nil
}

// Process implements task.StreamTask.
func (p *Passthrough) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	return out.Send(ctx, system.OutgoingEnvelope{Stream: p.out, Partition: env.SSP.Partition,
		Key: env.Key, Message: env.Message, Headers: env.Headers, Timestamp: env.Timestamp})
}

// PageView is the event pageview-counter reads.
type PageView struct {
	Page string `json:"page"`
	User string `json:"user,omitempty"`
}

// PageCount is the message pageview-counter emits per page at every window.
type PageCount struct {
	Page  string    `json:"page"`
	Count int64     `json:"count"`
	At    time.Time `json:"at"`
}

// PageViewCounter counts page views per page in memory and emits every page's count
// every task.window.ms. Its counts live only in memory, so its jobs replay their input
// from the oldest offset on every start (samza.reset.offset=true with
// samza.offset.default=oldest).
type PageViewCounter struct {
	out       system.SystemStream
	partition int32
	counts    map[string]int64
	changed   bool
}

func newPageViewCounter(name string, cfg config.Config) (task.StreamTask, error) {
	out, err := output(cfg, KeyPageViewOutput)
	if err != nil {
		return nil, err
	}
	var p int32
	if _, err := fmt.Sscanf(name, "Partition %d", &p); err != nil {
		return nil, fmt.Errorf("pageview-counter: unexpected task name %q", name)
	}
	return &PageViewCounter{out: out, partition: p, counts: map[string]int64{}}, nil
}

// Process implements task.StreamTask. A message that is not a page-view event is an
// error: the job stops there rather than count wrongly, unless the job skips such
// messages (the error is task.Skippable, so task.ignored.exceptions=skippable does).
func (c *PageViewCounter) Process(_ context.Context, env system.IncomingEnvelope, _ task.Collector, _ task.Coordinator) error {
	var pv PageView
	if err := json.Unmarshal(env.Message, &pv); err != nil {
		return task.Skippable(fmt.Errorf("not a page-view JSON event (%s): %w", clip(env.Message), err))
	}
	if pv.Page == "" {
		return task.Skippable(fmt.Errorf("page-view event has no \"page\" field: %s", clip(env.Message)))
	}
	c.counts[pv.Page]++
	c.changed = true
	return nil
}

// Window implements task.WindowableTask: it emits the count of every page, in page order.
func (c *PageViewCounter) Window(ctx context.Context, out task.Collector, _ task.Coordinator) error {
	if !c.changed {
		return nil
	}
	c.changed = false
	now := time.Now().UTC()
	pages := slices.SortedFunc(maps.Keys(c.counts), cmp.Compare[string])
	for _, page := range pages {
		b, err := json.Marshal(PageCount{Page: page, Count: c.counts[page], At: now})
		if err != nil {
			return err
		}
		if err := out.Send(ctx, system.OutgoingEnvelope{Stream: c.out, Partition: c.partition, Key: []byte(page), Message: b}); err != nil {
			return err
		}
	}
	return nil
}

// Counts returns a copy of the counts so far.
func (c *PageViewCounter) Counts() map[string]int64 { return maps.Clone(c.counts) }

func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
