package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// The lines system keeps each stream as a directory of text files, one per partition,
// and each message as one line:
//
//	systems.<name>.samza.factory=lines   (or com.example.samza.LinesSystemFactory)
//	systems.<name>.dir=DIR               required
//
// Partition N of stream S is the file DIR/S/N.txt, for N = 0, 1, ...; the offset of
// a line is its number in the file, counting from 0. Only complete lines (ending in
// a newline) are messages: a line still being written is read once it is complete.
// Input files are append-only: a line, once there, must not change.
//
// A producer keeps the lines a task sends until Flush, which appends them to their
// partition files and syncs them to disk before it returns, so a checkpoint only
// ever covers lines that are on disk. A line carries only a message: a key, headers
// or a newline in the message cannot be written, and Send refuses them.
type linesSystem struct {
	name string
	dir  string
	log  *slog.Logger

	// appendMu serialises the appends of the system's producers, so that the lines
	// of one Flush stay together and a failed append can be undone.
	appendMu sync.Mutex
}

// keyDir is the system's one key, under systems.<name>.
const keyDir = "dir"

var (
	_ system.System           = (*linesSystem)(nil)
	_ system.PartitionChanger = (*linesConsumer)(nil)
)

// newLinesSystem is the lines system's system.Factory: it checks the keys and
// touches nothing.
func newLinesSystem(name string, cfg config.Config, log *slog.Logger) (system.System, error) {
	key := "systems." + name + "." + keyDir
	dir := strings.TrimSpace(cfg.GetOr(key, ""))
	if dir == "" {
		return nil, &config.Error{Key: key, Msg: "is required: the directory of the system's streams (DIR/<stream>/<partition>.txt)"}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &linesSystem{name: name, dir: dir, log: log.With("system", name)}, nil
}

// Start checks that the directory exists.
func (s *linesSystem) Start(context.Context) error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("lines system %q: systems.%s.%s: %w", s.name, s.name, keyDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lines system %q: systems.%s.%s=%s is not a directory", s.name, s.name, keyDir, s.dir)
	}
	return nil
}

