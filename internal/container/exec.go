package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// ExecOptions are `exec` flags.
type ExecOptions struct {
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Tty        bool
	Privileged bool
	Detach     bool
}

// Exec runs a process in a running container and connects it to streams.
//
// The process never gets the caller's descriptors or terminal: without a
// TTY it gets pipes that berth relays to and from streams (see
// ExecProcess); with opts.Tty a new pty, which the runtime's helper (a
// host process, never the container's) serves on the caller's files; with
// opts.Detach /dev/null, and streams are ignored. The process always runs
// in a session of its own.
//
// Unless opts.Detach the caller must Wait for the returned process; ctx
// bounds only the start.
func (s *Service) Exec(ctx context.Context, ref string, opts ExecOptions, streams ExecStreams) (*ExecProcess, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, errdefs.Conflict("container %s is not running", c.ID)
	}
	if c.State.Paused {
		return nil, errdefs.Conflict("container %s is paused, unpause the container before exec", c.ID)
	}
	if len(opts.Cmd) == 0 {
		return nil, errdefs.InvalidArgument("no exec command specified")
	}
	proc, err := runtime.ReadBundleProcess(s.BundleDir(c.ID))
	if err != nil {
		return nil, err
	}
	proc.Args = opts.Cmd
	proc.Terminal = opts.Tty
	if !opts.Tty {
		proc.ConsoleSize = nil
	}
	for _, kv := range opts.Env {
		proc.Env = setEnvVar(proc.Env, kv)
	}
	if opts.WorkingDir != "" {
		proc.Cwd = opts.WorkingDir
	}
	if opts.User != "" {
		u, err := s.resolveRunningUser(ctx, c, opts.User)
		if err != nil {
			return nil, err
		}
		proc.User = u
	}
	if opts.Privileged {
		// The process keeps the container's bounding set; within it,
		// --privileged raises every capability to effective.
		if caps := proc.Capabilities; caps != nil {
			caps.Effective, caps.Permitted = caps.Bounding, caps.Bounding
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	execID := hex.EncodeToString(b)
	var ep *ExecProcess
	var rio runtime.IO // all nil: /dev/null, opened by berth, for -d
	if !opts.Detach {
		ep, rio, err = newExecRelay(streams, opts.Tty)
		if err != nil {
			return nil, err
		}
	}
	pidFile := filepath.Join(s.BundleDir(c.ID), "exec-"+execID+".pid")
	cmd, err := s.runtimeFor(c).Exec(ctx, c.ID, proc, pidFile, rio, opts.Detach)
	os.Remove(pidFile)
	if ep != nil {
		ep.started(cmd, err == nil)
	}
	if err != nil {
		return nil, err
	}
	s.Emit(ctx, Event{Type: "container", Action: "exec_start: " + joinArgs(opts.Cmd), ID: c.ID, Attributes: map[string]string{"name": c.ShortName(), "image": c.Config.Image, "execID": execID}})
	if ep == nil {
		return &ExecProcess{ID: execID}, nil
	}
	ep.ID = execID
	return ep, nil
}

func joinArgs(a []string) string {
	out := ""
	for i, s := range a {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
