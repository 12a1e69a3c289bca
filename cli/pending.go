package cli

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sluice-streams/sluice/checkpoint"
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/system"
)

func kafkaSystem(string, config.Config, *slog.Logger) (system.System, error) {
	return nil, errors.New("pending")
}

func kafkaCheckpoints(*job.Config, map[string]system.System, *slog.Logger) (checkpoint.Manager, error) {
	return nil, errNotKafka
}

func (e *env) checkpointTool(context.Context, []string) int { return ExitFailure }
func (e *env) broker(context.Context, []string) int         { return ExitFailure }
func (e *env) quickstart(context.Context, []string) int     { return ExitFailure }
