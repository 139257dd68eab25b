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
			if err := a.pullAlways(ctx, e, req.Config.Image, f.pull, f.platform); err != nil {
				return err
			}
			res, err := e.RunContainer(ctx, run)
			if err != nil {
				if err = a.pullMissing(ctx, e, req.Config.Image, f.pull, f.platform, err); err != nil {
					return err
				}
				if res, err = e.RunContainer(ctx, run); err != nil {
					return err
				}
			}
			printWarnings(a.stderr, res.Warnings)
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
			if err := a.pullAlways(ctx, e, req.Config.Image, f.pull, f.platform); err != nil {
				return err
			}
			res, err := e.CreateContainer(ctx, req)
			if err != nil {
				if err = a.pullMissing(ctx, e, req.Config.Image, f.pull, f.platform, err); err != nil {
					return err
				}
				if res, err = e.CreateContainer(ctx, req); err != nil {
					return err
				}
			}
			printWarnings(a.stderr, res.Warnings)
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

// pullMissing handles create's "No such image" as docker's CLI does:
// with --pull missing (the default) it says "Unable to find image" and
// pulls, its progress on stderr, and returns nil for the caller to try
// again; with --pull never it only names the image. Other errors pass.
func (a *app) pullMissing(ctx context.Context, e *engine.Engine, ref, policy, platform string, err error) error {
	if !errdefs.IsNotFound(err) || !strings.HasPrefix(err.Error(), "No such image: ") {
		return err
	}
	full, perr := engine.ParseReference(ref)
	if perr != nil {
		return err
	}
	if policy == "never" {
		return errdefs.NotFound("No such image: %s", engine.FamiliarString(full))
	}
	fmt.Fprintf(a.stderr, "Unable to find image '%s' locally\n", engine.FamiliarString(full))
	_, err = a.pull(ctx, e, engine.ImagePullRequest{Reference: full, Platform: platform}, false, a.stderr)
	return err
}

// pullAlways pulls before create with --pull always.
func (a *app) pullAlways(ctx context.Context, e *engine.Engine, ref, policy, platform string) error {
	if policy != "always" {
		return nil
	}
	full, err := engine.ParseReference(ref)
	if err != nil {
		return err
	}
	_, err = a.pull(ctx, e, engine.ImagePullRequest{Reference: full, Platform: platform}, false, a.stderr)
	return err
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
