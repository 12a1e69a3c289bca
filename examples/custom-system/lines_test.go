package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

func newSys(t *testing.T, dir string) (*linesSystem, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := newLinesSystem("lines", config.New(map[string]string{"systems.lines.dir": dir}), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s.(*linesSystem), &logs
}

func TestLinesSystemNeedsADirectory(t *testing.T) {
	_, err := newLinesSystem("files", config.New(nil), nil)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "systems.files.dir" {
		t.Errorf("err = %v, want a *config.Error naming systems.files.dir", err)
	}
	s, err := newLinesSystem("files", config.New(map[string]string{"systems.files.dir": filepath.Join(t.TempDir(), "none")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "systems.files.dir") {
		t.Errorf("Start over a missing directory: %v, want an error naming the key", err)
	}
}

func TestLinesAdmin(t *testing.T) {
	dir := lineDir(t, map[string][]string{"words": {"a\nb\nc", "", "x\n"}, "gap": {"a\n"}})
	writeFile(t, filepath.Join(dir, "gap", "2.txt"), "")
	s, _ := newSys(t, dir)
	md, err := s.Admin().Partitions(t.Context(), "words")
	if err != nil {
		t.Fatal(err)
	}
	want := map[system.SystemStreamPartition]system.PartitionMetadata{
		system.NewSSP("lines", "words", 0): {Oldest: "0", Newest: "1", Upcoming: "2"}, // "c" is not complete
		system.NewSSP("lines", "words", 1): {Oldest: "0", Upcoming: "0"},
		system.NewSSP("lines", "words", 2): {Oldest: "0", Newest: "0", Upcoming: "1"},
	}
	if len(md) != len(want) {
		t.Errorf("Partitions = %v, want %v", md, want)
	}
	for ssp, w := range want {
		if md[ssp] != w {
			t.Errorf("%s: %+v, want %+v", ssp, md[ssp], w)
		}
	}
	if _, err := s.Admin().Partitions(t.Context(), "nothing"); err == nil {
		t.Error("Partitions of a stream that does not exist: no error")
	}
	if _, err := s.Admin().Partitions(t.Context(), "gap"); err == nil || !strings.Contains(err.Error(), "1.txt is missing") {
		t.Errorf("Partitions of a stream with a gap: %v, want the missing file named", err)
	}

	a := s.Admin()
	if c, err := a.CompareOffsets("9", "10"); err != nil || c != -1 {
		t.Errorf("CompareOffsets(9, 10) = %d, %v; want -1 (numbers, not strings)", c, err)
	}
	if c, err := a.CompareOffsets("3", "3"); err != nil || c != 0 {
		t.Errorf("CompareOffsets(3, 3) = %d, %v", c, err)
	}
	if o, err := a.OffsetAfter("9"); err != nil || o != "10" {
		t.Errorf("OffsetAfter(9) = %q, %v", o, err)
	}
	if d, err := a.Distance("2", "10"); err != nil || d != 8 {
		t.Errorf("Distance(2, 10) = %d, %v", d, err)
	}
	for _, bad := range []string{"", "-1", "01", "x", "1.5"} {
		if _, err := a.OffsetAfter(bad); err == nil {
			t.Errorf("OffsetAfter(%q): no error", bad)
		}
		if _, err := a.CompareOffsets(bad, "0"); err == nil {
			t.Errorf("CompareOffsets(%q, 0): no error", bad)
		}
	}
}

// pollNow polls once with a cancelled context: one pass over the files.
func pollNow(t *testing.T, c system.Consumer) []system.IncomingEnvelope {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	envs, err := c.Poll(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll: %v", err)
	}
	return envs
}

func lines(envs []system.IncomingEnvelope) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.SSP.String()+"@"+e.Offset+"="+string(e.Message))
	}
	return out
}

