package cli

import (
	"log/slog"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/kafka"
	"github.com/sluice-streams/sluice/system"
)

func kafkaSystem(name string, cfg config.Config, log *slog.Logger) (system.System, error) {
	s, err := kafka.New(name, cfg, log)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return s, nil
}

func kafkaCheckpoints(jc *job.Config, systems map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
	s, ok := systems[jc.CheckpointSystem].(*kafka.System)
	if !ok {
		return nil, &config.Error{Key: job.KeyCheckpointSystem, Value: jc.CheckpointSystem, Err: errNotKafka}
	}
	m, err := kafka.NewCheckpointManager(s, jc.Raw, log)
	if err != nil {
		return nil, err
	}
	return m, nil
}
