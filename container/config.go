package container

import (
	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/job"
	"github.com/sluice-streams/sluice/jobmodel"
	"github.com/sluice-streams/sluice/system"
	"github.com/sluice-streams/sluice/task"
)

// checkStreams checks that every input and every output the task declares names a
// configured system, and a stream name that system accepts (jobmodel.CheckStreams). It
// returns the declared outputs.
func checkStreams(p *config.Problems, cfg config.Config, jc *job.Config, def task.Definition, systems map[string]system.System) []system.SystemStream {
	var outs []system.SystemStream
	if def.Outputs != nil {
		err := guard(jc.TaskClass, "declaring its outputs", func() (err error) {
			outs, err = def.Outputs(cfg)
			return err
		})
		if err != nil {
			p.AddErr(err)
			outs = nil
		}
	}
	jobmodel.CheckStreams(p, cfg, jc, systems, outs)
	return outs
}
