package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	statusAge     = regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|m)\d*s? ago +`)
	statusAgeJSON = regexp.MustCompile(`"checkpoint_age_seconds": [0-9.e+-]+`)
	statusTime    = regexp.MustCompile(`"last_checkpoint": "[^"]+"`)
)

// normStatus hides what changes from run to run: checkpoint times and ages.
func (e *toolEnv) normStatus(s string) string {
	s = statusAge.ReplaceAllString(s, "AGE ago  ")
	s = statusAgeJSON.ReplaceAllString(s, `"checkpoint_age_seconds": AGE`)
	return statusTime.ReplaceAllString(s, `"last_checkpoint": "TIME"`)
}

func TestStatusOfAStoppedAndARunningJob(t *testing.T) {
	e := newToolEnv(t, "task.commit.ms", "100")
	e.produce(t, "PageViewEvent", 0, 5, t0)
	e.produce(t, "PageViewEvent", 1, 4, t0)
	// Before the job ever ran: no checkpoints, the lag counts from the default.
	r := e.sluice(t, t.Context(), "status", "--config-path="+e.cfg)
	toolGolden(t, "status-never-ran", e.normStatus(e.transcript(r)))
	if r.code != 3 {
		t.Fatalf("status of a job that never ran: exit %d, want 3 (not running)", r.code)
	}

	e.runToEnd(t, e.cfg)
	e.produce(t, "PageViewEvent", 0, 3, t0.Add(time.Hour))
	r = e.sluice(t, t.Context(), "status", "--config-path="+e.cfg)
	toolGolden(t, "status-stopped", e.normStatus(e.transcript(r)))
	if r.code != 3 {
		t.Fatalf("status of a stopped job: exit %d, want 3", r.code)
	}
	r = e.sluice(t, t.Context(), "status", "--config-path="+e.cfg, "--json")
	toolGolden(t, "status-stopped-json", e.normStatus(e.transcript(r)))
	var st struct {
		Running  *bool `json:"running"`
		LagTotal int64 `json:"lag_total"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Running == nil || *st.Running || st.LagTotal != 3 {
		t.Fatalf("--json: %v running=%v lag_total=%d\n%s", err, st.Running, st.LagTotal, r.stdout)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan toolRun, 1)
	go func() { done <- e.sluice(t, ctx, "run", "--config-path="+e.cfg, "--log-level=warn") }()
	defer func() {
		cancel()
		if r := <-done; r.code != 0 {
			t.Errorf("sluice run: exit %d\n%s", r.code, r.stderr)
		}
	}()
	// Wait for the running job to checkpoint the 3 new messages.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = e.sluice(t, t.Context(), "status", "--config-path="+e.cfg)
		if r.code == 0 && strings.Contains(r.stdout, "; lag 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running job's status never showed it caught up:\n%s", e.transcript(r))
		}
		time.Sleep(50 * time.Millisecond)
	}
	toolGolden(t, "status-running", e.normStatus(e.transcript(r)))
}
