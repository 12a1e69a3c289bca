package cli

import (
	"fmt"
	"log/slog"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/checkpoint/filesystem"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/container"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/system/inmem"
)

// systemFactories are the systems the sluice binary knows, by factory short name.
func systemFactories() map[string]system.Factory {
	return map[string]system.Factory{
		"inmem": inmem.NewStore().Factory(),
		"kafka": kafkaSystem,
	}
}

// checkpointFactories are the checkpoint managers the sluice binary knows.
func checkpointFactories() map[string]container.CheckpointFactory {
	return map[string]container.CheckpointFactory{
		"filesystem": func(jc *job.Config, _ map[string]system.System, log *slog.Logger) (checkpoint.Manager, error) {
			m, err := filesystem.New(jc.CheckpointPath, jc.Name, jc.ID, filesystem.WithLogger(log))
			if err != nil {
				return nil, &config.Error{Key: job.KeyCheckpointPath, Value: jc.CheckpointPath, Err: err}
			}
			return m, nil
		},
		"kafka": kafkaCheckpoints,
	}
}

var errNotKafka = fmt.Errorf("the kafka checkpoint manager needs a kafka system")
