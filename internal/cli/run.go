package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
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
			req, err := f.request(cmd.Flags(), args)
			if err != nil {
				return err
			}
			if f.tty && !detach && f.interactive {
				if in, ok := a.stdin.(*os.File); !ok || !term.IsTerminal(in) {
					return cliError{errors.New("the input device is not a TTY")}
				}
			}
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			if err := checkCIDFile(f.cidfile, true); err != nil {
				return err
			}
			run := engine.RunRequest{ContainerCreateRequest: req, Attach: !detach, Created: func(id string) error { return writeCIDFile(f.cidfile, id) }}
			out, _ := a.stdout.(*os.File)
			if f.tty && out != nil {
				h, w := term.Size(out)
				run.ConsoleHeight, run.ConsoleWidth = uint(h), uint(w)
			}
			res, err := e.RunContainer(ctx, run)
			if err != nil {
				return a.noImage(req.Config.Image, f.pull, err)
			}
			if detach {
				fmt.Fprintln(a.stdout, res.ID)
				return nil
			}
			defer res.Attachment.Close()
			in, _ := a.stdin.(*os.File)
			return a.stream(ctx, res.Attachment, res.ID, res.Tty, f.interactive, sigProxy && !f.tty, in, out)
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
			ctx := cmd.Context()
			req, err := f.request(cmd.Flags(), args)
			if err != nil {
				return err
			}
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			if err := checkCIDFile(f.cidfile, false); err != nil {
				return err
			}
			res, err := e.CreateContainer(ctx, req)
			if err != nil {
				return a.noImage(req.Config.Image, f.pull, err)
			}
			if err := writeCIDFile(f.cidfile, res.ID); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, res.ID)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// noImage says docker's words about a missing image (berth cannot pull
// yet); other errors pass. With --pull never docker does not try to pull,
// so it only names the image.
func (a *app) noImage(ref, pull string, err error) error {
	if !errdefs.IsNotFound(err) || !strings.HasPrefix(err.Error(), "No such image: ") {
		return err
	}
	if named, perr := engine.ParseReference(ref); perr == nil {
		ref = engine.FamiliarString(named)
	}
	if pull == "never" {
		return errdefs.NotFound("No such image: %s", ref)
	}
	fmt.Fprintf(a.stderr, "Unable to find image '%s' locally\n", ref)
	return errdefs.NotFound("pull access denied for %s: berth cannot reach a registry yet; import or load the image first", ref)
}

// checkCIDFile refuses a --cidfile that exists, before anything is
// created: exit 125 for run, 1 for create, as docker's CLI.
func checkCIDFile(path string, run bool) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err == nil {
		err := fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", path)
		if run {
			return parseError{err}
		}
		return cliError{err}
	}
	return nil
}

func writeCIDFile(path, id string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(id), 0o644); err != nil {
		return fmt.Errorf("write container ID file: %w", err)
	}
	return nil
}

// stream runs an attachment until the container exits.
func (a *app) stream(ctx context.Context, att *engine.Attachment, id string, tty, stdin, proxySignals bool, in, out *os.File) error {
	e, err := a.engine(ctx)
	if err != nil {
		return err
	}
	var input io.Reader
	if stdin {
		input = a.stdin
	}
	if tty && in != nil && term.IsTerminal(in) && stdin {
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
				if tty && out != nil {
					h, w := term.Size(out)
					att.Resize(h, w)
				}
				continue
			}
			att.Signal(s.(syscall.Signal))
		}
	}()
	if tty && out != nil {
		if h, w := term.Size(out); h > 0 {
			att.Resize(h, w)
		}
	}
	// The stream outlives the SIGTERM that cancels ctx: it is proxied.
	exit, err := att.Stream(context.WithoutCancel(ctx), input, a.stdout, a.stderr)
	if err != nil {
		// The monitor vanished (killed?): report what the store says.
		got, gerr := e.ContainerInspect(ctx, id, false)
		if gerr != nil {
			return fmt.Errorf("lost the container's output stream: %w", err)
		}
		if got.State.Running {
			return fmt.Errorf("lost the container's output stream: %w", err)
		}
		return exitStatus(got.State.ExitCode)
	}
	if exit.Error != "" {
		fmt.Fprintf(a.stderr, "Error response from daemon: %s\n", exit.Error)
	}
	return exitStatus(exit.ExitCode)
}

func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return &errdefs.ExitStatus{Code: code}
}
