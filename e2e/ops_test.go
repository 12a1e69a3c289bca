package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
)

// scrape reads http://addr/metrics and parses it with Prometheus's text parser.
func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// series returns the values of family name by the label "partition" (or "" when absent).
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f, ok := fams[name]
	if !ok {
		return out
	}
	for _, m := range f.Metric {
		key := ""
		for _, l := range m.Label {
			if l.GetName() == "partition" {
				key = l.GetValue()
			}
		}
		switch {
		case m.Gauge != nil:
			out[key] = m.Gauge.GetValue()
		case m.Counter != nil:
			out[key] += m.Counter.GetValue()
		}
	}
	return out
}

// TestMetricsEndpointOfARealRun scrapes /metrics of a running `sluice run`: the lag
// falls to 0 once it caught up, its checkpointed offsets are those the checkpoint
// tool prints, commits rise with task.commit.ms, and Kafka's own tools see the
// checkpoints mirrored as consumer-group offsets.
func TestMetricsEndpointOfARealRun(t *testing.T) {
	_, seeds := cluster(t)
	createTopics(t, seeds, 2, "in", "out")
	produce(t, seeds, "in", 2, "m", 0, 500)
	cfg := passthroughConfig(t, seeds, "metrics-e2e", "task.commit.ms=200")
	addr := freePort(t)
	p := start(t, "run", "--config-path="+cfg, "--http-listen="+addr, "--log-format=json")

	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		fams, err = scrape(t, addr)
		if err == nil {
			lag := series(fams, "sluice_task_messages_behind_high_watermark")
			cp := series(fams, "sluice_task_checkpointed_offset")
			if len(lag) == 2 && lag["0"] == 0 && lag["1"] == 0 && cp["0"]+cp["1"] == 500 {
				break
			}
		}
		if closed(p.done) || time.Now().After(deadline) {
			t.Fatalf("lag never fell to 0 with 500 messages checkpointed (last scrape error %v); stderr:\n%s", err, tail(p.stderr.String(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	commits := series(fams, "sluice_task_commit_calls_total")[""]
	// Commits rise with task.commit.ms (200 ms): at least 5 more within 3 s.
	deadline = time.Now().Add(3 * time.Second)
	for {
		f, err := scrape(t, addr)
		if err == nil && series(f, "sluice_task_commit_calls_total")[""] >= commits+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit calls did not rise from %v within 3 s with task.commit.ms=200", commits)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := fams["sluice_kafka_connects_total"]; !ok {
		t.Errorf("no franz-go client metrics in /metrics")
	}
	// The log is JSON, one object a line.
	if lines := grep(p.stderr.String(), `"msg":"http endpoint listening`); len(lines) != 1 || !strings.HasPrefix(lines[0], "{") {
		t.Errorf("--log-format=json: want one JSON line announcing the endpoint, got %q", lines)
	}

	// The checkpoint tool prints the same offsets.
	tool := exec.Command(sluiceBin, "checkpoint-tool", "--config-path="+cfg)
	out, err := tool.Output()
	if err != nil {
		t.Fatalf("checkpoint-tool: %v", err)
	}
	cp := series(fams, "sluice_task_checkpointed_offset")
	for part := range 2 {
		key := fmt.Sprintf("tasknames.Partition\\ %d.systems.kafka.streams.in.partitions.%d=", part, part)
		var printed string
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, key); ok {
				printed = v
			}
		}
		if printed != strconv.FormatFloat(cp[strconv.Itoa(part)], 'f', -1, 64) {
			t.Errorf("partition %d: /metrics says checkpointed %v, the checkpoint tool prints %q", part, cp[strconv.Itoa(part)], printed)
		}
	}

	// kadm sees the mirrored group offsets, and so would kafka-consumer-groups.sh.
	// The mirror commits in the background, just after each checkpoint.
	adm := kadm.NewClient(client(t, seeds))
	var total, committed int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		lags, err := adm.Lag(t.Context(), "sluice-offsets-metrics-e2e-1")
		if err != nil {
			t.Fatal(err)
		}
		total, committed = 0, 0
		for _, l := range lags["sluice-offsets-metrics-e2e-1"].Lag.Sorted() {
			total += l.Lag
			committed += l.Commit.At
		}
		if committed == 500 && total == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if committed != 500 || total != 0 {
		t.Errorf("mirror group: committed %d, lag %d; want 500 and 0", committed, total)
	}
	for _, path := range []string{"/healthz", "/readyz", "/status"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s = %d %s", path, resp.StatusCode, body)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("sluice run exit %d; stderr:\n%s", code, tail(p.stderr.String(), 20))
	}
}
