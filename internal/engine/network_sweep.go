package engine

import (
	"context"
	"fmt"
)

// sweepNetworks releases what dead containers hold on networks
// (addresses, endpoints, names) and has the dataplane reconcile the
// kernel to the recorded networks and endpoints. Containers are judged as
// reads observe them: one whose monitor died is not running.
func (e *Engine) sweepNetworks(ctx context.Context) error {
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, c := range ctrs {
		running[c.ID] = c.State.Running || c.State.Restarting || c.State.Paused
	}
	if err := e.Attacher.Sweep(ctx, func(id string) bool { return running[id] }); err != nil {
		return fmt.Errorf("network sweep: %w", err)
	}
	return nil
}
