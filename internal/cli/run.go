package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) runCommand() *cobra.Command {
	var f createFlags
	var detach, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts, err := f.options(cmd.Flags(), args)
			if err != nil {
				return err
			}
			if f.tty && !detach && f.interactive {
				if in, ok := a.stdin.(*os.File); !ok || !term.IsTerminal(in) {
					return errdefs.InvalidArgument("the input device is not a TTY")
				}
			}
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			// The container's monitor starts first: its process start-up
			// overlaps creating the container and mounting its files.
			opts.ID = container.NewID()
			opts.StartPending = true
			monitor, err := e.Containers.PrestartMonitor(opts.ID)
			if err != nil {
				return err
			}
			defer monitor.Close()
			c, err := a.createContainer(ctx, opts, f.cidfile)
			if err != nil {
				return err
			}
			if detach {
				if _, err := e.Containers.Start(ctx, c.ID, container.StartOptions{Monitor: monitor}); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, c.ID)
				return nil
			}
			return a.startAttached(ctx, c, f.interactive, sigProxy && !f.tty, monitor)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (a *app) createCommand() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd.Flags(), args)
			if err != nil {
				return err
			}
			c, err := a.createContainer(cmd.Context(), opts, f.cidfile)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, c.ID)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// createContainer creates the container, saying docker's words about a
// missing image first.
func (a *app) createContainer(ctx context.Context, opts container.CreateOptions, cidfile string) (*container.Container, error) {
	e, err := a.engine(ctx)
	if err != nil {
		return nil, err
	}
	if cidfile != "" {
		if _, err := os.Stat(cidfile); err == nil {
			return nil, errdefs.InvalidArgument("container ID file found, make sure the other container isn't running or delete %s", cidfile)
		}
	}
	c, err := e.Containers.Create(ctx, opts)
	if err != nil {
		if errdefs.IsNotFound(err) && strings.HasPrefix(err.Error(), "No such image: ") {
			ref := opts.Config.Image
			if named, perr := image.ParseReference(ref); perr == nil {
				ref = image.FamiliarString(named.String())
			}
			fmt.Fprintf(a.stderr, "Unable to find image '%s' locally\n", ref)
			return nil, errdefs.NotFound("pull access denied for %s: berth cannot reach a registry yet; import or load the image first", ref)
		}
		return nil, err
	}
	if cidfile != "" {
		if err := os.WriteFile(cidfile, []byte(c.ID), 0o644); err != nil {
			return nil, fmt.Errorf("write container ID file: %w", err)
		}
	}
	e.Containers.Emit(ctx, container.Event{Type: "container", Action: "create", ID: c.ID, Attributes: map[string]string{"name": c.ShortName(), "image": c.Config.Image}})
	return c, nil
}

// startAttached starts c with its streams attached to the terminal and
// returns its exit status as an error (nil for 0).
func (a *app) startAttached(ctx context.Context, c *container.Container, stdin, proxySignals bool, monitor *container.PendingMonitor) error {
	e, err := a.engine(ctx)
	if err != nil {
		return err
	}
	so := container.StartOptions{Attach: true, Monitor: monitor}
	in, _ := a.stdin.(*os.File)
	out, _ := a.stdout.(*os.File)
	if c.Config.Tty && out != nil {
		h, w := term.Size(out)
		so.ConsoleHeight, so.ConsoleWidth = uint(h), uint(w)
	}
	att, err := e.Containers.Start(ctx, c.ID, so)
	if err != nil {
		return err
	}
	defer att.Close()
	return a.stream(ctx, att, c, stdin, proxySignals, in, out)
}

// stream runs an attachment until the container exits.
func (a *app) stream(ctx context.Context, att *container.Attachment, c *container.Container, stdin, proxySignals bool, in, out *os.File) error {
	e, err := a.engine(ctx)
	if err != nil {
		return err
	}
	var input io.Reader
	if stdin {
		input = a.stdin
	}
	if c.Config.Tty && in != nil && term.IsTerminal(in) && stdin {
		restore, err := term.MakeRaw(in)
		if err == nil {
			defer restore()
		}
	}
	// Signals: resize follows the terminal; with sig-proxy, the rest go to
	// the container (docker's --sig-proxy, on by default without a TTY).
	sigs := make(chan os.Signal, 8)
	notify := []os.Signal{syscall.SIGWINCH}
	if proxySignals {
		notify = append(notify, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	}
	signal.Notify(sigs, notify...)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				if c.Config.Tty && out != nil {
					h, w := term.Size(out)
					att.Resize(h, w)
				}
				continue
			}
			att.Signal(s.(syscall.Signal))
		}
	}()
	if c.Config.Tty && out != nil {
		if h, w := term.Size(out); h > 0 {
			att.Resize(h, w)
		}
	}
	// The stream outlives the SIGTERM that cancels ctx: it is proxied.
	exit, err := att.Stream(context.WithoutCancel(ctx), input, a.stdout, a.stderr)
	if err != nil {
		// The monitor vanished (killed?): report what the store says.
		got, gerr := e.Containers.Get(ctx, c.ID)
		if gerr != nil {
			return fmt.Errorf("lost the container's output stream: %w", err)
		}
		if got.State.Running {
			return fmt.Errorf("lost the container's output stream: %w", err)
		}
		return exitStatus(got.State.ExitCode)
	}
	if exit.Error != "" {
		fmt.Fprintf(a.stderr, "Error: %s\n", exit.Error)
	}
	return exitStatus(exit.ExitCode)
}

func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return &errdefs.ExitStatus{Code: code}
}
