package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) containerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Manage containers", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	ls := a.psCommand()
	ls.Use = "ls [OPTIONS]"
	cmd.AddCommand(ls, a.runCommand(), a.createCommand(), a.startCommand(), a.stopCommand(), a.restartCommand(),
		a.killCommand(), a.rmCommand(), a.logsCommand(), a.waitCommand(), a.attachCommand(), a.execCommand(),
		a.containerInspectCommand(), a.renameCommand(), a.pauseCommand(), a.unpauseCommand(), a.containerPruneCommand(),
		a.exportCommand(), a.commitCommand(), a.diffCommand(), a.cpCommand(),
		a.topCommand(), a.statsCommand(), a.updateCommand(), a.portCommand())
	return cmd
}

// forEach runs fn for each argument, printing the argument on success like
// docker's stop/kill/rm/... and collecting errors. Containers are handled
// concurrently (each waits mostly on its own processes), but reported in
// the order given.
// errSkip from forEach's fn: nothing to print for this argument, and no failure.
var errSkip = errors.New("skipped")

func (a *app) forEach(args []string, fn func(ref string) error) error {
	// As docker's CLI: up to 50 at once (its parallelOperation). Much of
	// a removal or stop waits on the kernel (process exit, unmounts), not
	// on a CPU.
	const workers = 50
	errs := make([]error, len(args))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, ref := range args {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ref)
		}()
	}
	wg.Wait()
	var failed []error
	for i, ref := range args {
		if errs[i] == errSkip {
			continue
		}
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		fmt.Fprintln(a.stdout, ref)
	}
	return joinErrors(failed)
}

func (a *app) startCommand() *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if attach || interactive {
				if len(args) > 1 {
					return usageError{fmt.Errorf("you cannot start and attach multiple containers at once")}
				}
				in, _ := a.stdin.(*os.File)
				out, _ := a.stdout.(*os.File)
				req := engine.ContainerStartRequest{Attach: true}
				if out != nil {
					h, w := term.Size(out)
					req.ConsoleHeight, req.ConsoleWidth = uint(h), uint(w)
				}
				res, err := e.ContainerStart(ctx, args[0], req)
				if err != nil {
					return err
				}
				defer res.Attachment.Close()
				return a.stream(ctx, res.Attachment, res.ID, res.Tty, interactive && res.OpenStdin, !res.Tty, in, out)
			}
			var mu sync.Mutex
			var failed []string
			err := a.forEach(args, func(ref string) error {
				_, err := e.ContainerStart(ctx, ref, engine.ContainerStartRequest{})
				if err != nil {
					mu.Lock()
					failed = append(failed, ref)
					mu.Unlock()
				}
				return err
			})
			if err == nil {
				return nil
			}
			// docker: each daemon error, then the list of what did not start.
			fmt.Fprintf(a.stderr, "Error response from daemon: %v\n", err)
			slices.SortFunc(failed, func(x, y string) int { return slices.Index(args, x) - slices.Index(args, y) })
			return cliError{fmt.Errorf("Error: failed to start containers: %s", strings.Join(failed, ", "))}
		}),
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	return cmd
}

func (a *app) stopCommand() *cobra.Command {
	return a.stopLikeCommand("stop", "Stop one or more running containers", (*engine.Engine).ContainerStop)
}

func (a *app) restartCommand() *cobra.Command {
	return a.stopLikeCommand("restart", "Restart one or more containers", (*engine.Engine).ContainerRestart)
}

