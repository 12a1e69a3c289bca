package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/sluice-streams/sluice/system"
)

// Broadcast partitions (task.broadcast.inputs) are read by every task, each from its
// own offset, and each task checkpoints its own offset of them. So that no task waits
// for another or skips what another has read, a task reads them through consumers of
// its own, one per system, instead of the container's shared ones: they are meant for
// small control and configuration streams.

// ownConsumers are a task's consumers of its broadcast partitions.
type ownConsumers struct {
	cons   map[string]system.Consumer // by system
	cancel context.CancelFunc         // stops their dispatchers
	done   sync.WaitGroup             // the dispatchers
}

// broadcastOf returns the broadcast partitions among ssps, by system.
func (r *run) broadcastOf(ssps []system.SystemStreamPartition) map[string][]system.SystemStreamPartition {
	by := map[string][]system.SystemStreamPartition{}
	for _, ssp := range ssps {
		if r.c.jc.IsBroadcast(ssp) {
			by[ssp.System] = append(by[ssp.System], ssp)
		}
	}
	return by
}

// openOwn creates the task's consumers of its broadcast partitions, registers each
// partition at the task's starting offset and starts them.
func (r *run) openOwn(ctx context.Context, tr *taskRunner) error {
	by := r.broadcastOf(tr.core.ssps)
	if len(by) == 0 {
		return nil
	}
	own := &ownConsumers{cons: map[string]system.Consumer{}}
	tr.own = own
	for _, sys := range slices.Sorted(maps.Keys(by)) {
		cons, err := r.c.systems[sys].NewConsumer()
		if err != nil {
			return fmt.Errorf("task %s: create a consumer of system %s for its broadcast partitions: %w", tr.core.name, sys, err)
		}
		own.cons[sys] = cons
		r.live.watch(sys, cons) // its high watermarks and broker contact, for Progress
		for _, ssp := range by[sys] {
			off := tr.core.starts[ssp].Offset
			if err := cons.Register(ssp, off); err != nil {
				return fmt.Errorf("task %s: register broadcast partition %s at offset %s: %w", tr.core.name, ssp, off, err)
			}
		}
		if err := cons.Start(ctx); err != nil {
			return fmt.Errorf("task %s: start the consumer of its broadcast partitions of system %s: %w", tr.core.name, sys, err)
		}
	}
	return nil
}

// startOwn starts the dispatchers of the task's own consumers; they stop with the
// container, or when the task is removed (stopOwn).
func (r *run) startOwn(tr *taskRunner) {
	own := tr.own
	if own == nil {
		return
	}
	ctx, cancel := context.WithCancel(r.pollCtx)
	own.cancel = cancel
	routes := routeTable{}
	for _, ssp := range tr.core.ssps {
		if r.c.jc.IsBroadcast(ssp) {
			routes[ssp] = tr
		}
	}
	for _, sys := range slices.Sorted(maps.Keys(own.cons)) {
		cons := own.cons[sys]
		own.done.Add(1)
		r.dispatch.Go(func() {
			defer own.done.Done()
			if err := r.dispatchLoop(ctx, sys, cons, routes); err != nil {
				r.fail(fmt.Errorf("task %s: %w", tr.core.name, err))
			}
		})
	}
}

// closeOwn stops the dispatchers of the task's own consumers, waits for them (at most
// task.shutdown.ms: a Poll that does not return is left behind) and closes the
// consumers.
func (r *run) closeOwn(tr *taskRunner) error {
	own := tr.own
	if own == nil {
		return nil
	}
	if own.cancel != nil {
		own.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.c.jc.ShutdownTimeout)
	defer cancel()
	if !waitFor(ctx, &own.done) {
		r.log.Warn("a consumer of the task's broadcast partitions did not stop polling within task.shutdown.ms; closing it anyway", "task", tr.core.name)
	}
	var errs []error
	for _, sys := range slices.Sorted(maps.Keys(own.cons)) {
		r.live.unwatch(own.cons[sys])
		if err := own.cons[sys].Close(); err != nil {
			errs = append(errs, fmt.Errorf("task %s: close the consumer of its broadcast partitions of system %s: %w", tr.core.name, sys, err))
		}
	}
	own.cons = nil
	return errors.Join(errs...)
}
