package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) execCommand() *cobra.Command {
	var opts container.ExecOptions
	var interactive bool
	var envFiles []string
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			env, err := readEnv(envFiles, opts.Env)
			if err != nil {
				return err
			}
			opts.Env = env
			opts.Cmd = args[1:]
			in, _ := a.stdin.(*os.File)
			out, _ := a.stdout.(*os.File)
			errf, _ := a.stderr.(*os.File)
			if opts.Tty && interactive && (in == nil || !term.IsTerminal(in)) {
				return errdefs.InvalidArgument("the input device is not a TTY")
			}
			devnull, err := os.Open(os.DevNull)
			if err != nil {
				return err
			}
			defer devnull.Close()
			rio := runtime.IO{Stdin: devnull, Stdout: out, Stderr: errf}
			if interactive && in != nil {
				rio.Stdin = in
			}
			if opts.Detach {
				rio = runtime.IO{Stdin: devnull, Stdout: devnull, Stderr: devnull}
			}
			if opts.Tty && !opts.Detach {
				// In the foreground the runtime allocates the terminal itself,
				// wires it to our stdio (raw mode included) and follows
				// SIGWINCH; a console socket is only for detached processes.
				if in == nil || !interactive {
					rio.Stdin = devnull
				}
			}
			proc, err := e.Containers.Exec(ctx, args[0], opts, rio)
			if err != nil {
				return err
			}
			if opts.Detach {
				return nil
			}
			// Without a TTY the runtime holds our stdio; forward signals to it.
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sigs)
			go func() {
				for s := range sigs {
					proc.Process.Signal(s)
				}
			}()
			return execExit(proc.Wait())
		}),
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&opts.Tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVarP(&opts.Detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.StringArrayVarP(&opts.Env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&envFiles, "env-file", nil, "Read in a file of environment variables")
	fl.StringVarP(&opts.WorkingDir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&opts.User, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	fl.BoolVar(&opts.Privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// execExit turns the runtime process's end into berth's exit status.
func execExit(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &errdefs.ExitStatus{Code: 128 + int(ws.Signal())}
		}
		return &errdefs.ExitStatus{Code: ee.ExitCode()}
	}
	return fmt.Errorf("exec: %w", err)
}
