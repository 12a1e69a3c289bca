// Package builtin holds the tasks the sluice binary ships, so a job can run with no user
// code: passthrough copies its inputs to an output stream, pageview-counter counts
// page views from JSON events and emits the counts on a timer, and page-enricher joins
// page views with a table of page titles read from a (bootstrap) stream.
package builtin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// Configuration keys of the built-in tasks.
const (
	KeyPassthroughOutput = "task.passthrough.output"
	KeyPageViewOutput    = "task.pageview-counter.output"
	KeyEnricherOutput    = "task.page-enricher.output"
	KeyEnricherPages     = "task.page-enricher.pages"
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
		"page-enricher": {
			New:     newPageEnricher,
			Keys:    []string{KeyEnricherOutput, KeyEnricherPages},
			Outputs: outputs(KeyEnricherOutput),
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
	return stream(cfg, key, "the output stream")
}

// stream reads key, a stream named as system.stream; what says what it is for.
func stream(cfg config.Config, key, what string) (system.SystemStream, error) {
	v := cfg.GetOr(key, "")
	if v == "" {
		return system.SystemStream{}, &config.Error{Key: key, Msg: "is required: " + what + ", as system.stream"}
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

// EnrichedPageView is the message page-enricher emits for every page view: the view
// with the title its page had in the pages table when the view was processed (none
// when the table had no row for the page).
type EnrichedPageView struct {
	Page  string `json:"page"`
	User  string `json:"user,omitempty"`
	Title string `json:"title,omitempty"`
}

// PageEnricher joins page views with a table of pages. The table is a stream (named by
// task.page-enricher.pages, also one of the job's inputs) whose messages are rows: the
// key is the page, the message its title, and an empty message deletes the row. Every
// other input holds page-view JSON events; each is sent to task.page-enricher.output,
// to the same partition, with its page's title. The table lives in memory, so its
// stream is a bootstrap stream read from its oldest offset on every start
// (samza.bootstrap=true, samza.reset.offset=true, samza.offset.default=oldest): then no
// view is enriched before the table is loaded. The table and the views must be
// partitioned alike (by page), since each task sees one partition of each.
type PageEnricher struct {
	out, pages system.SystemStream
	titles     map[string]string
}

func newPageEnricher(_ string, cfg config.Config) (task.StreamTask, error) {
	out, err := output(cfg, KeyEnricherOutput)
	if err != nil {
		return nil, err
	}
	pages, err := stream(cfg, KeyEnricherPages, "the input stream of the pages table")
	if err != nil {
		return nil, err
	}
	if !slices.Contains(strings.Split(strings.ReplaceAll(cfg.GetOr("task.inputs", ""), " ", ""), ","), pages.String()) {
		return nil, &config.Error{Key: KeyEnricherPages, Value: pages.String(), Msg: "is not one of task.inputs: the task reads the table from its input"}
	}
	return &PageEnricher{out: out, pages: pages, titles: map[string]string{}}, nil
}

// Process implements task.StreamTask. A page view that is not JSON is an error
// (task.Skippable, as for pageview-counter).
func (e *PageEnricher) Process(ctx context.Context, env system.IncomingEnvelope, out task.Collector, _ task.Coordinator) error {
	if env.SSP.SystemStream == e.pages {
		if len(env.Message) == 0 {
			delete(e.titles, string(env.Key))
		} else {
			e.titles[string(env.Key)] = string(env.Message)
		}
		return nil
	}
	var pv PageView
	if err := json.Unmarshal(env.Message, &pv); err != nil {
		return task.Skippable(fmt.Errorf("not a page-view JSON event (%s): %w", clip(env.Message), err))
	}
	b, err := json.Marshal(EnrichedPageView{Page: pv.Page, User: pv.User, Title: e.titles[pv.Page]})
	if err != nil {
		return err
	}
	return out.Send(ctx, system.OutgoingEnvelope{Stream: e.out, Partition: env.SSP.Partition, Key: env.Key, Message: b, Timestamp: env.Timestamp})
}

func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
