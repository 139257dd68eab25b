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
	if name, ok := strings.CutPrefix(err.Error(), "unknown command \""); ok {
		name, _, _ = strings.Cut(name, "\"")
		err = unknownCommandError{name}
	}
	return a.report(cmd, err)
}

// Kinds of failure the CLI itself reports; anything else that reaches the
// edge came from the engine and is worded as docker words a daemon error.
type (
	// usageError: a flag docker's CLI would refuse (exit 125, usage hint).
	usageError struct{ error }
	// argsError: a wrong number of arguments (exit 1, usage hint).
	argsError struct{ error }
	// unknownCommandError: no such (sub)command (exit 1).
	unknownCommandError struct{ name string }
	// parseError: the flags of run/create do not make a request (exit
	// 125 for both, as docker's CLI refuses them before the engine sees them).
	parseError struct{ error }
	// cliError: a failure found by the CLI, printed as it is (exit 1,
	// even for run: docker's "the input device is not a TTY").
	cliError struct{ error }
	// templateError: a --format that does not parse or run; Code is
	// docker's exit code for the command (64 for inspect, version, info
	// and events; 1 for the list commands).
	templateError struct {
		msg  string
		code int
	}
)

func (e unknownCommandError) Error() string { return "unknown command: " + e.name }
func (e *templateError) Error() string      { return e.msg }

// isRun tells the command whose engine failures exit 125. (docker's
// create exits 1 for them, 125 only for its flags: parseError.)
func isRun(path string) bool { return path == "berth run" || path == "berth container run" }

// exitCode is the one mapping from a failed command to docker's exit code:
// the status an error carries (a container's, 126/127 for a command that
// could not run); 125 for flag errors and for run's engine failures; 1
// for everything else (create's engine failures included, as docker's CLI
// does); 64 for a template of inspect, version, info or events that does
// not parse.
func exitCode(path string, err error) int {
	var (
		st *errdefs.ExitStatus
		te *templateError
		ae argsError
		uc unknownCommandError
		ue usageError
		pe parseError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return st.Code
	case errors.As(err, &ae), errors.As(err, &uc):
		return errdefs.ExitFailure
	case errors.As(err, &ue), isCobraFlagError(err), errors.As(err, &pe):
		return errdefs.ExitEngine
	case errors.As(err, &te):
		return te.code
	}
	var ce cliError
	if isRun(path) && !errors.As(err, &ce) {
		return errdefs.ExitEngine
	}
	return errdefs.ExitCode(err)
}

// errorText words a failure as docker's CLI does (with berth's name).
func errorText(cmd *cobra.Command, err error) string {
	path := cmd.CommandPath()
	run := isRun(path)
	var (
		st *errdefs.ExitStatus
		te *templateError
		ae argsError
		uc unknownCommandError
		ue usageError
		pe parseError
		ce cliError
	)
	switch {
	case errors.As(err, &st):
		switch {
		case st.Msg == "":
			return ""
		case run:
			// The command could not start (126/127): docker words it as the daemon's error.
			return fmt.Sprintf("berth: Error response from daemon: %s\n\nRun '%s --help' for more information\n", st.Msg, path)
		}
		return "berth: " + st.Msg + "\n"
	case errors.As(err, &uc):
		return fmt.Sprintf("berth: unknown command: %s %s\n\nRun '%s --help' for more information\n", path, uc.name, path)
	case errors.As(err, &ae):
		return fmt.Sprintf("berth: %s\n\nUsage:  %s\n\nSee '%s --help' for more information\n", ae.error, useLine(cmd), path)
	case errors.As(err, &ue), isCobraFlagError(err):
		return fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information\n", err, useLine(cmd), path)
	case errors.As(err, &te):
		return te.msg + "\n"
	case errors.As(err, &pe):
		return fmt.Sprintf("berth: %s\n\nRun '%s --help' for more information\n", pe.error, path)
	case errors.As(err, &ce):
		return ce.Error() + "\n"
	case run:
		return fmt.Sprintf("berth: Error response from daemon: %s\n\nRun '%s --help' for more information\n", err, path)
	}
	return "Error response from daemon: " + err.Error() + "\n"
}

