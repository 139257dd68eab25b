package cli

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

func (a *app) portCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  rangeArgs(1, 2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			req := engine.PortRequest{Container: args[0]}
			if len(args) == 2 {
				req.PrivatePort = args[1]
			}
			ports, err := e.ContainerPorts(ctx, req)
			var np *engine.ErrNoPublicPort
			if errors.As(err, &np) || errdefs.IsInvalidArgument(err) {
				return cliError{fmt.Errorf("Error: %w", err)} // docker's CLI finds these itself
			} else if err != nil {
				return err
			}
			for _, p := range ports {
				addr := net.JoinHostPort(p.HostIP, p.HostPort)
				if req.PrivatePort != "" {
					fmt.Fprintln(a.stdout, addr)
				} else {
					fmt.Fprintf(a.stdout, "%s -> %s\n", p.PrivatePort, addr)
				}
			}
			return nil
		}),
	}
}
