// Package cli is berth's docker-compatible command line: cobra commands
// that turn flags into engine calls and render the results like docker.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "0.1.0-dev"

// APIVersion is the Docker Engine API version berth speaks.
const APIVersion = "1.43"

// app carries what every command needs: global flags, streams, and the
// engine, opened on first use.
type app struct {
	cfg    engine.Config
	eng    *engine.Engine
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func (a *app) engine(ctx context.Context) (*engine.Engine, error) {
	if a.eng != nil {
		return a.eng, nil
	}
	if os.Geteuid() != 0 {
		return nil, errdefs.Forbidden("berth needs root: run it as root (rootless mode is not supported yet)")
	}
	e, err := engine.New(ctx, a.cfg)
	if err != nil {
		return nil, err
	}
	a.eng = e
	return e, nil
}

// Execute runs berth with args and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if len(args) > 0 && args[0] == "runtime" {
		return RuntimeMain(context.WithoutCancel(ctx), "berth runtime", args[1:])
	}
	root := a.newRootCommand(args)
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return 130 // interrupted by a signal: quiet, like docker's CLI
	}
	return a.report(cmd, err)
}

// usageError marks flag and argument errors (exit 125 with a usage hint).
type usageError struct{ error }

func (a *app) report(cmd *cobra.Command, err error) int {
	var st *errdefs.ExitStatus
	if errors.As(err, &st) {
		if st.Msg != "" {
			fmt.Fprintf(a.stderr, "berth: %s\n", st.Msg)
		}
		return st.Code
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintf(a.stderr, "berth: %s\nSee '%s --help'.\n", err, cmd.CommandPath())
		return errdefs.ExitEngine
	}
	fmt.Fprintf(a.stderr, "Error: %s\n", err)
	return errdefs.ExitCode(err)
}

func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "unknown command", "requires", "accepts", "bad flag syntax", "if any flags in the group"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, "\""+p) {
			return true
		}
	}
	return false
}

func (a *app) newRootCommand(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth [OPTIONS] COMMAND",
		Short:         "A fast, Docker-compatible container engine",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return nil
		},
	}
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.Root, "root", envOr("BERTH_ROOT", engine.DefaultRoot), "Root directory of persistent state (env BERTH_ROOT)")
	pf.StringVar(&a.cfg.RunRoot, "runroot", envOr("BERTH_RUNROOT", engine.DefaultRunRoot), "Root directory of runtime state (env BERTH_RUNROOT)")
	pf.StringVar(&a.cfg.Runtime, "runtime", envOr("BERTH_RUNTIME", runtime.DefaultName), "container runtime: \"berth\" (built in) or an OCI runtime binary (runc, crun, ...)")
	pf.BoolVarP(&a.cfg.Debug, "debug", "D", false, "Enable debug output")

	root.AddGroup(&cobra.Group{ID: "common", Title: "Common Commands:"}, &cobra.Group{ID: "management", Title: "Management Commands:"})
	commands := a.topLevelCommands()
	// Building every command with its flags costs more than a millisecond
	// of each berth start; when the command line names one, build that one
	// only. Help, completion and unknown names get the whole tree.
	if name := commandName(args); name != "" {
		for _, c := range commands {
			if c.name == name {
				commands = []topLevelCommand{c}
				break
			}
		}
	}
	for _, c := range commands {
		cmd := c.make()
		cmd.GroupID = c.group
		root.AddCommand(cmd)
	}
	return root
}

// topLevelCommand is a command of berth's top level, built on demand.
type topLevelCommand struct {
	name, group string
	make        func() *cobra.Command
}

func (a *app) topLevelCommands() []topLevelCommand {
	common := func(name string, make func() *cobra.Command) topLevelCommand {
		return topLevelCommand{name, "common", make}
	}
	mgmt := func(name string, make func() *cobra.Command) topLevelCommand {
		return topLevelCommand{name, "management", make}
	}
	// docker's top-level shortcuts for container and image subcommands.
	short := func(name string, make func() *cobra.Command) topLevelCommand {
		return topLevelCommand{name, "", make}
	}
	return []topLevelCommand{
		common("run", a.runCommand), common("exec", a.execCommand), common("ps", a.psCommand),
		common("images", a.imagesCommand), common("import", a.importCommand),
		common("info", a.infoCommand), common("version", a.versionCommand),
		mgmt("container", a.containerCommand), mgmt("image", a.imageCommand),
		mgmt("volume", a.volumeCommand), mgmt("system", a.systemCommand),
		short("create", a.createCommand), short("start", a.startCommand), short("stop", a.stopCommand),
		short("restart", a.restartCommand), short("kill", a.killCommand), short("rm", a.rmCommand),
		short("logs", a.logsCommand), short("wait", a.waitCommand), short("attach", a.attachCommand),
		short("inspect", a.inspectCommand), short("rename", a.renameCommand), short("pause", a.pauseCommand),
		short("unpause", a.unpauseCommand), short("events", a.eventsCommand), short("rmi", a.rmiCommand),
		short("tag", a.tagCommand), short("history", a.historyCommand), short("top", a.topCommand),
		short("stats", a.statsCommand), short("update", a.updateCommand), short("export", a.exportCommand), short("commit", a.commitCommand),
		short("diff", a.diffCommand), short("cp", a.cpCommand), short("save", a.saveCommand),
		short("load", a.loadCommand),
	}
}

// commandName is the first word of args that is not a global flag or a
// global flag's value: the command to run.
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return ""
		case arg == "--root" || arg == "--runroot" || arg == "--runtime":
			i++ // its value follows
		case strings.HasPrefix(arg, "-"):
			if arg == "-h" || arg == "--help" || arg == "-v" || arg == "--version" {
				return ""
			}
		default:
			return arg
		}
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// exactArgs, minArgs: docker's argument count messages.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%q requires exactly %d argument%s.\nUsage:  %s", cmd.CommandPath(), n, plural(n), cmd.UseLine())}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%q requires at least %d argument%s.\nUsage:  %s", cmd.CommandPath(), n, plural(n), cmd.UseLine())}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("%q requires at least %d and at most %d arguments.\nUsage:  %s", cmd.CommandPath(), lo, hi, cmd.UseLine())}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%q accepts no arguments.\nUsage:  %s", cmd.CommandPath(), cmd.UseLine())}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// withEngine adapts a command body that needs the engine to cobra's RunE.
func (a *app) withEngine(run func(ctx context.Context, e *engine.Engine, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		e, err := a.engine(ctx)
		if err != nil {
			return err
		}
		return run(ctx, e, args)
	}
}
