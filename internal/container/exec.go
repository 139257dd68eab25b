package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// Exec sessions, as Docker's API has them: create (recorded with the
// container) -> start (attached or detached, from any berth process) ->
// resize -> inspect. The container's monitor starts the process and is
// its parent: it holds its stdio (pipes, or a new pty with Tty), relays it
// to the attached client if there is one, and records its exit code. The
// calling berth process only talks to the monitor, so it may go away (even
// by SIGKILL) without touching the process; see monitor_exec.go.

// ExecConfig is what an exec runs: Docker's exec create request.
type ExecConfig struct {
	User         string   `json:"User"`
	Privileged   bool     `json:"Privileged"`
	Tty          bool     `json:"Tty"`
	AttachStdin  bool     `json:"AttachStdin"`
	AttachStdout bool     `json:"AttachStdout"`
	AttachStderr bool     `json:"AttachStderr"`
	DetachKeys   string   `json:"DetachKeys,omitempty"`
	Env          []string `json:"Env"`
	WorkingDir   string   `json:"WorkingDir"`
	Cmd          []string `json:"Cmd"`
}

// ExecSession is an exec's record, kept with its container
// (Internal.Execs).
type ExecSession struct {
	ID      string     `json:"id"`
	Config  ExecConfig `json:"config"`
	Created time.Time  `json:"created"`
	// Started is set once a start was accepted: a session runs once.
	Started bool `json:"started,omitempty"`
	Running bool `json:"running,omitempty"`
	Pid     int  `json:"pid,omitempty"`
	// ExitCode is nil until the process has exited (or failed to start:
	// then 126, or 127 when the command was not found).
	ExitCode *int      `json:"exitCode,omitempty"`
	Error    string    `json:"error,omitempty"`
	Ended    time.Time `json:"ended,omitzero"`
}

// ExecInfo is a session and the container it belongs to.
type ExecInfo struct {
	ExecSession
	ContainerID string
}

// maxEndedExecs is how many finished sessions a container keeps for
// inspection; older ones are dropped as new ones are created. (Docker
// keeps them in the daemon's memory until the container goes.)
const maxEndedExecs = 32

// ExecCreate records a new exec session in the running container ref and
// returns its ID.
func (s *Service) ExecCreate(ctx context.Context, ref string, cfg ExecConfig) (string, error) {
	tr := newTracer("exec")
	defer tr.mark("create session")
	c, err := s.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	if len(cfg.Cmd) == 0 {
		return "", errdefs.InvalidArgument("no exec command specified")
	}
	b := make([]byte, 32)
	rand.Read(b)
	id := hex.EncodeToString(b)
	_, err = s.update(ctx, c.ID, func(c *Container) error {
		if err := execAllowed(c); err != nil {
			return err
		}
		if c.Internal.Execs == nil {
			c.Internal.Execs = map[string]*ExecSession{}
		}
		pruneEndedExecs(c.Internal.Execs, maxEndedExecs-1)
		c.Internal.Execs[id] = &ExecSession{ID: id, Config: cfg, Created: time.Now().UTC()}
		c.ExecIDs = liveExecIDs(c.Internal.Execs)
		return nil
	})
	if err != nil {
		return "", err
	}
	s.Emit(ctx, ContainerEvent(c, "exec_create: "+joinArgs(cfg.Cmd), "execID", id))
	return id, nil
}

// execAllowed refuses an exec into a container that is not running, with
// Docker's messages.
func execAllowed(c *Container) error {
	if !c.State.Running || c.State.Restarting {
		return errdefs.Conflict("Container %s is not running", c.ID)
	}
	if c.State.Paused {
		return errdefs.Conflict("Container %s is paused, unpause the container before exec", c.ShortName())
	}
	return nil
}

// pruneEndedExecs drops the oldest finished sessions beyond keep.
func pruneEndedExecs(execs map[string]*ExecSession, keep int) {
	var ended []*ExecSession
	for _, e := range execs {
		if e.Started && !e.Running {
			ended = append(ended, e)
		}
	}
	if len(ended) <= keep {
		return
	}
	sort.Slice(ended, func(i, j int) bool { return ended[i].Ended.Before(ended[j].Ended) })
	for _, e := range ended[:len(ended)-keep] {
		delete(execs, e.ID)
	}
}

// liveExecIDs are Docker's ExecIDs: sessions created or running, not
// finished, oldest first.
func liveExecIDs(execs map[string]*ExecSession) []string {
	var live []*ExecSession
	for _, e := range execs {
		if !e.Started || e.Running {
			live = append(live, e)
		}
	}
	if len(live) == 0 {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Created.Before(live[j].Created) })
	ids := make([]string, len(live))
	for i, e := range live {
		ids[i] = e.ID
	}
	return ids
}

