package ocicli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// execFlags are exec's flags that build the process when --process is
// not given.
type execFlags struct {
	process, pidFile, consoleSocket, cwd, user string
	detach, tty, noNewPrivs                    bool
	env, caps, additionalGids                  []string
	preserveFDs                                int
}

// exec runs a process in a running container: from --process (a
// runtime-spec process JSON, as containerd's shim passes it) or from the
// arguments over the container's own process settings.
func (c *cli) exec(ctx context.Context, args []string) error {
	var f execFlags
	fs := c.flags("exec")
	fs.StringVarP(&f.process, "process", "p", "", "path to the process.json")
	fs.StringVar(&f.pidFile, "pid-file", "", "specify the file to write the process id to")
	fs.StringVar(&f.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive the pty master")
	fs.StringVar(&f.cwd, "cwd", "", "current working directory in the container")
	fs.StringVarP(&f.user, "user", "u", "", "UID (format: <uid>[:<gid>])")
	fs.BoolVarP(&f.detach, "detach", "d", false, "detach from the container's process")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.noNewPrivs, "no-new-privs", false, "set the no new privileges value for the process")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set environment variables")
	fs.StringArrayVarP(&f.caps, "cap", "c", nil, "add a capability to the bounding set for the process")
	fs.StringArrayVarP(&f.additionalGids, "additional-gids", "g", nil, "additional gids")
	fs.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors (not supported)")
	fs.String("apparmor", "", "set the apparmor profile for the process (not supported)")
	fs.String("process-label", "", "set the asm process label (not supported)")
	fs.Bool("ignore-paused", false, "allow exec in a paused container")
	rest, err := parse(fs, args, 1, -1)
	if err != nil {
		return err
	}
	id := rest[0]
	if f.preserveFDs != 0 {
		return fmt.Errorf("the berth runtime does not support --preserve-fds")
	}
	for _, name := range []string{"apparmor", "process-label"} {
		if fs.Changed(name) {
			return fmt.Errorf("the berth runtime does not support --%s", name)
		}
	}
	b := c.builtin()
	info, err := b.Info(ctx, id)
	if err != nil {
		return notExist(err)
	}
	if info.Status == specs.StateStopped {
		return fmt.Errorf("cannot exec in a stopped container")
	}
	var proc *specs.Process
	if f.process != "" {
		if proc, err = readProcess(f.process); err != nil {
			return err
		}
	} else {
		if len(rest) < 2 {
			return fmt.Errorf("exec: %q requires a minimum of 2 arguments", "exec")
		}
		base, err := runtime.ReadBundleProcess(info.Bundle)
		if err != nil {
			return err
		}
		if proc, err = f.build(base, rest[1:]); err != nil {
			return err
		}
	}
	pidFile, err := absPath(f.pidFile)
	if err != nil {
		return err
	}
	// Signals for the process go to the exec helper, which relays them.
	sigs := make(chan os.Signal, 32)
	if !f.detach {
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	cmd, err := b.Exec(ctx, id, proc, pidFile, c.containerIO(f.consoleSocket), f.detach)
	if err != nil || cmd == nil {
		return err
	}
	go relaySignals(sigs, cmd.Process.Pid)
	cmd.Wait()
	return exitCode(cmd.ProcessState.ExitCode())
}

func readProcess(path string) (*specs.Process, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p specs.Process
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("%s: args must not be empty", path)
	}
	return &p, nil
}

// build makes the process to exec from the container's own (base), as
// runc does: its environment, user and capabilities, with the flags'
// changes and args.
func (f *execFlags) build(base *specs.Process, args []string) (*specs.Process, error) {
	p := *base
	p.Args = args
	p.Terminal = f.tty
	p.ConsoleSize = nil
	p.Env = append(append([]string(nil), base.Env...), f.env...)
	if f.cwd != "" {
		p.Cwd = f.cwd
	}
	if f.noNewPrivs {
		p.NoNewPrivileges = true
	}
	if f.user != "" {
		uid, gid, hasGid := strings.Cut(f.user, ":")
		u, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parsing %s as int for uid failed: %w", uid, err)
		}
		p.User.UID = uint32(u)
		if hasGid {
			g, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parsing %s as int for gid failed: %w", gid, err)
			}
			p.User.GID = uint32(g)
		}
	}
	for _, g := range f.additionalGids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parsing %s as int for gid failed: %w", g, err)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
	}
	if len(f.caps) > 0 {
		caps := specs.LinuxCapabilities{}
		if base.Capabilities != nil {
			caps = *base.Capabilities
		}
		for _, cp := range f.caps {
			caps.Bounding = append(caps.Bounding, cp)
			caps.Effective = append(caps.Effective, cp)
			caps.Permitted = append(caps.Permitted, cp)
		}
		p.Capabilities = &caps
	}
	return &p, nil
}
