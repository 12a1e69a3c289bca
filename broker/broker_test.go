package broker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func client(t *testing.T, addr string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// TestRestartKeepsData writes records, a compacted topic and a group commit, stops
// the broker, starts a new one on the same directory (and another port), and finds
// everything there.
func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	logs := &syncBuffer{}
	b := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr = %q", b.Addr())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "NOT for production") {
		t.Errorf("no development-only warning in %q", logs)
	}
	ctx := t.Context()
	cl, adm := client(t, b.Addr())
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, "state"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Topic: "events", Key: []byte{byte(i)}, Value: []byte("event-" + string(rune('a'+i%26)))})
	}
	recs = append(recs, &kgo.Record{Topic: "state", Key: []byte("k"), Value: []byte("v1")})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "events", Partition: 0, At: 7, LeaderEpoch: -1, Metadata: "checkpoint"})
	if err := adm.CommitAllOffsets(ctx, "group-1", commit); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "events", "state")
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	b2 := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})
	cl2, adm2 := client(t, b2.Addr(), kgo.ConsumeTopics("events", "state"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ends2, err := adm2.ListEndOffsets(ctx, "events", "state")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o2, _ := ends2.Lookup(o.Topic, o.Partition); o2.Offset != o.Offset {
			t.Errorf("%s/%d: end offset %d after restart, was %d", o.Topic, o.Partition, o2.Offset, o.Offset)
		}
	})
	got := 0
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for got < len(recs) {
		fs := cl2.PollFetches(deadline)
		if err := fs.Err(); err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		got += fs.NumRecords()
	}
	offs, err := adm2.FetchOffsets(ctx, "group-1")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("events", 0); !ok || o.At != 7 || o.Metadata != "checkpoint" {
		t.Errorf("committed offset after restart = %+v, %v", o, ok)
	}
	rcs, err := adm2.DescribeTopicConfigs(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("state", nil)
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy after restart = %q, want compact", policy)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Options{Listen: "127.0.0.1:0", DataDir: dir, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cl, _ := client(t, b.Addr(), kgo.AllowAutoTopicCreation())
	// Auto-created topics get one partition.
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "auto", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := b.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}

	b2 := start(t, Options{Listen: "127.0.0.1:0", DataDir: dir})
	_, adm := client(t, b2.Addr())
	tds, err := adm.ListTopics(t.Context(), "auto")
	if err != nil || tds["auto"].Err != nil || len(tds["auto"].Partitions) != 1 {
		t.Fatalf("auto topic after restart: %+v, %v", tds["auto"], err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, opts := range []Options{{Listen: "nonsense"}, {Listen: "127.0.0.1:99999"}, {Listen: "127.0.0.1:x"}} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := writeFile(file); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{DataDir: file}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("New with a file as data dir = %v", err)
	}
	b, err := New(Options{})
	if err != nil || b.opts.Listen != DefaultListen || b.Addr() != "" {
		t.Errorf("New(zero) = %+v, %v", b, err)
	}
}

// TestAdvertisedHost checks what a wildcard listen address tells clients. Tests bind
// loopback only, so the wildcard's advertised host is checked on New's result, and
// the advertising listener end to end with a loopback address advertised as
// "localhost".
func TestAdvertisedHost(t *testing.T) {
	for listen, want := range map[string]string{":9092": "127.0.0.1", "0.0.0.0:0": "127.0.0.1", "[::]:1": "127.0.0.1", "127.0.0.1:0": "", "localhost:9092": ""} {
		b, err := New(Options{Listen: listen})
		if err != nil || b.advertise != want {
			t.Errorf("New(%q): advertise %q, %v; want %q", listen, b.advertise, err, want)
		}
	}
	logs := &syncBuffer{}
	b, err := New(Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.advertise = "localhost"
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Addr(), "localhost:") {
		t.Fatalf("Addr = %q", b.Addr())
	}
	_, adm := client(t, b.Addr())
	md, err := adm.BrokerMetadata(t.Context())
	if err != nil || len(md.Brokers) != 1 || md.Brokers[0].Host != "localhost" {
		t.Fatalf("brokers = %+v, %v", md.Brokers, err)
	}
	if !strings.Contains(logs.String(), "other machines") {
		t.Errorf("no warning about the advertised host in %q", logs)
	}
}

func writeFile(path string) error { return os.WriteFile(path, []byte("x"), 0o644) }
