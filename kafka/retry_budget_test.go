package kafka

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/internal/backoff"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// TestContainerDoesNotRetryAnExhaustedCheckpointWrite: the checkpoint manager retries
// a failing write for task.checkpoint.write.timeout.ms itself; the container then
// stops the job without retrying it again, so the budgets do not multiply (the
// container's 4 attempts would make it 4 × the timeout). Both layers share one fake
// clock, which sees the manager's waits only.
func TestContainerDoesNotRetryAnExhaustedCheckpointWrite(t *testing.T) {
	c, seeds := cluster(t, kfake.SeedTopics(1, "in"))
	cl, _ := rawClient(t, seeds)
	produceN(t, cl, "in", 0, 3, "m")
	const topic = "__samza_checkpoint_budget_1"
	writes := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.PolicyViolation, Count: -1})
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	logger, logs := testLogger(t)
	cfg := config.New(map[string]string{
		"job.name":                                 "budget",
		"task.class":                               "noop",
		"task.inputs":                              "kafka.in",
		"task.commit.ms":                           "-1",
		"task.checkpoint.factory":                  "kafka",
		"task.checkpoint.system":                   "kafka",
		"task.checkpoint.replication.factor":       "1",
		"task.checkpoint.write.timeout.ms":         "1000",
		"systems.kafka.samza.factory":              "kafka",
		"systems.kafka.samza.offset.default":       "oldest",
		"systems.kafka.consumer.bootstrap.servers": seeds,
	})
	ctr, err := container.New(cfg, container.Options{
		ExitWhenCaughtUp: true,
		Tasks:            map[string]task.Definition{"noop": {New: func(string, config.Config) (task.StreamTask, error) { return noopTask{}, nil }}},
		Systems:          map[string]system.Factory{"kafka": Factory},
		Checkpoints: map[string]container.CheckpointFactory{
			"kafka": func(jc *job.Config, systems map[string]system.System, logger *slog.Logger) (checkpoint.Manager, error) {
				sys := systems["kafka"].(*System)
				sys.clock = clock
				return NewCheckpointManager(sys, jc.Raw, logger)
			},
		},
		Logger:         logger,
		StatusInterval: -1,
		Clock:          clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = ctr.Run(ctx)
	if !errors.Is(err, checkpoint.ErrRetriesExhausted) || !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("Run = %v, want the manager's exhausted retries wrapping the broker's error", err)
	}
	contains(t, err.Error(), "gave up after 4 attempts in 1s")
	// The manager's waits: 0.1, 0.2, 0.4 s and the 0.3 s left of its budget; none of
	// the container's (0.1, 0.4, 1.6 s).
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 300 * time.Millisecond}; !slices.Equal(clock.Waits(), want) || writes.Hits() != 4 {
		t.Errorf("the broker saw %d checkpoint writes, the clock waits %v; want 4 writes and waits %v", writes.Hits(), clock.Waits(), want)
	}
	if strings.Contains(logs.String(), "checkpoint write failed; retrying") {
		t.Errorf("the container retried a write the manager had retried already:\n%s", logs)
	}
}

type noopTask struct{}

func (noopTask) Process(context.Context, system.IncomingEnvelope, task.Collector, task.Coordinator) error {
	return nil
}
