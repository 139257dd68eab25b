package engine

import (
	"context"
	"strings"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/network"
)

// forwardWarnings are create's warnings for a container whose bridge
// network another firewall of the host blocks (network.ForwardWarnings),
// as Docker warns at create when IP forwarding is off. Containers on
// host, none or another's namespace have none.
func (e *Engine) forwardWarnings(ctx context.Context, c *container.Container) []string {
	if e.forwardCheck == nil {
		return nil
	}
	if !container.UsesNetworks(c.HostConfig.NetworkMode) {
		return nil
	}
	n, err := e.Networks.Get(ctx, c.HostConfig.NetworkMode)
	if err != nil {
		return nil
	}
	return e.forwardCheck(n)
}

// networkForwardWarning is network create's Warning (one string in
// Docker's API): the network's forward warnings, one a line.
func (e *Engine) networkForwardWarning(n *network.Network) string {
	if e.forwardCheck == nil {
		return ""
	}
	return strings.Join(e.forwardCheck(n), "\n")
}
