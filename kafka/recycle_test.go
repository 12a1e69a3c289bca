package kafka

import (
	"runtime"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-streams/sluice/system"
)

// A recycled envelope slice comes back from get cleared and survives a garbage
// collection (a sync.Pool would have dropped it), and a slice too small for a poll is
// not handed out.
func TestEnvelopePoolReusesSlicesAcrossCollections(t *testing.T) {
	var ep envelopePool
	envs := ep.get(10)
	if len(envs) != 10 || cap(envs) != 64 {
		t.Fatalf("get(10): len %d cap %d, want 10 and 64", len(envs), cap(envs))
	}
	envs[3] = system.IncomingEnvelope{Offset: "3", Message: []byte("m")}
	ep.put(envs)
	runtime.GC()
	runtime.GC()
	again := ep.get(20)
	if &again[0] != &envs[0] {
		t.Fatal("the recycled slice was not reused after a collection")
	}
	for i, e := range again {
		if e.Offset != "" || e.Message != nil {
			t.Fatalf("envelope %d of a reused slice is not cleared: %+v", i, e)
		}
	}
	ep.put(again)
	big := ep.get(100)
	if cap(big) < 100 || &big[0] == &envs[0] {
		t.Fatalf("get(100) returned a slice of cap %d (the small one: %v)", cap(big), &big[0] == &envs[0])
	}
	// A smaller slice returned later does not hide one that fits.
	small := ep.get(10)
	ep.put(big)
	ep.put(small)
	if fit := ep.get(100); &fit[0] != &big[0] {
		t.Fatal("get(100) did not find the pooled slice that fits behind a smaller one")
	}
	ep.free = nil
	for range maxPooledSlices + 10 {
		ep.put(make([]system.IncomingEnvelope, 1))
	}
	if n := len(ep.free); n != maxPooledSlices {
		t.Fatalf("the pool holds %d slices, want at most %d", n, maxPooledSlices)
	}
}

// Records come back from the cache cleared but for their headers' room, from any
// goroutine, and the cache never holds more than maxCachedRecords.
func TestRecordCacheRecyclesClearedRecords(t *testing.T) {
	var rc recordCache
	r := rc.get()
	r.Topic, r.Value, r.Partition = "t", []byte("v"), 3
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "k", Value: []byte("h")})
	done := make(chan struct{})
	go func() { rc.put(r); close(done) }() // as franz-go's promise goroutine does
	<-done
	got := rc.get()
	if got != r {
		t.Fatal("the returned record was not reused")
	}
	if got.Topic != "" || got.Value != nil || got.Partition != 0 || len(got.Headers) != 0 || cap(got.Headers) == 0 {
		t.Fatalf("reused record not cleared (headers' room kept): %+v", got)
	}

	var wg sync.WaitGroup
	recs := make([]*kgo.Record, maxCachedRecords+100)
	for i := range recs {
		recs[i] = rc.get()
	}
	for _, part := range [][]*kgo.Record{recs[:len(recs)/2], recs[len(recs)/2:]} {
		wg.Go(func() {
			for _, r := range part {
				rc.put(r)
			}
		})
	}
	wg.Wait()
	if n := len(rc.returned) + len(rc.local); n != maxCachedRecords {
		t.Fatalf("the cache holds %d records, want %d", n, maxCachedRecords)
	}
	seen := map[*kgo.Record]bool{}
	for range maxCachedRecords {
		r := rc.get()
		if seen[r] {
			t.Fatal("one record handed out twice")
		}
		seen[r] = true
	}
}