// endExecs records the end of the sessions still running (their container
// stopped under them: 137, killed with its pid namespace), drops those
// never started (they cannot start any more) and clears ExecIDs. Called
// in the monitor's exit record.
func endExecs(c *Container) {
	for id, e := range c.Internal.Execs {
		switch {
		case !e.Started:
			delete(c.Internal.Execs, id)
		case e.Running:
			code := 137
			e.Running, e.Pid, e.ExitCode, e.Ended = false, 0, &code, time.Now().UTC()
		}
	}
	c.ExecIDs = nil
}

// ExecInspect finds exec session id in any container.
func (s *Service) ExecInspect(ctx context.Context, id string) (*ExecInfo, error) {
	return s.findExec(ctx, id, "")
}

// findExec finds session id, in container hint first when given (a
// caller that created the session knows its container: no need to read
// every record).
func (s *Service) findExec(ctx context.Context, id, hint string) (*ExecInfo, error) {
	var all []*Container
	if hint != "" {
		if c, err := s.Get(ctx, hint); err == nil && c.Internal.Execs[id] != nil {
			all = []*Container{c}
		}
	}
	if all == nil {
		var err error
		if all, err = s.List(ctx); err != nil {
			return nil, err
		}
	}
	for _, c := range all {
		if e, ok := c.Internal.Execs[id]; ok {
			info := &ExecInfo{ExecSession: *e, ContainerID: c.ID}
			switch {
			case info.Running && !c.State.Running:
				// Its monitor died with the container (kill -9): the
				// process went with the pid namespace.
				info.Running, info.Pid = false, 0
			case !info.Running && info.ExitCode == nil && c.State.Running:
				// Started a moment ago, maybe: the monitor knows before
				// the record does.
				if pid := s.execPid(ctx, c.ID, id); pid > 0 {
					info.Running, info.Pid = true, pid
				}
			}
			return info, nil
		}
	}
	return nil, errNoSuchExec(id)
}

