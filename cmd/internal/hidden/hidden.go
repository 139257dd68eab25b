// Package hidden is the table of berth's hidden commands: the processes
// berth starts itself, which users never type.
//
//	command       binary                 runs
//	_init         berth-shim (or berth)  a container's first process under the built-in runtime, until it executes the command
//	_exec         berth-shim (or berth)  the host-side parent of a process exec'd by the built-in runtime
//	_monitor      berth-shim (or berth)  one per container: its stdio, log, exit status and restart policy
//	runtime       berth                  runc's command line over the built-in runtime (also as argv[0] berth-runc)
//
// The first three are the container start path: every `run` starts them,
// and Go runs the package initialisation of everything linked into a
// binary in every process started from it. They therefore run from
// berth-shim, a second binary installed next to berth that links only
// what they need (runtime, container, metadata), not the CLI, the engine,
// the Docker API types, nor what the registry client, API server,
// networking and builder will bring. A CI test (cmd/berth-shim's
// budget_test.go) holds its package-init time and its dependency list to
// a budget. berth answers them too, so that a berth binary installed
// alone still works (more slowly).
package hidden

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"syscall"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/volume"
)

// Command is one hidden command.
type Command struct {
	Name string
	// LockThread keeps main on the process's main thread from package
	// init on: the built-in init sets up namespaces, credentials and
	// seccomp per thread and must execve from that same thread.
	LockThread bool
	Main       func(args []string) int
}

// StartPath lists the hidden commands of the container start path.
func StartPath() []Command {
	return []Command{
		{Name: "_init", LockThread: true, Main: runtime.InitMain},
		{Name: "_exec", Main: runtime.ExecMain},
		{Name: "_monitor", Main: monitorMain},
	}
}

// Lookup finds the start-path command args[1] names.
func Lookup(args []string) (Command, bool) {
	if len(args) < 2 {
		return Command{}, false
	}
	for _, c := range StartPath() {
		if c.Name == args[1] {
			return c, true
		}
	}
	return Command{}, false
}

// LockThreadIfNeeded is for a main package's init: it locks the main
// thread for a command that needs it.
func LockThreadIfNeeded(args []string) {
	if c, ok := Lookup(args); ok && c.LockThread {
		goruntime.LockOSThread()
	}
}

// monitorMain is `_monitor [--root DIR] [--runroot DIR] [--runtime NAME]
// [--debug] [--await] [--config-file FILE] [--default-bind-ip IP] ID`, as container.Service starts it, with fd 3 the
// socket to the process that started it.
func monitorMain(args []string) int {
	var o container.Options
	fs := flag.NewFlagSet("_monitor", flag.ContinueOnError)
	fs.StringVar(&o.Root, "root", "/var/lib/berth", "")
	fs.StringVar(&o.RunRoot, "runroot", "/run/berth", "")
	fs.StringVar(&o.Runtime, "runtime", runtime.DefaultName, "")
	fs.BoolVar(&o.Debug, "debug", false, "")
	await := fs.Bool("await", false, "")
	var pub network.PublishConfig
	fs.StringVar(&pub.File, "config-file", "", "")
	fs.StringVar(&pub.IP, "default-bind-ip", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: _monitor [--root DIR] [--runroot DIR] [--runtime NAME] [--await] ID")
		return 2
	}
	starter := os.NewFile(3, "attach")
	self, err := os.Executable()
	if err != nil {
		return 1
	}
	o.Self = self
	ctx := context.Background()
	svc, err := openServices(ctx, o, pub)
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		return 1
	}
	// The monitor must not die with the terminal or the CLI that started it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP)
	if err := svc.RunMonitor(ctx, fs.Arg(0), starter, *await); err != nil {
		return 1
	}
	return 0
}

// openServices opens the stores a monitor works on; the state exists
// already (the CLI that started the monitor made it).
func openServices(ctx context.Context, o container.Options, pub network.PublishConfig) (*container.Service, error) {
	meta, err := metadata.Open(ctx, o.Root)
	if err != nil {
		return nil, err
	}
	cs, err := content.New(filepath.Join(o.Root, "content"))
	if err != nil {
		return nil, err
	}
	snaps, err := snapshot.New(o.Root)
	if err != nil {
		return nil, err
	}
	images := image.NewStore(meta, cs, snaps, container.Users{})
	// The monitor attaches its container to its networks before each
	// run and holds its port reservations and DNS server while it runs.
	nets := network.NewService(meta, o.Root)
	nets.SetPublishConfig(pub)
	att := network.Default(nets, o.RunRoot)
	o.Network, o.MonitorArgs = att, network.MonitorArgs(pub)
	svc := container.NewService(o, meta, images, volume.NewStore(o.Root, meta, container.Users{}))
	att.SetEvents(svc) // network connect/disconnect as endpoints join and leave
	return svc, nil
}
