package container_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

func TestStatusLineShowsRateLagAndLastCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.stream("in", 2, 200)
	release := make(chan struct{})
	e.tasks["test"] = copyTo("", nil, func(env system.IncomingEnvelope, coord task.Coordinator) error {
		if env.SSP.Partition == 1 && env.Offset == "100" {
			<-release // partition 1 stalls half-way: it is still catching up
		}
		if env.Offset == "50" {
			coord.Commit(task.CurrentTask)
		}
		return nil
	})
	c, err := e.container(baseConfig(), func(o *container.Options) { o.StatusInterval = 50 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(400 * time.Millisecond)
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "msg=status") && strings.Contains(l, "lag_by_task") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatalf("no status line showing a lagging task:\n%s", e.logs)
	}
	// Progress is published per batch, so the stalled task shows the lag of its whole
	// batch; the task that finished shows none.
	for _, want := range []string{"rate_per_s=", "lag_total=200", `lag_by_task="1=200"`, "last_checkpoint=", "checkpoint_age="} {
		if !strings.Contains(line, want) {
			t.Errorf("status line lacks %q: %s", want, line)
		}
	}
}
