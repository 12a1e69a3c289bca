package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/builtin"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

func run(t *testing.T, store *inmem.Store, kv ...string) error {
	t.Helper()
	m := map[string]string{
		"job.name": "b", "task.inputs": "mem.in", "systems.mem.samza.factory": "inmem",
		"systems.mem.samza.offset.default": "oldest",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	c, err := container.New(config.New(m), container.Options{ExitWhenCaughtUp: true, Tasks: builtin.Tasks(),
		Systems: map[string]system.Factory{"inmem": store.Factory()}})
	if err != nil {
		return err
	}
	return c.Run(context.Background())
}

func TestPassthroughKeepsKeyValueAndPartition(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("in", 3)
	s.CreateStream("out", 3)
	for p := range int32(3) {
		s.Append("in", p, []byte(fmt.Sprint("k", p)), []byte(fmt.Sprint("v", p)))
	}
	if err := run(t, s, "task.class", "passthrough", "task.passthrough.output", "mem.out"); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		msgs, _ := s.Messages("out", p)
		if len(msgs) != 1 || string(msgs[0].Key) != fmt.Sprint("k", p) || string(msgs[0].Value) != fmt.Sprint("v", p) {
			t.Errorf("out partition %d = %+v", p, msgs)
		}
	}
}

func TestPassthroughNeedsOutput(t *testing.T) {
	err := run(t, inmem.NewStore(), "task.class", "passthrough")
	if err == nil || !strings.Contains(err.Error(), "task.passthrough.output") {
		t.Errorf("error = %v", err)
	}
}

func TestPageViewCounterCountsAndRejectsBadEvents(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("in", 1)
	s.CreateStream("counts", 1)
	for _, page := range []string{"/a", "/b", "/a"} {
		s.Append("in", 0, nil, []byte(`{"page":"`+page+`","user":"u"}`))
	}
	// The window fires while the job is still running; with exit-when-caught-up the job
	// may stop first, so run it with a short window and shut down on a vote instead.
	def := builtin.Tasks()["pageview-counter"]
	tk, err := def.New("Partition 0", config.New(map[string]string{builtin.KeyPageViewOutput: "mem.counts"}))
	if err != nil {
		t.Fatal(err)
	}
	pvc := tk.(*builtin.PageViewCounter)
	sys, _ := s.Factory()("mem", config.Config{}, nil)
	p, _ := sys.NewProducer()
	for i, m := range mustMessages(t, s, "in") {
		if err := pvc.Process(context.Background(), system.IncomingEnvelope{SSP: system.NewSSP("mem", "in", 0), Offset: fmt.Sprint(i), Message: m}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pvc.Window(context.Background(), collector{p}, nil); err != nil {
		t.Fatal(err)
	}
	out, _ := s.Messages("counts", 0)
	got := map[string]int64{}
	for _, m := range out {
		var pc builtin.PageCount
		if err := json.Unmarshal(m.Value, &pc); err != nil {
			t.Fatal(err)
		}
		got[pc.Page] = pc.Count
	}
	if len(got) != 2 || got["/a"] != 2 || got["/b"] != 1 {
		t.Errorf("counts = %v", got)
	}
	err = pvc.Process(context.Background(), system.IncomingEnvelope{Message: []byte("not json")}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not a page-view") {
		t.Errorf("bad event error = %v", err)
	}
}

type collector struct{ p system.Producer }

func (c collector) Send(ctx context.Context, env system.OutgoingEnvelope) error {
	return c.p.Send(ctx, env)
}

func mustMessages(t *testing.T, s *inmem.Store, stream string) [][]byte {
	msgs, err := s.Messages(stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.Value)
	}
	return out
}

func TestPageEnricherJoinsViewsWithTheTable(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("in", 1)
	s.CreateStream("pages", 1)
	s.CreateStream("out", 1)
	s.Append("pages", 0, []byte("/a"), []byte("A"))
	s.Append("pages", 0, []byte("/b"), []byte("B"))
	s.Append("pages", 0, []byte("/b"), nil) // deletes the row of /b
	for _, p := range []string{"/a", "/b"} {
		s.Append("in", 0, []byte(p), []byte(`{"page":"`+p+`","user":"u"}`))
	}
	err := run(t, s, "task.class", "page-enricher", "task.inputs", "mem.in,mem.pages", "task.page-enricher.pages", "mem.pages",
		"task.page-enricher.output", "mem.out", "systems.mem.streams.pages.samza.bootstrap", "true")
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := s.Messages("out", 0)
	var got []string
	for _, m := range msgs {
		var v builtin.EnrichedPageView
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v.Page+"="+v.Title)
	}
	if want := "/a=A /b="; strings.Join(got, " ") != want {
		t.Errorf("enriched %q, want %q", strings.Join(got, " "), want)
	}
}

func TestPageEnricherNeedsItsTableAmongTheInputs(t *testing.T) {
	s := inmem.NewStore()
	s.CreateStream("in", 1)
	s.CreateStream("out", 1)
	err := run(t, s, "task.class", "page-enricher", "task.page-enricher.pages", "mem.pages", "task.page-enricher.output", "mem.out")
	if err == nil || !strings.Contains(err.Error(), "task.page-enricher.pages") || !strings.Contains(err.Error(), "not one of task.inputs") {
		t.Errorf("error = %v", err)
	}
}