// stopLikeCommand builds stop and restart, which share docker's -t and -s.
func (a *app) stopLikeCommand(name, short string, op func(*engine.Engine, context.Context, string, engine.ContainerStopRequest) error) *cobra.Command {
	var timeout int
	var signal string
	cmd := &cobra.Command{
		Use:   name + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") {
				t = &timeout
			}
			return a.forEach(args, func(ref string) error {
				return op(e, ctx, ref, engine.ContainerStopRequest{Timeout: t, Signal: signal})
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "Seconds to wait before killing the container")
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (a *app) killCommand() *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if err := engine.CheckSignal(signal); err != nil {
				return err
			}
			return a.forEach(args, func(ref string) error {
				err := e.ContainerKill(ctx, ref, signal)
				if err != nil && !errdefs.IsConflict(err) {
					// docker's daemon names the kill in every error but
					// "is not running".
					err = fmt.Errorf("Cannot kill container: %s: %w", ref, err)
				}
				return err
			})
		}),
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	var opts engine.ContainerRemoveRequest
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.forEach(args, func(ref string) error {
				err := e.ContainerRemove(ctx, ref, opts)
				if err != nil && opts.Force && errdefs.IsNotFound(err) {
					// docker's rm -f says so and carries on: exit 0.
					fmt.Fprintf(a.stderr, "Error response from daemon: %v\n", err)
					return errSkip
				}
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&opts.RemoveVolumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	cmd.Flags().BoolVarP(&opts.RemoveLink, "link", "l", false, "Remove the specified link")
	return cmd
}

func (a *app) logsCommand() *cobra.Command {
	var follow, timestamps, details bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var err error
			opts := engine.ContainerLogsRequest{Follow: follow, Timestamps: timestamps, Tail: -1}
			// As docker's daemon: a tail that is not a number (or is
			// negative) means all the lines.
			if n, err := strconv.Atoi(tail); err == nil && n >= 0 {
				opts.Tail = n
			}
			now := time.Now()
			if since != "" {
				if opts.Since, err = parseTimestamp(since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if opts.Until, err = parseTimestamp(until, now); err != nil {
					return err
				}
			}
			return e.ContainerLogs(ctx, args[0], opts, a.stdout, a.stderr)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	fl.BoolVar(&details, "details", false, "Show extra details provided to logs")
	fl.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	fl.StringVar(&since, "since", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	fl.StringVar(&until, "until", "", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	return cmd
}

// parseTimestamp reads docker's --since/--until values: RFC 3339 times,
// dates, Unix seconds (with fraction), or durations before now.
func parseTimestamp(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && !strings.Contains(s, "-") {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.InvalidArgument("invalid time %q: use RFC 3339 (2006-01-02T15:04:05Z), a Unix timestamp, or a duration like 10m", s)
}

func (a *app) waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var errs []error
			for _, ref := range args {
				res, err := e.ContainerWait(ctx, ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(a.stdout, res.StatusCode)
			}
			return joinErrors(errs)
		}),
	}
}

func (a *app) attachCommand() *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			res, err := e.ContainerAttach(ctx, args[0], engine.ContainerAttachRequest{Stdin: !noStdin, Stdout: true, Stderr: true})
			if err != nil {
				if errdefs.IsConflict(err) {
					return cliError{err} // docker's CLI finds a stopped or paused container itself
				}
				return err
			}
			defer res.Attachment.Close()
			in, _ := a.stdin.(*os.File)
			out, _ := a.stdout.(*os.File)
			return a.stream(ctx, res.Attachment, res.ID, res.Tty, res.Stdin, sigProxy && !res.Tty, in, out)
		}),
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (a *app) containerInspectCommand() *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.inspectEach(format, args, func(ref string) (any, error) {
				return e.ContainerInspect(ctx, ref, size)
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	return cmd
}

// inspectCommand is the top-level `inspect`: containers, then images, then volumes.
func (a *app) inspectCommand() *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on Docker objects",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.inspectEach(format, args, func(ref string) (any, error) {
				return e.Inspect(ctx, ref, typ, size)
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().StringVar(&typ, "type", "", "Return JSON for specified type")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

func (a *app) renameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.ContainerRename(cmd.Context(), args[0], args[1])
		},
	}
}

func (a *app) pauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Pause all processes within one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.engine(cmd.Context())
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) error { return e.ContainerPause(cmd.Context(), ref) })
		},
	}
}

func (a *app) unpauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Unpause all processes within one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.engine(cmd.Context())
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) error { return e.ContainerUnpause(cmd.Context(), ref) })
		},
	}
}

func (a *app) containerPruneCommand() *cobra.Command {
	var force bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			if !force && !a.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			rep, err := e.PruneContainers(ctx, flt.Args)
			if rep != nil {
				a.printContainerPrune(rep)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(flt, "filter", "Provide filter values (e.g. \"until=<timestamp>\")")
	return cmd
}
