// Command berth is a Docker-compatible container engine.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/cmd/internal/hidden"
	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/runtime/ocicli"
)

func init() { hidden.LockThreadIfNeeded(os.Args) }

func main() {
	// The start-path commands normally run from berth-shim; berth answers
	// them too when installed alone.
	if c, ok := hidden.Lookup(os.Args); ok {
		os.Exit(c.Main(os.Args[2:]))
	}
	// runc's command line over the built-in runtime, for other engines
	// and OCI tools: as berth-runc (or runc), or as `berth runtime`. It
	// handles signals itself (run and exec relay them), and is no part
	// of the docker CLI (internal/cli).
	if ocicli.IsRuntimeName(os.Args[0]) {
		os.Exit(ocicli.Main(context.Background(), filepath.Base(os.Args[0]), os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == "runtime" {
		code = ocicli.Main(context.WithoutCancel(ctx), "berth runtime", os.Args[2:])
	} else {
		code = cli.Execute(ctx, os.Args[1:])
	}
	stop()
	os.Exit(code)
}
