package engine

import (
	"context"
	"io"
	"syscall"

	"github.com/berth-dev/berth/internal/container"
)

// Exec sessions, shaped as Docker's API has them: POST
// /containers/{id}/exec (ExecCreate), /exec/{id}/start (ExecStart),
// /exec/{id}/resize (ExecResize), GET /exec/{id}/json (ExecInspect). A
// session lives with its container; its container's monitor runs the
// process, so it can be started, resized and inspected from any berth
// process.

// ExecCreateRequest is Docker's exec create body, with the container.
type ExecCreateRequest struct {
	Container    string   `json:"-"`
	User         string   `json:"User,omitempty"`
	Privileged   bool     `json:"Privileged,omitempty"`
	Tty          bool     `json:"Tty,omitempty"`
	AttachStdin  bool     `json:"AttachStdin,omitempty"`
	AttachStdout bool     `json:"AttachStdout,omitempty"`
	AttachStderr bool     `json:"AttachStderr,omitempty"`
	DetachKeys   string   `json:"DetachKeys,omitempty"`
	Env          []string `json:"Env,omitempty"`
	WorkingDir   string   `json:"WorkingDir,omitempty"`
	Cmd          []string `json:"Cmd"`
}

// ExecCreateResponse is Docker's answer to an exec create.
type ExecCreateResponse struct {
	ID string `json:"Id"`
}

// ExecStartRequest is Docker's exec start body.
type ExecStartRequest struct {
	// Container, when known, is the session's container: a hint that
	// spares reading every container's record to find the session.
	Container string `json:"-"`
	Detach    bool   `json:"Detach"`
	Tty       bool   `json:"Tty"`
	// ConsoleSize is the initial terminal size, [height, width].
	ConsoleSize *[2]uint `json:"ConsoleSize,omitempty"`
}

// ExecInspectResponse is Docker's exec inspect document.
type ExecInspectResponse struct {
	ID            string            `json:"ID"`
	Running       bool              `json:"Running"`
	ExitCode      *int              `json:"ExitCode"`
	ProcessConfig ExecProcessConfig `json:"ProcessConfig"`
	OpenStdin     bool              `json:"OpenStdin"`
	OpenStderr    bool              `json:"OpenStderr"`
	OpenStdout    bool              `json:"OpenStdout"`
	CanRemove     bool              `json:"CanRemove"`
	ContainerID   string            `json:"ContainerID"`
	DetachKeys    string            `json:"DetachKeys"`
	Pid           int               `json:"Pid"`
}

// ExecProcessConfig is the process part of ExecInspectResponse.
type ExecProcessConfig struct {
	Tty        bool     `json:"tty"`
	Entrypoint string   `json:"entrypoint"`
	Arguments  []string `json:"arguments"`
	Privileged *bool    `json:"privileged,omitempty"`
	User       string   `json:"user,omitempty"`
}

// ExecStream is a started, attached session: its I/O until the process
// exits. Closing it early leaves the process running.
type ExecStream interface {
	// Stream copies stdin (nil: none) to the process and its output to
	// stdout and stderr (a terminal's goes to stdout) until it exits,
	// and returns its exit code.
	Stream(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// Resize sets the size of the session's terminal.
	Resize(height, width uint16) error
	// Signal sends sig to the process.
	Signal(sig syscall.Signal) error
	Close() error
}

// ExecCreate records a new exec session in a running container.
func (e *Engine) ExecCreate(ctx context.Context, req ExecCreateRequest) (ExecCreateResponse, error) {
	id, err := e.Containers.ExecCreate(ctx, req.Container, container.ExecConfig{
		User: req.User, Privileged: req.Privileged, Tty: req.Tty,
		AttachStdin: req.AttachStdin, AttachStdout: req.AttachStdout, AttachStderr: req.AttachStderr,
		DetachKeys: req.DetachKeys, Env: req.Env, WorkingDir: req.WorkingDir, Cmd: req.Cmd,
	})
	return ExecCreateResponse{ID: id}, err
}

// ExecStart starts session id. Detached, it returns (nil, nil) once the
// process runs; else the stream of its I/O.
func (e *Engine) ExecStart(ctx context.Context, id string, req ExecStartRequest) (ExecStream, error) {
	opts := container.ExecStartOptions{Detach: req.Detach, Container: req.Container}
	if req.ConsoleSize != nil {
		opts.ConsoleHeight, opts.ConsoleWidth = uint16(req.ConsoleSize[0]), uint16(req.ConsoleSize[1])
	}
	att, err := e.Containers.ExecStart(ctx, id, opts)
	if err != nil || att == nil {
		return nil, err
	}
	return execStream{att}, nil
}

type execStream struct{ *container.Attachment }

func (s execStream) Stream(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	exit, err := s.Attachment.Stream(ctx, stdin, stdout, stderr)
	if err != nil {
		return 0, err
	}
	return exit.ExitCode, nil
}

// ExecResize sets the terminal size of running session id.
func (e *Engine) ExecResize(ctx context.Context, id string, height, width uint) error {
	return e.Containers.ExecResize(ctx, id, uint16(height), uint16(width))
}

// ExecInspect reports session id.
func (e *Engine) ExecInspect(ctx context.Context, id string) (*ExecInspectResponse, error) {
	info, err := e.Containers.ExecInspect(ctx, id)
	if err != nil {
		return nil, err
	}
	cfg := info.Config
	r := &ExecInspectResponse{
		ID: info.ID, Running: info.Running, ExitCode: info.ExitCode, Pid: info.Pid,
		OpenStdin: cfg.AttachStdin, OpenStdout: cfg.AttachStdout, OpenStderr: cfg.AttachStderr,
		ContainerID: info.ContainerID, DetachKeys: cfg.DetachKeys,
		ProcessConfig: ExecProcessConfig{Tty: cfg.Tty, User: cfg.User, Arguments: []string{}},
	}
	if len(cfg.Cmd) > 0 {
		r.ProcessConfig.Entrypoint, r.ProcessConfig.Arguments = cfg.Cmd[0], append(r.ProcessConfig.Arguments, cfg.Cmd[1:]...)
	}
	if cfg.Privileged {
		r.ProcessConfig.Privileged = &cfg.Privileged
	}
	return r, nil
}
