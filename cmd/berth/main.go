// Command berth is a Docker-compatible container engine.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/cmd/internal/hidden"
	"github.com/berth-dev/berth/internal/cli"
)

func init() { hidden.LockThreadIfNeeded(os.Args) }

func main() {
	// The start-path commands normally run from berth-shim; berth answers
	// them too when installed alone.
	if c, ok := hidden.Lookup(os.Args); ok {
		os.Exit(c.Main(os.Args[2:]))
	}
	if cli.IsRuntimeName(os.Args[0]) {
		// berth-runc: runc's command line over the built-in runtime,
		// which handles signals itself (run and exec relay them).
		os.Exit(cli.RuntimeMain(context.Background(), os.Args[0], os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
