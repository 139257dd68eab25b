package engine

import (
	"context"

	"github.com/berth-dev/berth/internal/container"
)

// Attachment is a started container's attached stdio: Stream it until the
// container exits; Resize and Signal reach the container meanwhile.
type Attachment = container.Attachment

// RunRequest is `docker run`: a container to create and how to start it.
type RunRequest struct {
	ContainerCreateRequest
	// Attach returns the container's stdio, attached before it starts so
	// that nothing is missed; otherwise the container runs detached.
	Attach bool
	// ConsoleHeight and ConsoleWidth size the terminal of a Tty container.
	ConsoleHeight, ConsoleWidth uint
	// Created, when set, is called once the container exists and before
	// it starts (the CLI writes --cidfile there); an error stops the run
	// and leaves the container created, as docker's CLI does.
	Created func(id string) error
}

// RunResult is a container that run started.
type RunResult struct {
	ID string
	// Tty and OpenStdin are the container's, for the front end's stream.
	Tty, OpenStdin bool
	// Attachment is set when the request asked to attach; the caller
	// closes it.
	Attachment *Attachment
	// Warnings are create's (ContainerCreateResponse.Warnings).
	Warnings []string
}

// RunContainer creates and starts a container: docker run's sequence,
// shared by the CLI and the API server. A request that fails validation
// leaves nothing; a start that fails leaves the container created, as
// docker does, except with AutoRemove (--rm), where it is removed. The
// container's exit (and the --rm removal, done by its monitor) is seen
// through the attachment.
func (e *Engine) RunContainer(ctx context.Context, req RunRequest) (*RunResult, error) {
	// Judge the request before any process starts.
	if err := validateCreate(&req.ContainerCreateRequest, hostLimits()); err != nil {
		return nil, err
	}
	// The container's monitor starts first: its process start-up
	// overlaps creating the container and mounting its files. It exits,
	// having touched nothing, if it is closed without a container.
	req.id, req.startPending = container.NewID(), true
	monitor, err := e.Containers.PrestartMonitor(req.id)
	if err != nil {
		return nil, err
	}
	defer monitor.Close()
	c, err := e.createContainer(ctx, req.ContainerCreateRequest)
	if err != nil {
		return nil, err
	}
	warnings := e.forwardWarnings(ctx, c)
	if req.Created != nil {
		if err := req.Created(c.ID); err != nil {
			return nil, err
		}
	}
	att, err := e.Containers.Start(ctx, c.ID, container.StartOptions{
		Attach: req.Attach, Monitor: monitor, ConsoleHeight: req.ConsoleHeight, ConsoleWidth: req.ConsoleWidth,
	})
	if err != nil {
		return nil, err
	}
	return &RunResult{ID: c.ID, Tty: c.Config.Tty, OpenStdin: c.Config.OpenStdin, Attachment: att, Warnings: warnings}, nil
}
