package cli

import "context"

func (e *env) checkpointTool(context.Context, []string) int { return ExitFailure }
func (e *env) broker(context.Context, []string) int         { return ExitFailure }
func (e *env) quickstart(context.Context, []string) int     { return ExitFailure }
