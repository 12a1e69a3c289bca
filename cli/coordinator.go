package cli

import (
	"context"
	"log/slog"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

// kafkaCoordinator builds the coordinator of job.coordinator.factory=kafka: the job's
// task group on the cluster of job.coordinator.system.
func kafkaCoordinator(jc *job.Config, systems map[string]system.System, containerID string, log *slog.Logger) (container.Coordinator, error) {
	s, ok := systems[jc.CoordinatorSystem].(*kafka.System)
	if !ok {
		return nil, &config.Error{Key: job.KeyCoordinatorSystem, Value: jc.CoordinatorSystem, Msg: "job.coordinator.factory=kafka needs a kafka system for the job's group"}
	}
	settings := container.GroupSettings(jc)
	cfg := kafka.TaskGroupConfig{
		Job: jc.Name, JobID: jc.ID, Settings: settings,
		SessionTimeout: jc.CoordinatorSessionTimeout, RebalanceTimeout: jc.CoordinatorRebalanceTimeout,
		ReplicationFactor: int16(jc.CoordinatorReplicationFactor),
	}
	if containerID != "" {
		cfg.InstanceID = "container-" + containerID
	}
	return taskGroup{kafka.NewTaskGroup(s, cfg, log)}, nil
}

// taskGroup adapts kafka.TaskGroup to container.Coordinator.
type taskGroup struct{ g *kafka.TaskGroup }

func (t taskGroup) Start(ctx context.Context, tasks int32, h container.CoordinatorHandler) error {
	return t.g.Start(ctx, tasks, kafka.TaskGroupHandler{Assigned: h.Assigned, Revoked: h.Revoked, Lost: h.Lost, Failed: h.Failed})
}

func (t taskGroup) Grow(ctx context.Context, tasks int32) error { return t.g.Grow(ctx, tasks) }

func (t taskGroup) Status(ctx context.Context) (container.CoordinatorStatus, error) {
	st, err := t.g.Status(ctx)
	return container.CoordinatorStatus{Generation: st.Generation, Containers: st.Members, Tasks: st.Tasks}, err
}

func (t taskGroup) Close() error { return t.g.Close() }
