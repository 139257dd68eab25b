package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/container/logfile"
	"github.com/berth-dev/berth/internal/runtime"
)

// The container use cases of Docker's API past create and inspect:
// POST /containers/{id}/start, stop, restart, kill, pause, unpause,
// rename, wait, attach, DELETE /containers/{id}, GET logs, top, stats.
// The container service does the work and emits Docker's events; these
// give the front ends Docker's requests and results.

// DefaultRuntime is the OCI runtime containers run with unless one is named.
const DefaultRuntime = runtime.DefaultName

// ContainerStartRequest is POST /containers/{id}/start, with what `docker
// start -a` (an attach before the start) adds.
type ContainerStartRequest struct {
	// Attach returns the container's stdio, attached before it starts.
	Attach bool
	// ConsoleHeight and ConsoleWidth size the terminal of a Tty container
	// (ignored for others).
	ConsoleHeight, ConsoleWidth uint
}

// ContainerStartResult is a started container; Attachment is set when
// the request asked to attach, and the caller closes it.
type ContainerStartResult struct {
	ID             string
	Tty, OpenStdin bool
	Attachment     *Attachment
}

// ContainerStart starts a created or stopped container (a running one is
// Docker's no-op).
func (e *Engine) ContainerStart(ctx context.Context, ref string, req ContainerStartRequest) (*ContainerStartResult, error) {
	if !req.Attach {
		_, err := e.Containers.Start(ctx, ref, container.StartOptions{})
		return &ContainerStartResult{}, err
	}
	c, err := e.Containers.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	so := container.StartOptions{Attach: true}
	if c.Config.Tty {
		so.ConsoleHeight, so.ConsoleWidth = req.ConsoleHeight, req.ConsoleWidth
	}
	att, err := e.Containers.Start(ctx, c.ID, so)
	if err != nil {
		return nil, err
	}
	return &ContainerStartResult{ID: c.ID, Tty: c.Config.Tty, OpenStdin: c.Config.OpenStdin, Attachment: att}, nil
}

// ContainerStopRequest is the query of POST /containers/{id}/stop and
// /restart: Timeout in seconds (nil: the container's StopTimeout, else
// 10), Signal (empty: the container's StopSignal).
type ContainerStopRequest struct {
	Timeout *int
	Signal  string
}

// ContainerStop stops a running container.
func (e *Engine) ContainerStop(ctx context.Context, ref string, req ContainerStopRequest) error {
	return e.Containers.Stop(ctx, ref, req.Timeout, req.Signal)
}

// ContainerRestart stops (if running) and starts a container.
func (e *Engine) ContainerRestart(ctx context.Context, ref string, req ContainerStopRequest) error {
	return e.Containers.Restart(ctx, ref, req.Timeout, req.Signal)
}

// CheckSignal refuses a signal name or number the engine would not send
// ("TERM", "SIGTERM", "9", "RTMIN+3"...), so that a front end can refuse
// it once rather than once per container.
func CheckSignal(sig string) error {
	_, err := container.ParseSignal(sig)
	return err
}

// ContainerKill is POST /containers/{id}/kill: signal by name or number
// (empty: SIGKILL).
func (e *Engine) ContainerKill(ctx context.Context, ref, signal string) error {
	if signal == "" {
		signal = "KILL"
	}
	sig, err := container.ParseSignal(signal)
	if err != nil {
		return err
	}
	return e.Containers.Kill(ctx, ref, sig)
}

// ContainerRemoveRequest is the query of DELETE /containers/{id}.
type ContainerRemoveRequest struct {
	Force         bool // kill a running container first
	RemoveVolumes bool // remove its anonymous volumes too
	RemoveLink    bool // legacy links: berth has none
}

// ContainerRemove removes a container.
func (e *Engine) ContainerRemove(ctx context.Context, ref string, req ContainerRemoveRequest) error {
	return e.Containers.Remove(ctx, ref, container.RemoveOptions{Force: req.Force, Volumes: req.RemoveVolumes})
}

// ContainerRename is POST /containers/{id}/rename.
func (e *Engine) ContainerRename(ctx context.Context, ref, newName string) error {
	return e.Containers.Rename(ctx, ref, newName)
}

// ContainerPause is POST /containers/{id}/pause.
func (e *Engine) ContainerPause(ctx context.Context, ref string) error {
	return e.Containers.Pause(ctx, ref)
}

// ContainerUnpause is POST /containers/{id}/unpause.
func (e *Engine) ContainerUnpause(ctx context.Context, ref string) error {
	return e.Containers.Unpause(ctx, ref)
}

