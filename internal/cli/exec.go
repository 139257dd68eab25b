package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
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
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			env, err := readEnv(envFiles, opts.Env)
			if err != nil {
				return err
			}
			opts.Env = env
			opts.Cmd = args[1:]
			in, _ := a.stdin.(*os.File)
			out, _ := a.stdout.(*os.File)
			errf, _ := a.stderr.(*os.File)
			if opts.Tty && interactive && (in == nil || !isTerminal(in)) {
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
			var consoleLn *net.UnixListener
			if opts.Tty && !opts.Detach {
				dir, err := os.MkdirTemp("", "berth-exec-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				sock := filepath.Join(dir, "console.sock")
				consoleLn, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
				if err != nil {
					return err
				}
				defer consoleLn.Close()
				rio = runtime.IO{Stdin: devnull, Stdout: devnull, Stderr: devnull, ConsoleSocket: sock}
			}
			ptyCh := make(chan *os.File, 1)
			if consoleLn != nil {
				go func() { ptyCh <- container.ReceivePTY(consoleLn) }()
			}
			proc, err := e.Containers.Exec(ctx, args[0], opts, rio)
			if err != nil {
				return err
			}
			if opts.Detach {
				return nil
			}
			if consoleLn != nil {
				var pty *os.File
				select {
				case pty = <-ptyCh:
				case <-time.After(10 * time.Second):
				}
				if pty == nil {
					proc.Process.Kill()
					proc.Wait()
					return errors.New("the runtime sent no terminal for the exec session")
				}
				defer pty.Close()
				if out != nil {
					if h, w := terminalSize(out); h > 0 {
						unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
					}
				}
				if interactive && in != nil && isTerminal(in) {
					if restore, err := makeRaw(in); err == nil {
						defer restore()
					}
				}
				winch := make(chan os.Signal, 1)
				signal.Notify(winch, syscall.SIGWINCH)
				defer signal.Stop(winch)
				go func() {
					for range winch {
						if h, w := terminalSize(out); h > 0 {
							unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
						}
					}
				}()
				if interactive && in != nil {
					go io.Copy(pty, in)
				}
				copied := make(chan struct{})
				go func() { io.Copy(a.stdout, pty); close(copied) }()
				werr := proc.Wait()
				select {
				case <-copied:
				case <-time.After(time.Second):
				}
				return execExit(werr)
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
		},
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
