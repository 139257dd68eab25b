// Command berth is a Docker-compatible container engine.
package main

import (
	"context"
	"os"
	"os/signal"
	goruntime "runtime"
	"syscall"

	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/runtime"
)

func init() {
	// The built-in runtime's init sets up namespaces, credentials and
	// seccomp per thread and must execve from that same thread: keep main
	// on the main thread from the start.
	if len(os.Args) > 1 && os.Args[1] == "_init" {
		goruntime.LockOSThread()
	}
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "_init":
			os.Exit(runtime.InitMain(os.Args[2:]))
		case "_exec":
			os.Exit(runtime.ExecMain(os.Args[2:]))
		}
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
