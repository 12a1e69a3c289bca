package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// roundRecords makes the output of a group round of 4 partitions, each fed one
// message every 10 ms from t=0 to t=3 s: A (pid 1) processes everything until B
// (pid 2) starts at 1 s; partitions 2 and 3 move to B, which processes their next
// message after pause; A is killed at 2 s and B processes partitions 0 and 1 again
// from 1.9 s (their last checkpoint) at 2.5 s. dup, when set, has B start
// partition 3 one message early.
func roundRecords(start time.Time, pause time.Duration, dup bool) map[int32][]outRecord {
	at := func(d time.Duration) time.Time { return start.Add(d) }
	parts := map[int32][]outRecord{}
	for p := range int32(4) {
		var recs []outRecord
		moveAt := 1100 * time.Millisecond // A's last message of a moved partition
		for i := range 300 {
			t := time.Duration(i) * 10 * time.Millisecond
			seq := uint64(i*4) + uint64(p)
			switch {
			case p >= 2 && t <= moveAt:
				recs = append(recs, outRecord{seq: seq, pid: 1, at: at(t)})
			case p >= 2:
				recs = append(recs, outRecord{seq: seq, pid: 2, at: at(t - 10*time.Millisecond + pause)})
			case t < 2*time.Second:
				recs = append(recs, outRecord{seq: seq, pid: 1, at: at(t)})
			}
			if p >= 2 && t == moveAt && dup {
				recs = append(recs, outRecord{seq: seq, pid: 2, at: at(t + pause)})
			}
		}
		if p < 2 { // B from A's last checkpoint at 1.9 s, at 2.5 s, catching up
			for i := 190; i < 300; i++ {
				recs = append(recs, outRecord{seq: uint64(i*4) + uint64(p), pid: 2, at: at(2500*time.Millisecond + time.Duration(i-190)*time.Millisecond)})
			}
		}
		parts[p] = recs
	}
	return parts
}

func TestAnalyseRound(t *testing.T) {
	start := time.Now()
	t1, t0 := start.Add(time.Second), start.Add(2*time.Second)
	r, err := analyseRound(roundRecords(start, 300*time.Millisecond, false), 1, 2, t1, t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("handover", r.handover, 0.3)
	near("scaledOut", r.scaledOut, 0.4) // A's last at 1.1 s, B's first at 1.4 s
	near("failover", r.failover, 0.5)
	if r.reprocessed != 0 {
		t.Errorf("reprocessed = %d, want 0", r.reprocessed)
	}
	// Partitions 0 and 1 stayed with A during the scale-out: 100 msg/s each.
	near("scale-out kept input", r.scaleOutKept.input, 200)
	near("scale-out kept rate", r.scaleOutKept.during, 200)
	near("scale-out kept pause", r.scaleOutKept.pause, 0.01)
	near("failover kept input", r.failoverKept.input, 200)
	near("failover kept pause", r.failoverKept.pause, 0.01)

	dup, err := analyseRound(roundRecords(start, 300*time.Millisecond, true), 1, 2, t1, t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if dup.reprocessed != 2 {
		t.Errorf("with a message of each moved partition processed by both, reprocessed = %d, want 2", dup.reprocessed)
	}

	// A round in which nothing moved is not a scale-out.
	still := roundRecords(start, 300*time.Millisecond, false)
	for p, recs := range still {
		for i := range recs {
			if recs[i].at.Before(t0) {
				recs[i].pid = 1
			}
		}
		still[p] = recs
	}
	if _, err := analyseRound(still, 1, 2, t1, t0, 100); err == nil || !strings.Contains(err.Error(), "moved 0 of 4") {
		t.Errorf("no task moved: err = %v", err)
	}
}

func TestSetKey(t *testing.T) {
	got := setKey([]string{"a=1", "b=2"}, "b", "3")
	if strings.Join(got, ",") != "a=1,b=3" {
		t.Errorf("replace: %q", got)
	}
	if got := setKey([]string{"a=1"}, "c", "4"); strings.Join(got, ",") != "a=1,c=4" {
		t.Errorf("append: %q", got)
	}
}