// ValidateStreamName refuses stream names that are not one directory name, so that a
// bad name is a configuration error before anything runs.
func (s *linesSystem) ValidateStreamName(stream string) error {
	if stream == "." || stream == ".." || strings.ContainsAny(stream, `/\`+"\x00") {
		return fmt.Errorf("a lines stream is a directory: %q is not a directory name", stream)
	}
	return nil
}

func (s *linesSystem) Admin() system.Admin { return linesAdmin{s} }

func (s *linesSystem) NewConsumer() (system.Consumer, error) {
	return &linesConsumer{s: s, parts: map[system.SystemStreamPartition]*lineReader{}, changed: make(chan struct{})}, nil
}

func (s *linesSystem) NewProducer() (system.Producer, error) {
	return &linesProducer{s: s, pending: map[string][]byte{}, counts: map[string]int32{}}, nil
}

// Close has nothing to release: consumers and producers close their own files.
func (s *linesSystem) Close() error { return nil }

func (s *linesSystem) path(stream string, partition int32) string {
	return filepath.Join(s.dir, stream, strconv.Itoa(int(partition))+".txt")
}

// partitions returns how many partition files stream has: 0.txt to (n-1).txt, with
// no gap.
func (s *linesSystem) partitions(stream string) (int32, error) {
	dir := filepath.Join(s.dir, stream)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("lines system %q: stream %q: %w", s.name, stream, err)
	}
	found := map[int]bool{}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".txt"))
		if err == nil && n >= 0 && e.Name() == strconv.Itoa(n)+".txt" && e.Type().IsRegular() {
			found[n] = true
		}
	}
	if len(found) == 0 {
		return 0, fmt.Errorf("lines system %q: stream %q: %s holds no partition file (0.txt, 1.txt, ...)", s.name, stream, dir)
	}
	for n := range len(found) {
		if !found[n] {
			return 0, fmt.Errorf("lines system %q: stream %q: %s is missing, but %d.txt exists", s.name, stream, s.path(stream, int32(n)), slices.Max(slices.Collect(maps.Keys(found))))
		}
	}
	return int32(len(found)), nil
}

// countLines returns the number of complete lines of the file at path.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return 0, err
		}
	}
}

// linesAdmin answers with line numbers: oldest is 0, upcoming the number of complete
// lines.
type linesAdmin struct{ s *linesSystem }

func (a linesAdmin) Partitions(_ context.Context, streams ...string) (map[system.SystemStreamPartition]system.PartitionMetadata, error) {
	out := map[system.SystemStreamPartition]system.PartitionMetadata{}
	for _, stream := range streams {
		n, err := a.s.partitions(stream)
		if err != nil {
			return nil, err
		}
		for p := range n {
			lines, err := countLines(a.s.path(stream, p))
			if err != nil {
				return nil, fmt.Errorf("lines system %q: %w", a.s.name, err)
			}
			md := system.PartitionMetadata{Oldest: "0", Upcoming: strconv.FormatInt(lines, 10)}
			if lines > 0 {
				md.Newest = strconv.FormatInt(lines-1, 10)
			}
			out[system.NewSSP(a.s.name, stream, p)] = md
		}
	}
	return out, nil
}

func parseOffset(off string) (int64, error) {
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != off {
		return 0, fmt.Errorf("lines: offset %q is not a line number (0, 1, 2, ...)", off)
	}
	return n, nil
}

func (linesAdmin) CompareOffsets(a, b string) (int, error) {
	x, err := parseOffset(a)
	if err != nil {
		return 0, err
	}
	y, err := parseOffset(b)
	if err != nil {
		return 0, err
	}
	switch {
	case x < y:
		return -1, nil
	case x > y:
		return 1, nil
	}
	return 0, nil
}

func (linesAdmin) OffsetAfter(off string) (string, error) {
	n, err := parseOffset(off)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(n+1, 10), nil
}

func (linesAdmin) Distance(from, to string) (int64, error) {
	x, err := parseOffset(from)
	if err != nil {
		return 0, err
	}
	y, err := parseOffset(to)
	if err != nil {
		return 0, err
	}
	return y - x, nil
}

// linesConsumer reads its partitions' files as they grow. It implements
// system.PartitionChanger, so the container can give it partitions (new tasks) while
// it runs.
type linesConsumer struct {
	s       *linesSystem
	mu      sync.Mutex
	parts   map[system.SystemStreamPartition]*lineReader
	started bool
	closed  bool
	changed chan struct{} // closed and replaced when partitions are added, to wake Poll
}

// lineReader reads one partition file.
type lineReader struct {
	path    string
	f       *os.File // nil until the consumer starts
	r       *bufio.Reader
	line    int64  // the number of the next complete line in the file
	next    int64  // the offset of the next line to return: lines before it are skipped
	partial []byte // the start of a line not yet complete
}

// pollInterval is how often a Poll with nothing to return looks at the files again.
const pollInterval = 50 * time.Millisecond

// maxPoll bounds the lines one Poll returns per partition.
const maxPoll = 1000

func (c *linesConsumer) Register(ssp system.SystemStreamPartition, offset string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return fmt.Errorf("lines system %q: Register(%s) after Start; use AddPartitions", c.s.name, ssp)
	}
	return c.addLocked(ssp, offset)
}

func (c *linesConsumer) addLocked(ssp system.SystemStreamPartition, offset string) error {
	if ssp.System != c.s.name {
		return fmt.Errorf("lines system %q cannot read %s", c.s.name, ssp)
	}
	if _, ok := c.parts[ssp]; ok {
		return fmt.Errorf("lines system %q: %s is already read", c.s.name, ssp)
	}
	next, err := parseOffset(offset)
	if err != nil {
		return fmt.Errorf("lines system %q: %s: %w", c.s.name, ssp, err)
	}
	lr := &lineReader{path: c.s.path(ssp.Stream, ssp.Partition), next: next}
	if c.started {
		if err := lr.open(); err != nil {
			return fmt.Errorf("lines system %q: %w", c.s.name, err)
		}
	}
	c.parts[ssp] = lr
	return nil
}

func (lr *lineReader) open() error {
	f, err := os.Open(lr.path)
	if err != nil {
		return err
	}
	lr.f, lr.r = f, bufio.NewReaderSize(f, 64<<10)
	return nil
}

func (c *linesConsumer) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("lines system %q: consumer Start after Close", c.s.name)
	case c.started:
		return nil
	}
	for _, ssp := range slices.SortedFunc(maps.Keys(c.parts), system.SystemStreamPartition.Compare) {
		if err := c.parts[ssp].open(); err != nil {
			c.closeFilesLocked()
			return fmt.Errorf("lines system %q: %w", c.s.name, err)
		}
	}
	c.started = true
	return nil
}

// AddPartitions starts reading each partition at its offset.
func (c *linesConsumer) AddPartitions(offsets map[system.SystemStreamPartition]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("lines system %q: AddPartitions after Close", c.s.name)
	}
	for _, ssp := range slices.SortedFunc(maps.Keys(offsets), system.SystemStreamPartition.Compare) {
		if err := c.addLocked(ssp, offsets[ssp]); err != nil {
			return err
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// RemovePartitions stops reading ssps. Poll reads under the same lock, so once this
// returns no Poll returns a line of them.
func (c *linesConsumer) RemovePartitions(ssps ...system.SystemStreamPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ssp := range ssps {
		if lr, ok := c.parts[ssp]; ok {
			if lr.f != nil {
				lr.f.Close()
			}
			delete(c.parts, ssp)
		}
	}
	return nil
}

// Poll returns the complete lines that are there past each partition's position,
// waiting for some when there are none.
func (c *linesConsumer) Poll(ctx context.Context) ([]system.IncomingEnvelope, error) {
	var tick *time.Ticker
	for {
		out, changed, err := c.read()
		if err != nil || len(out) > 0 {
			if tick != nil {
				tick.Stop()
			}
			return out, err
		}
		if tick == nil {
			tick = time.NewTicker(pollInterval)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		case <-changed:
		}
	}
}

func (c *linesConsumer) read() ([]system.IncomingEnvelope, <-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, nil, fmt.Errorf("lines system %q: Poll after Close", c.s.name)
	case !c.started:
		return nil, nil, fmt.Errorf("lines system %q: Poll before Start", c.s.name)
	}
	var out []system.IncomingEnvelope
	for _, ssp := range slices.SortedFunc(maps.Keys(c.parts), system.SystemStreamPartition.Compare) {
		var err error
		if out, err = c.parts[ssp].read(ssp, out); err != nil {
			return nil, nil, fmt.Errorf("lines system %q: %s: %w", c.s.name, ssp, err)
		}
	}
	return out, c.changed, nil
}

// read appends to out the complete lines from the reader's position on, up to
// maxPoll of them.
func (lr *lineReader) read(ssp system.SystemStreamPartition, out []system.IncomingEnvelope) ([]system.IncomingEnvelope, error) {
	for n := 0; n < maxPoll; {
		b, err := lr.r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			// The file ends in the middle of a line (or at a line's end): keep what
			// there is of it until the rest is written.
			lr.partial = append(lr.partial, b...)
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(lr.partial) > 0 {
			b = append(lr.partial, b...)
			lr.partial = nil
		}
		line := lr.line
		lr.line++
		if line < lr.next {
			continue // before the offset the partition was registered at
		}
		lr.next = lr.line
		out = append(out, system.IncomingEnvelope{SSP: ssp, Offset: strconv.FormatInt(line, 10), Message: b[:len(b)-1]})
		n++
	}
	return out, nil
}

func (c *linesConsumer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.closeFilesLocked()
	return nil
}

func (c *linesConsumer) closeFilesLocked() {
	for _, lr := range c.parts {
		if lr.f != nil {
			lr.f.Close()
			lr.f = nil
		}
	}
}

// linesProducer keeps the lines of one task until Flush appends them.
type linesProducer struct {
	s       *linesSystem
	mu      sync.Mutex
	pending map[string][]byte // by partition file: the lines not yet appended
	counts  map[string]int32  // partition counts of the streams sent to
	failed  error             // the first failed append: every later Flush returns it
	closed  bool
}

func (p *linesProducer) Send(_ context.Context, env system.OutgoingEnvelope) error {
	switch {
	case env.Stream.System != p.s.name:
		return fmt.Errorf("lines system %q cannot send to %s", p.s.name, env.Stream)
	case len(env.Key) > 0 || env.PartitionByKey:
		return fmt.Errorf("lines system %q: %s: a line has no key; send to a partition number", p.s.name, env.Stream)
	case len(env.Headers) > 0:
		return fmt.Errorf("lines system %q: %s: a line has no headers", p.s.name, env.Stream)
	case bytes.IndexByte(env.Message, '\n') >= 0:
		return fmt.Errorf("lines system %q: %s: a message with a newline is not one line", p.s.name, env.Stream)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("lines system %q: Send after Close", p.s.name)
	}
	n, ok := p.counts[env.Stream.Stream]
	if !ok || env.Partition >= n {
		var err error
		if n, err = p.s.partitions(env.Stream.Stream); err != nil {
			return err
		}
		p.counts[env.Stream.Stream] = n
	}
	if env.Partition < 0 || env.Partition >= n {
		return fmt.Errorf("lines system %q: stream %q has %d partitions: there is no partition %d", p.s.name, env.Stream.Stream, n, env.Partition)
	}
	path := p.s.path(env.Stream.Stream, env.Partition)
	p.pending[path] = append(append(p.pending[path], env.Message...), '\n')
	return nil
}

// Flush appends every line sent since the last Flush and syncs each file. Once an
// append failed, every Flush fails: the lines are lost, and a checkpoint must never
// cover them.
func (p *linesProducer) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	for _, path := range slices.Sorted(maps.Keys(p.pending)) {
		if err := p.s.appendLines(path, p.pending[path]); err != nil {
			p.failed = fmt.Errorf("lines system %q: %w", p.s.name, err)
			return p.failed
		}
		delete(p.pending, path)
	}
	return nil
}

// Close drops the lines not flushed.
func (p *linesProducer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	clear(p.pending)
	return nil
}

// appendLines appends lines to the partition file at path (which must exist) and
// syncs it. A line left incomplete at the file's end was never acknowledged (a
// process died writing it), so it is cut off first; and an append that fails is cut
// off again, so that the file holds only whole, acknowledged lines.
func (s *linesSystem) appendLines(path string, lines []byte) (err error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	size, cut, err := wholeLines(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if cut > 0 {
		s.log.Warn("lines: cut off an incomplete line at the end of a partition file: a writer died while appending it, before it was acknowledged",
			"file", path, "at_byte", size, "bytes", cut)
	}
	if _, err := f.WriteAt(lines, size); err != nil {
		return fmt.Errorf("%s: %w", path, errors.Join(err, f.Truncate(size)))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// wholeLines cuts off an incomplete last line of f and returns f's size and how many
// bytes it cut.
func wholeLines(f *os.File) (size, cut int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = fi.Size()
	if size == 0 {
		return 0, 0, nil
	}
	// Look back for the last newline, a block at a time.
	end := size
	buf := make([]byte, 4096)
	for end > 0 {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return 0, 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			end = start + int64(i) + 1
			break
		}
		end = start
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return 0, 0, err
		}
	}
	return end, size - end, nil
}