// useLine is the command's usage line as docker prints it (no "[flags]").
func useLine(cmd *cobra.Command) string { return strings.TrimSuffix(cmd.UseLine(), " [flags]") }

func (a *app) report(cmd *cobra.Command, err error) int {
	fmt.Fprint(a.stderr, errorText(cmd, err))
	return exitCode(cmd.CommandPath(), err)
}

// isCobraFlagError recognises the flag errors cobra returns without
// passing them through the flag error function.
func isCobraFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "bad flag syntax", "if any flags in the group"} {
		if strings.HasPrefix(msg, p) {
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
	pf.StringVar(&a.cfg.Runtime, "runtime", envOr("BERTH_RUNTIME", engine.DefaultRuntime), "container runtime: \"berth\" (built in) or an OCI runtime binary (runc, crun, ...)")
	pf.BoolVarP(&a.cfg.Debug, "debug", "D", false, "Enable debug output")
	pf.StringVar(&a.cfg.RegistryConfig, "config-file", envOr("BERTH_CONFIG_FILE", engine.DefaultConfigFile), "Configuration: insecure-registries, registry-mirrors, ip, publish-addresses... in daemon.json's keys (env BERTH_CONFIG_FILE)")
	pf.IntVar(&a.cfg.MaxConcurrentDownloads, "max-concurrent-downloads", 0, "Maximum concurrent downloads for each pull (default 3, or the configuration's)")
	pf.IntVar(&a.cfg.MaxConcurrentUploads, "max-concurrent-uploads", 0, "Maximum concurrent uploads for each push (default 5, or the configuration's)")
	// dockerd's --ip, named so as not to clash with run's --ip.
	pf.StringVar(&a.cfg.DefaultBindIP, "default-bind-ip", os.Getenv("BERTH_DEFAULT_BIND_IP"), "Default host IP of ports the default bridge publishes without one (dockerd's --ip; default 0.0.0.0, or the configuration's \"ip\"; env BERTH_DEFAULT_BIND_IP)")

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
		mgmt("volume", a.volumeCommand), mgmt("network", a.networkCommand), mgmt("system", a.systemCommand),
		mgmt("registry", a.registryCommand),
		short("create", a.createCommand), short("start", a.startCommand), short("stop", a.stopCommand),
		short("restart", a.restartCommand), short("kill", a.killCommand), short("rm", a.rmCommand),
		short("logs", a.logsCommand), short("wait", a.waitCommand), short("attach", a.attachCommand),
		short("inspect", a.inspectCommand), short("rename", a.renameCommand), short("pause", a.pauseCommand),
		short("unpause", a.unpauseCommand), short("events", a.eventsCommand), short("rmi", a.rmiCommand),
		short("tag", a.tagCommand), short("history", a.historyCommand), short("top", a.topCommand),
		short("stats", a.statsCommand), short("update", a.updateCommand), short("export", a.exportCommand), short("commit", a.commitCommand),
		short("diff", a.diffCommand), short("cp", a.cpCommand), short("save", a.saveCommand),
		short("load", a.loadCommand), short("port", a.portCommand),
		common("pull", a.pullCommand), common("push", a.pushCommand), common("login", a.loginCommand),
		common("logout", a.logoutCommand), common("search", a.searchCommand),
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
		case arg == "--root" || arg == "--runroot" || arg == "--runtime" || arg == "--config-file" || arg == "--default-bind-ip":
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
			return argsError{fmt.Errorf("'%s' requires exactly %d argument%s", cmd.CommandPath(), n, plural(n))}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return argsError{fmt.Errorf("'%s' requires at least %d argument%s", cmd.CommandPath(), n, plural(n))}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return argsError{fmt.Errorf("'%s' requires at least %d and at most %d arguments", cmd.CommandPath(), lo, hi)}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return unknownCommandError{args[0]} // `berth container foo`
		}
		return argsError{fmt.Errorf("'%s' accepts no arguments", cmd.CommandPath())}
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