func TestLinesConsumerReadsCompleteLinesInOrderFromItsOffsets(t *testing.T) {
	dir := lineDir(t, map[string][]string{"words": {"a\nb\nc\n", "x\ny"}})
	s, _ := newSys(t, dir)
	c, _ := s.NewConsumer()
	defer c.Close()
	if _, err := c.Poll(t.Context()); err == nil {
		t.Error("Poll before Start: no error")
	}
	p0, p1 := system.NewSSP("lines", "words", 0), system.NewSSP("lines", "words", 1)
	if err := c.Register(p0, "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(p1, "0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(p1, "0"); err == nil {
		t.Error("Register of a partition registered already: no error")
	}
	if err := c.Register(system.NewSSP("lines", "words", 2), "01"); err == nil {
		t.Error("Register at a bad offset: no error")
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(system.NewSSP("lines", "words", 2), "0"); err == nil {
		t.Error("Register after Start: no error")
	}
	got := lines(pollNow(t, c))
	want := []string{"lines.words#0@1=b", "lines.words#0@2=c", "lines.words#1@0=x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Poll = %v, want %v (y is not complete)", got, want)
	}
	// The line being written is read once complete, in one piece.
	appendFile(t, filepath.Join(dir, "words", "1.txt"), "es\nz")
	if got := lines(pollNow(t, c)); strings.Join(got, " ") != "lines.words#1@1=yes" {
		t.Errorf("Poll after the line was completed = %v, want yes at offset 1", got)
	}
	// A waiting Poll returns the next line once it is there.
	done := make(chan []system.IncomingEnvelope)
	go func() {
		envs, err := c.Poll(t.Context())
		if err != nil {
			t.Error(err)
		}
		done <- envs
	}()
	appendFile(t, filepath.Join(dir, "words", "1.txt"), "\n")
	select {
	case envs := <-done:
		if got := lines(envs); strings.Join(got, " ") != "lines.words#1@2=z" {
			t.Errorf("waiting Poll = %v, want z at offset 2", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting Poll did not return the line appended")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Poll(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Poll with nothing to read until the context ends: %v, want its error", err)
	}
}

func TestLinesConsumerAddsAndRemovesPartitionsWhileRunning(t *testing.T) {
	dir := lineDir(t, map[string][]string{"words": {"a\n", "x\ny\n"}})
	s, _ := newSys(t, dir)
	c, _ := s.NewConsumer()
	defer c.Close()
	pc := c.(system.PartitionChanger)
	p0, p1 := system.NewSSP("lines", "words", 0), system.NewSSP("lines", "words", 1)
	if err := c.Register(p0, "0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p1: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p1: "0"}); err == nil {
		t.Error("AddPartitions of a partition read already: no error")
	}
	if got := lines(pollNow(t, c)); strings.Join(got, " ") != "lines.words#0@0=a lines.words#1@1=y" {
		t.Errorf("Poll = %v", got)
	}
	if err := pc.RemovePartitions(p0, system.NewSSP("lines", "words", 7)); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "words", "0.txt"), "b\n")
	appendFile(t, filepath.Join(dir, "words", "1.txt"), "z\n")
	if got := lines(pollNow(t, c)); strings.Join(got, " ") != "lines.words#1@2=z" {
		t.Errorf("Poll after removing partition 0 = %v, want only partition 1's line", got)
	}
	// Added again, at any offset.
	if err := pc.AddPartitions(map[system.SystemStreamPartition]string{p0: "0"}); err != nil {
		t.Fatal(err)
	}
	if got := lines(pollNow(t, c)); strings.Join(got, " ") != "lines.words#0@0=a lines.words#0@1=b" {
		t.Errorf("Poll after adding partition 0 again = %v", got)
	}
}

func send(t *testing.T, p system.Producer, partition int32, msg string) {
	t.Helper()
	if err := p.Send(t.Context(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "lines", Stream: "out"}, Partition: partition, Message: []byte(msg)}); err != nil {
		t.Fatal(err)
	}
}

