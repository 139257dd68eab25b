package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
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
			if opts.Tty && interactive {
				if in, ok := a.stdin.(*os.File); !ok || !term.IsTerminal(in) {
					return errdefs.InvalidArgument("the input device is not a TTY")
				}
			}
			streams := container.ExecStreams{Stdout: a.stdout, Stderr: a.stderr}
			if interactive {
				streams.Stdin = a.stdin
			}
			// Signals are caught before the process starts and relayed
			// once it runs: one sent as soon as it runs must reach it, not
			// abort the start (which would leave it running unwaited).
			sigs := make(chan os.Signal, 4)
			startCtx := ctx
			if !opts.Detach {
				signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
				defer signal.Stop(sigs)
				startCtx = context.WithoutCancel(ctx)
			}
			proc, err := e.Containers.Exec(startCtx, args[0], opts, streams)
			if err != nil {
				return err
			}
			if opts.Detach {
				return nil
			}
			go func() {
				for s := range sigs {
					proc.Signal(s)
				}
			}()
			code, err := proc.Wait()
			if err != nil {
				return err
			}
			return exitStatus(code)
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