// ContainerWaitResponse is Docker's answer to POST /containers/{id}/wait.
type ContainerWaitResponse struct {
	StatusCode int `json:"StatusCode"`
}

// ContainerWait blocks until the container is not running and returns
// its exit code (0 for a container removed on exit).
func (e *Engine) ContainerWait(ctx context.Context, ref string) (ContainerWaitResponse, error) {
	code, err := e.Containers.Wait(ctx, ref)
	return ContainerWaitResponse{StatusCode: code}, err
}

// ContainerAttachRequest is the query of POST /containers/{id}/attach.
// Stdin is attached only when the container keeps it open (OpenStdin),
// as Docker's daemon does.
type ContainerAttachRequest struct {
	Stdin, Stdout, Stderr bool
}

// ContainerAttachResult is an attachment to a running container, with
// what a front end needs to relay it: Stdin tells whether stdin was
// attached. The caller closes Attachment.
type ContainerAttachResult struct {
	ID         string
	Tty, Stdin bool
	Attachment *Attachment
}

// ContainerAttach attaches to a running container's stdio.
func (e *Engine) ContainerAttach(ctx context.Context, ref string, req ContainerAttachRequest) (*ContainerAttachResult, error) {
	c, err := e.Containers.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	stdin := req.Stdin && c.Config.OpenStdin
	att, err := e.Containers.Attach(ctx, c.ID, container.AttachOptions{Stdin: stdin, Stdout: req.Stdout, Stderr: req.Stderr})
	if err != nil {
		return nil, err
	}
	return &ContainerAttachResult{ID: c.ID, Tty: c.Config.Tty, Stdin: stdin, Attachment: att}, nil
}

// ContainerLogsRequest is the query of GET /containers/{id}/logs, parsed:
// Tail < 0 is all lines; zero Since and Until are no bound.
type ContainerLogsRequest struct {
	Follow     bool
	Timestamps bool
	Tail       int
	Since      time.Time
	Until      time.Time
}

// ContainerLogs copies the container's log to stdout and stderr, line by
// line as it was written, each prefixed with its time (RFC 3339, UTC,
// nanoseconds) with Timestamps; with Follow until the container stops
// or ctx ends.
func (e *Engine) ContainerLogs(ctx context.Context, ref string, req ContainerLogsRequest, stdout, stderr io.Writer) error {
	opts := container.LogsOptions{Follow: req.Follow, Tail: req.Tail, Since: req.Since, Until: req.Until}
	return e.Containers.Logs(ctx, ref, opts, func(en logfile.Entry) error {
		w := stdout
		if en.Stream == "stderr" {
			w = stderr
		}
		if req.Timestamps {
			fmt.Fprintf(w, "%s ", en.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"))
		}
		_, err := w.Write(en.Log)
		return err
	})
}

// ContainerTopResponse is Docker's answer to GET /containers/{id}/top.
type ContainerTopResponse struct {
	Titles    []string   `json:"Titles"`
	Processes [][]string `json:"Processes"`
}

// ContainerTop lists the processes of a running container, as ps with
// psArgs (empty: "-ef") shows them.
func (e *Engine) ContainerTop(ctx context.Context, ref string, psArgs []string) (*ContainerTopResponse, error) {
	titles, procs, err := e.Containers.Top(ctx, ref, psArgs)
	if err != nil {
		return nil, err
	}
	return &ContainerTopResponse{Titles: titles, Processes: procs}, nil
}

// ContainerStats is one reading of a container's resource use (GET
// /containers/{id}/stats?stream=false): CPU time, memory, network and
// block I/O, pids. CPU % is a rate: CPUPercent compares two readings.
type ContainerStats = container.Stats

// ContainerStatsOnce takes one reading of a running container's use.
func (e *Engine) ContainerStatsOnce(ctx context.Context, ref string) (*ContainerStats, error) {
	return e.Containers.Stats(ctx, ref)
}

// CPUPercent is the CPU use between two readings, as Docker's CLI
// computes it (prev nil: since the container started).
func CPUPercent(prev, cur *ContainerStats) float64 { return container.CPUPercent(prev, cur) }

// SystemRestore starts, at boot, the containers whose restart policy
// asks for it (berth has no daemon whose start would do it) and returns
// their IDs.
func (e *Engine) SystemRestore(ctx context.Context) ([]string, error) {
	// Networks first: after a reboot or a crash, addresses and kernel
	// state of containers that no longer run are released, and the
	// recorded networks are put back.
	nerr := e.sweepNetworks(ctx)
	started, err := e.Containers.Restore(ctx)
	return started, errors.Join(err, nerr)
}