func TestLinesProducerWritesAtFlushOnlyItsOwnLines(t *testing.T) {
	dir := lineDir(t, map[string][]string{"out": {"", ""}})
	s, _ := newSys(t, dir)
	p, _ := s.NewProducer()
	q, _ := s.NewProducer()
	send(t, p, 0, "p0")
	send(t, p, 1, "p1")
	send(t, q, 0, "q0")
	out := func(n string) string { return readFile(t, filepath.Join(dir, "out", n+".txt")) }
	if out("0") != "" {
		t.Errorf("a line was written before Flush: %q", out("0"))
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out("0") != "p0\n" || out("1") != "p1\n" {
		t.Errorf("after p's Flush: %q, %q; want p's lines only", out("0"), out("1"))
	}
	if err := q.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out("0") != "p0\nq0\n" {
		t.Errorf("after q's Flush: %q", out("0"))
	}
	// Close drops what was not flushed.
	send(t, q, 0, "dropped")
	q.Close()
	if err := q.Send(t.Context(), system.OutgoingEnvelope{Stream: system.SystemStream{System: "lines", Stream: "out"}, Message: []byte("x")}); err == nil {
		t.Error("Send after Close: no error")
	}
	if out("0") != "p0\nq0\n" {
		t.Errorf("after Close: %q", out("0"))
	}
}

func TestLinesProducerFailureIsSticky(t *testing.T) {
	dir := lineDir(t, map[string][]string{"out": {"kept\n"}})
	s, _ := newSys(t, dir)
	p, _ := s.NewProducer()
	send(t, p, 0, "lost")
	path := filepath.Join(dir, "out", "0.txt")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(t.Context()); err == nil {
		t.Fatal("Flush to a removed partition file: no error")
	}
	writeFile(t, path, "")
	send(t, p, 0, "after")
	if err := p.Flush(t.Context()); err == nil {
		t.Error("Flush after a failed one: no error, though a line was lost")
	}
	if got := readFile(t, path); got != "" {
		t.Errorf("the file holds %q after a failed producer's Flush, want nothing", got)
	}
}

func TestLinesProducerRefusesWhatALineCannotHold(t *testing.T) {
	dir := lineDir(t, map[string][]string{"out": {""}})
	s, _ := newSys(t, dir)
	p, _ := s.NewProducer()
	out := system.SystemStream{System: "lines", Stream: "out"}
	for name, env := range map[string]system.OutgoingEnvelope{
		"key":          {Stream: out, Key: []byte("k"), Message: []byte("m")},
		"by key":       {Stream: out, PartitionByKey: true, Message: []byte("m")},
		"headers":      {Stream: out, Headers: []system.Header{{Key: "h"}}, Message: []byte("m")},
		"newline":      {Stream: out, Message: []byte("two\nlines")},
		"no partition": {Stream: out, Partition: 1, Message: []byte("m")},
		"no stream":    {Stream: system.SystemStream{System: "lines", Stream: "none"}, Message: []byte("m")},
		"other system": {Stream: system.SystemStream{System: "kafka", Stream: "out"}, Message: []byte("m")},
	} {
		if err := p.Send(t.Context(), env); err == nil {
			t.Errorf("%s: Send accepted %+v", name, env)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Errorf("Flush after refused Sends: %v (nothing was accepted, nothing lost)", err)
	}
}

func TestLinesAppendCutsALineLeftIncompleteByACrash(t *testing.T) {
	dir := lineDir(t, map[string][]string{"out": {"whole\nhalf a li"}})
	s, logs := newSys(t, dir)
	p, _ := s.NewProducer()
	send(t, p, 0, "next")
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "out", "0.txt")); got != "whole\nnext\n" {
		t.Errorf("file = %q, want the incomplete line cut off and the new one after the whole one", got)
	}
	if !strings.Contains(logs.String(), "cut off an incomplete line") || !strings.Contains(logs.String(), "bytes=9") {
		t.Errorf("no warning of the cut:\n%s", logs.String())
	}
}
