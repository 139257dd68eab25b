package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) execCommand() *cobra.Command {
	var req engine.ExecCreateRequest
	var interactive, detach bool
	var envFiles []string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			env, err := readEnv(envFiles, req.Env)
			if err != nil {
				return err
			}
			req.Env = env
			req.Container, req.Cmd = args[0], args[1:]
			in, _ := a.stdin.(*os.File)
			out, _ := a.stdout.(*os.File)
			if req.Tty && interactive && !detach && (in == nil || !term.IsTerminal(in)) {
				return errdefs.InvalidArgument("the input device is not a TTY")
			}
			if !detach {
				req.AttachStdin, req.AttachStdout, req.AttachStderr = interactive, true, true
			}
			created, err := e.ExecCreate(ctx, req)
			if errdefs.IsConflict(err) {
				// Docker's CLI exits 1 when its daemon refuses the exec
				// (a stopped or paused container).
				return &errdefs.ExitStatus{Code: 1, Msg: err.Error()}
			}
			if err != nil {
				return err
			}
			start := engine.ExecStartRequest{Container: req.Container, Detach: detach, Tty: req.Tty}
			if req.Tty && out != nil {
				if h, w := term.Size(out); h > 0 && w > 0 {
					start.ConsoleSize = &[2]uint{uint(h), uint(w)}
				}
			}
			// Signals are caught before the process starts and relayed
			// once it runs: one sent as soon as it runs must reach it, not
			// abort the start (which would leave it running unwaited).
			sigs := make(chan os.Signal, 8)
			startCtx := ctx
			if !detach {
				signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH)
				defer signal.Stop(sigs)
				startCtx = context.WithoutCancel(ctx)
			}
			stream, err := e.ExecStart(startCtx, created.ID, start)
			if err != nil || detach {
				return err
			}
			defer stream.Close()
			var input io.Reader
			if interactive {
				input = a.stdin
				if req.Tty {
					if restore, err := term.MakeRaw(in); err == nil {
						defer restore()
					}
				}
			}
			go func() {
				for s := range sigs {
					if s == syscall.SIGWINCH {
						if req.Tty && out != nil {
							stream.Resize(term.Size(out))
						}
						continue
					}
					stream.Signal(s.(syscall.Signal))
				}
			}()
			code, err := stream.Stream(context.WithoutCancel(ctx), input, a.stdout, a.stderr)
			if err != nil {
				// The monitor went away: the record may know the end.
				st, ierr := e.ExecInspect(ctx, created.ID)
				if ierr != nil || st.ExitCode == nil {
					return fmt.Errorf("exec: lost the process's output stream: %w", err)
				}
				code = *st.ExitCode
			}
			return exitStatus(code)
		}),
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&req.Tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.StringArrayVarP(&req.Env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&envFiles, "env-file", nil, "Read in a file of environment variables")
	fl.StringVarP(&req.WorkingDir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&req.User, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	fl.BoolVar(&req.Privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringVar(&req.DetachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}