// execPid asks container ctr's monitor for the pid of session id's
// process: 0 when it does not run (or the monitor cannot be asked).
func (s *Service) execPid(ctx context.Context, ctr, id string) int {
	conn, err := s.dialMonitor(ctx, ctr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	if err := (&frameWriter{w: conn}).writeJSON(FrameExecState, execResizeMsg{ID: id}); err != nil {
		return 0
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	kind, payload, err := readFrame(conn, nil)
	if err != nil || kind != FrameReady {
		return 0
	}
	var r execReadyMsg
	if json.Unmarshal(payload, &r) != nil {
		return 0
	}
	return r.Pid
}

func errNoSuchExec(id string) error {
	return errdefs.NotFound("No such exec instance: %s", id)
}

// ExecStartOptions are how a session is started.
type ExecStartOptions struct {
	// Detach starts the process without attaching: Start returns once it
	// runs, and its output is discarded.
	Detach bool
	// ConsoleHeight and ConsoleWidth size a new terminal.
	ConsoleHeight, ConsoleWidth uint16
	// Container, when known, is the session's container (a hint: the
	// session is found without reading every container's record).
	Container string
}

// execStartMsg asks a monitor to start a session (FrameExecStart).
type execStartMsg struct {
	ID      string         `json:"id"`
	Process *specs.Process `json:"process"`
	Detach  bool           `json:"detach,omitempty"`
	Stdin   bool           `json:"stdin,omitempty"`
	Stdout  bool           `json:"stdout,omitempty"`
	Stderr  bool           `json:"stderr,omitempty"`
}

// execReadyMsg is the monitor's answer to execStartMsg.
type execReadyMsg struct {
	Pid      int    `json:"pid,omitempty"`
	Error    string `json:"error,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"` // 126/127: the command could not run
	Class    string `json:"class,omitempty"`    // the error's errdefs class
}

// execResizeMsg asks a monitor to resize a session's terminal.
type execResizeMsg struct {
	ID     string `json:"id"`
	Height uint16 `json:"h"`
	Width  uint16 `json:"w"`
}

// ExecStart starts session id through its container's monitor. Unless
// opts.Detach it returns the attachment to stream the process's I/O
// over; the process goes on (and its exit is recorded) if the caller
// closes it or goes away.
func (s *Service) ExecStart(ctx context.Context, id string, opts ExecStartOptions) (*Attachment, error) {
	tr := newTracer("exec")
	info, err := s.findExec(ctx, id, opts.Container)
	if err != nil {
		return nil, err
	}
	tr.mark("find session")
	if info.Started {
		if info.Running {
			return nil, errdefs.Conflict("Error: Exec command %s is already running", id)
		}
		return nil, errdefs.Conflict("Error: Exec command %s has already run", id)
	}
	c, err := s.lockedGet(ctx, info.ContainerID)
	if err != nil {
		return nil, err
	}
	if err := execAllowed(c); err != nil {
		return nil, err
	}
	proc, err := s.execProcess(ctx, c, info.Config, opts)
	if err != nil {
		var uerr *userError
		if errors.As(err, &uerr) {
			return nil, s.execStartFailed(ctx, c.ID, id, uerr.err)
		}
		return nil, err
	}
	tr.mark("process spec")
	conn, err := s.dialMonitor(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	att := newAttachment(conn, info.Config.Tty)
	msg := execStartMsg{ID: id, Process: proc, Detach: opts.Detach}
	if !opts.Detach {
		msg.Stdin, msg.Stdout, msg.Stderr = info.Config.AttachStdin, info.Config.AttachStdout, info.Config.AttachStderr
	}
	if err := att.fw.writeJSON(FrameExecStart, msg); err != nil {
		att.Close()
		return nil, err
	}
	ready, err := readExecReady(ctx, att)
	tr.mark("monitor started it")
	if err != nil {
		att.Close()
		return nil, fmt.Errorf("exec: the container's monitor did not answer: %w", err)
	}
	if ready.Error != "" {
		att.Close()
		return nil, ready.err()
	}
	s.Emit(ctx, ContainerEvent(c, "exec_start: "+joinArgs(info.Config.Cmd), "execID", id))
	if opts.Detach {
		att.Close()
		return nil, nil
	}
	return att, nil
}

// execProcess is the container's process (environment, user, limits,
// confinement) running cfg.
func (s *Service) execProcess(ctx context.Context, c *Container, cfg ExecConfig, opts ExecStartOptions) (*specs.Process, error) {
	proc, err := runtime.ReadBundleProcess(s.BundleDir(c.ID))
	if err != nil {
		return nil, err
	}
	proc.Args = slices.Clone(cfg.Cmd)
	proc.Terminal = cfg.Tty
	proc.ConsoleSize = nil
	if cfg.Tty && opts.ConsoleHeight > 0 && opts.ConsoleWidth > 0 {
		proc.ConsoleSize = &specs.Box{Height: uint(opts.ConsoleHeight), Width: uint(opts.ConsoleWidth)}
	}
	for _, kv := range cfg.Env {
		proc.Env = setEnvVar(proc.Env, kv)
	}
	if cfg.WorkingDir != "" {
		proc.Cwd = cfg.WorkingDir
	}
	if cfg.User != "" {
		u, err := s.resolveRunningUser(ctx, c, cfg.User)
		if err != nil {
			return nil, &userError{err}
		}
		proc.User = u
	}
	if cfg.Privileged {
		// The process keeps the container's bounding set; within it,
		// --privileged raises every capability to effective.
		if caps := proc.Capabilities; caps != nil {
			caps.Effective, caps.Permitted = caps.Bounding, caps.Bounding
		}
	}
	return proc, nil
}

// readExecReady reads the monitor's answer to a start.
func readExecReady(ctx context.Context, a *Attachment) (execReadyMsg, error) {
	var msg execReadyMsg
	stop := context.AfterFunc(ctx, func() { a.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		kind, payload, err := readFrame(a.conn, a.buf)
		if err != nil {
			if ctx.Err() != nil {
				return msg, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return msg, errMonitorGone
			}
			return msg, err
		}
		if kind == FrameReady {
			return msg, json.Unmarshal(payload, &msg)
		}
	}
}

// err rebuilds the error the monitor reported, with its class.
func (r execReadyMsg) err() error {
	if r.ExitCode != 0 {
		return &errdefs.ExitStatus{Code: r.ExitCode, Msg: r.Error}
	}
	for _, k := range errClasses {
		if k.name == r.Class {
			return k.make("%s", r.Error)
		}
	}
	return errors.New(r.Error)
}

var errClasses = []struct {
	name string
	err  error
	make func(string, ...any) error
}{
	{"conflict", errdefs.ErrConflict, errdefs.Conflict},
	{"invalid", errdefs.ErrInvalidArgument, errdefs.InvalidArgument},
	{"notfound", errdefs.ErrNotFound, errdefs.NotFound},
	{"unavailable", errdefs.ErrUnavailable, errdefs.Unavailable},
	{"notimplemented", errdefs.ErrNotImplemented, errdefs.NotImplemented},
}

// errClass names err's errdefs class for execReadyMsg.
func errClass(err error) string {
	for _, k := range errClasses {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// ExecResize sets the terminal size of running session id.
func (s *Service) ExecResize(ctx context.Context, id string, height, width uint16) error {
	info, err := s.ExecInspect(ctx, id)
	if err != nil {
		return err
	}
	// The record may not say yet that a session just started runs: the
	// monitor, which runs it, answers for sessions that did not end.
	if info.ExitCode != nil {
		return errdefs.Conflict("Exec %s is not running", id)
	}
	conn, err := s.dialMonitor(ctx, info.ContainerID)
	if err != nil {
		return err
	}
	defer conn.Close()
	fw := &frameWriter{w: conn}
	if err := fw.writeJSON(FrameExecResize, execResizeMsg{ID: id, Height: height, Width: width}); err != nil {
		return err
	}
	// The monitor answers once the size is set (or the session is gone).
	kind, payload, err := readFrame(conn, nil)
	if err != nil {
		return fmt.Errorf("exec resize: %w", err)
	}
	if kind == FrameReady && len(payload) > 0 {
		var r execReadyMsg
		if json.Unmarshal(payload, &r) == nil && r.Error != "" {
			return r.err()
		}
	}
	return nil
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
