package bench_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/bench"
)

// helperEnv makes this test binary act as the bench binary's hidden modes, so the
// smoke test needs no separate build of cmd/sluice-bench.
const helperEnv = "SLUICE_BENCH_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(bench.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestQuickRun runs the whole benchmark with tiny sizes: every measurement is made
// and every row is in the table with figures that make sense. Nothing here depends
// on how fast anything is.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a dozen processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := bench.Quick()
	o.HelperBin, o.HelperEnv = exe, []string{helperEnv + "=1"}
	o.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tab, err := bench.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := tab.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", out.String())

	type want struct {
		key      string
		baseline bool
		target   bool
		min, max float64 // bounds of SluiceValue
	}
	const (
		rate = 1e7 // messages per second: a bound no machine reaches here
		mb   = 1 << 20
	)
	wants := []want{
		{"metrics/on-vs-off", true, true, 1, rate},
		{"metrics/cpu-on-vs-off", true, false, 1e-9, 1},
		{"throughput/no-commits-vs-raw", true, false, 1, rate},
		{"throughput/commit-1s-vs-raw", true, true, 1, rate},
		{"throughput/commit-100ms-vs-raw", true, true, 1, rate},
		{"throughput/commit-10ms-vs-raw", true, false, 1, rate},
		{"commits/commit-1s-vs-none", true, false, 1, rate},
		{"commits/commit-100ms-vs-none", true, false, 1, rate},
		{"commits/commit-10ms-vs-none", true, false, 1, rate},
		{"cpu/no-commits-vs-raw", true, false, 1e-9, 1},
		{"cpu/commit-1s-vs-raw", true, false, 1e-9, 1},
		{"cpu/commit-100ms-vs-raw", true, false, 1e-9, 1},
		{"cpu/commit-10ms-vs-raw", true, false, 1e-9, 1},
		{"end-to-end/wall-vs-raw", true, true, 1, rate},
		{"end-to-end/cpu-vs-raw", true, true, 1e-9, 1},
		{"end-to-end/first-vs-raw", true, true, 1e-6, 60},
		{"exactly-once/commit-1s-vs-alo", true, true, 1, rate},
		{"exactly-once/commit-100ms-vs-alo", true, true, 1, rate},
		{"exactly-once/cpu-commit-1s-vs-alo", true, false, 1e-9, 1},
		{"exactly-once/cpu-commit-100ms-vs-alo", true, false, 1e-9, 1},
		{"exactly-once/latency-commit-1s", true, false, 1e-6, 60},
		{"exactly-once/commit-latency-commit-1s", false, false, -60, 60},
		{"exactly-once/latency-commit-100ms", true, false, 1e-6, 60},
		{"exactly-once/commit-latency-commit-100ms", false, false, -60, 60},
		{"group/failover", false, true, 1e-3, 60},
		{"group/handover", false, true, 0, 60},
		{"group/reprocessed", false, true, 0, 1e9},
		{"group/unaffected-scale-out", true, true, 1, rate},
		{"group/unaffected-failover", true, true, 1, rate},
		{"group/throughput-1-vs-static", true, false, 1, rate},
		{"group/throughput-2-vs-1", true, true, 1, rate},
		{"group/throughput-4-vs-1", true, true, 1, rate},
		{"group/cpu-2-vs-1", true, false, 1e-9, 1},
		{"group/cpu-4-vs-1", true, false, 1e-9, 1},
		{"startup/checkpoint-read", true, true, 1e-6, 60},
		{"recovery/sigkill-restart", false, true, 1e-6, 60},
		{"memory/rss-at-2x", true, false, mb, 16 << 30},

		{"memory/rss-at-10x", true, false, mb, 16 << 30},
		{"memory/peak", true, false, mb, 16 << 30},
		{"memory/flat", true, true, -1e9, 1e9}, // a growth rate: in quick mode, any figure
	}
	if len(tab.Rows) != len(wants) {
		t.Errorf("%d rows, want %d", len(tab.Rows), len(wants))
	}
	for _, w := range wants {
		r, ok := tab.Row(w.key)
		if !ok {
			t.Errorf("no row %s", w.key)
			continue
		}
		if !strings.Contains(out.String(), r.Name) {
			t.Errorf("row %s (%q) is not in the printed table", w.key, r.Name)
		}
		if !(r.SluiceValue >= w.min && r.SluiceValue <= w.max) {
			t.Errorf("row %s: sluice figure %v %s, want within [%v, %v]", w.key, r.SluiceValue, r.Unit, w.min, w.max)
		}
		switch {
		case w.key == "memory/flat":
			if math.IsNaN(r.BaselineValue) || math.IsInf(r.BaselineValue, 0) {
				t.Errorf("row %s: baseline %v", w.key, r.BaselineValue)
			}
		case w.baseline:
			if !(r.BaselineValue > 0) || math.IsInf(r.BaselineValue, 0) {
				t.Errorf("row %s: baseline %v, want a positive figure", w.key, r.BaselineValue)
			}
			if !(r.Ratio > 0) || math.IsInf(r.Ratio, 0) || math.Abs(r.Ratio-r.SluiceValue/r.BaselineValue) > 1e-9 {
				t.Errorf("row %s: ratio %v, want %v / %v", w.key, r.Ratio, r.SluiceValue, r.BaselineValue)
			}
		default:
			if !math.IsNaN(r.Ratio) {
				t.Errorf("row %s: ratio %v without a baseline", w.key, r.Ratio)
			}
		}
		if w.target != (r.Target != "") || (r.Target != "" && r.Result != "pass" && r.Result != "FAIL") {
			t.Errorf("row %s: target %q, result %q", w.key, r.Target, r.Result)
		}
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{{"-repeats=0"}, {"-only=nope"}, {"-nosuchflag"}, {"extra"}, {"-end-to-end-messages=0"}, {"-group-session-timeout=0s"}, {"-latency-rate=-1"}, {"-group-rate=0"}} {
		var stdout, stderr bytes.Buffer
		if code := bench.Main(context.Background(), args, &stdout, &stderr); code != bench.ExitUsage {
			t.Errorf("Main(%q) = %d, want %d; stderr:\n%s", args, code, bench.ExitUsage, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("Main(%q) printed %q on stdout", args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := bench.Main(context.Background(), []string{"-h"}, &stdout, &stderr); code != bench.ExitOK || !strings.Contains(stderr.String(), "-quick") {
		t.Errorf("Main(-h) = %d; stderr:\n%s", code, stderr.String())
	}
}
