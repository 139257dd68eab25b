// Package ocicli is runc's command line over berth's built-in runtime:
// `berth runtime COMMAND` or berth run under the name berth-runc (or runc).
// Any tool that drives runc can drive the built-in runtime through it:
// containerd's runc shim (and so dockerd's --add-runtime), podman
// --runtime, the OCI runtime validation suite.
//
// It keeps runc's global flags, commands, flags, JSON shapes and exit
// codes: errors go to stderr (and to --log, in --log-format) and exit 1.
package ocicli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// DefaultRoot is the state directory when --root is not given. It is not
// berth's engine's (<runroot>/runtime/berth): containers made through this
// command line are not berth's engine's.
const DefaultRoot = "/run/berth-runc"

// Version is what --version reports.
var specVersion = "1.0.2"

// IsRuntimeName reports whether argv0 asks for this command line: berth
// installed (or linked) as berth-runc or runc.
func IsRuntimeName(argv0 string) bool {
	switch filepath.Base(argv0) {
	case "berth-runc", "runc":
		return true
	}
	return false
}

// cli is one invocation: its global flags and streams.
type cli struct {
	name      string
	root      string
	log       string
	logFormat string
	debug     bool
	stdin     *os.File
	stdout    io.Writer
	stderr    io.Writer
}

// command is one of runc's commands.
type command struct {
	usage string
	run   func(c *cli, ctx context.Context, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"create":   {"create [command options] <container-id>", (*cli).create},
		"start":    {"start <container-id>", (*cli).start},
		"run":      {"run [command options] <container-id>", (*cli).run},
		"state":    {"state <container-id>", (*cli).state},
		"kill":     {"kill [command options] <container-id> [signal]", (*cli).kill},
		"delete":   {"delete [command options] <container-id>", (*cli).delete},
		"exec":     {"exec [command options] <container-id> <command> [command options]", (*cli).exec},
		"ps":       {"ps [command options] <container-id> [ps options]", (*cli).ps},
		"pause":    {"pause <container-id>", (*cli).pause},
		"resume":   {"resume <container-id>", (*cli).resume},
		"list":     {"list [command options]", (*cli).list},
		"features": {"features", (*cli).features},
		"update":   {"update [command options] <container-id>", (*cli).update},
	}
}

// Main runs the command line with args (without the program name) and
// returns the exit status. name is how the program was called, for
// messages.
func Main(ctx context.Context, name string, args []string) int {
	c := &cli{name: name, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	code, err := c.main(ctx, args)
	if err != nil {
		c.fatal(err)
		return 1
	}
	return code
}

// exitCode is an error that only carries a status to exit with (a
// foreground process's).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (c *cli) main(ctx context.Context, args []string) (int, error) {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.root, "root", DefaultRoot, "root directory for storage of container state")
	fs.StringVar(&c.log, "log", "", "set the log file to write runtime logs to (default is stderr)")
	fs.StringVar(&c.logFormat, "log-format", "text", "set the log format ('text' (default), or 'json')")
	fs.BoolVar(&c.debug, "debug", false, "enable debug logging")
	systemd := fs.Bool("systemd-cgroup", false, "enable systemd cgroup support (not supported)")
	fs.String("criu", "criu", "path to the criu binary (unused)")
	rootless := fs.String("rootless", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')")
	version := fs.BoolP("version", "v", false, "print the version")
	help := fs.BoolP("help", "h", false, "show help")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return 0, fmt.Errorf("invalid log-format: %s", c.logFormat)
	}
	if *version {
		fmt.Fprintf(c.stdout, "%s version (berth built-in runtime)\nspec: %s\n", c.name, specVersion)
		return 0, nil
	}
	rest := fs.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		c.usage()
		return 0, nil
	}
	if *systemd {
		return 0, errdefs.NotImplemented("the berth runtime does not support --systemd-cgroup: use the cgroupfs driver (dockerd --exec-opt native.cgroupdriver=cgroupfs)")
	}
	if *rootless == "true" {
		return 0, errdefs.NotImplemented("the berth runtime does not run rootless")
	}
	if abs, err := filepath.Abs(c.root); err == nil {
		c.root = abs
	}
	cmd, ok := commands()[rest[0]]
	if !ok {
		return 0, fmt.Errorf("No help topic for '%s'", rest[0])
	}
	err := cmd.run(c, ctx, rest[1:])
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec), nil
	}
	return 0, err
}

func (c *cli) usage() {
	fmt.Fprintf(c.stdout, "usage: %s [global options] command [command options] [arguments...]\n\ncommands:\n", c.name)
	for _, name := range []string{"create", "start", "run", "state", "kill", "delete", "exec", "ps", "pause", "resume", "list", "features", "update"} {
		fmt.Fprintf(c.stdout, "   %s\n", commands()[name].usage)
	}
	fmt.Fprintf(c.stdout, "\nglobal options: --root DIR (default %s), --log FILE, --log-format text|json, --debug\n", DefaultRoot)
}

// fatal reports err as runc does: to the log when there is one, and to
// stderr.
func (c *cli) fatal(err error) {
	msg := err.Error()
	if c.log != "" {
		if f, ferr := os.OpenFile(c.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); ferr == nil {
			f.Write(logLine(c.logFormat, "error", msg, time.Now()))
			f.Close()
		}
	}
	fmt.Fprintln(c.stderr, msg)
}

// logLine formats one log entry in runc's (logrus') text or JSON form.
func logLine(format, level, msg string, t time.Time) []byte {
	ts := t.Format(time.RFC3339Nano)
	if format == "json" {
		raw, _ := json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, ts})
		return append(raw, '\n')
	}
	return fmt.Appendf(nil, "time=%q level=%s msg=%q\n", ts, level, msg)
}

// builtin is the runtime over the state directory --root.
func (c *cli) builtin() *runtime.Builtin {
	return &runtime.Builtin{Root: c.root}
}

// flags starts a command's flag set, which stops at the first argument
// (the container id) as runc's does.
func (c *cli) flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args with fs and checks the number of arguments left.
func parse(fs *pflag.FlagSet, args []string, min, max int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	rest := fs.Args()
	// Every command but list and features names a container first: an id
	// is a directory name under --root, never a path.
	if min > 0 && len(rest) > 0 {
		if err := ValidateID(rest[0]); err != nil {
			return nil, err
		}
	}
	switch {
	case len(rest) < min && min == 1:
		return nil, fmt.Errorf("%s: %q requires a container id", fs.Name(), fs.Name())
	case len(rest) < min:
		return nil, fmt.Errorf("%s: %q requires a minimum of %d arguments", fs.Name(), fs.Name(), min)
	case max >= 0 && len(rest) > max:
		return nil, fmt.Errorf("%s: %q requires a maximum of %d arguments", fs.Name(), fs.Name(), max)
	}
	return rest, nil
}

// ValidateID checks a container id as runc does: letters, digits and
// _+-. only, not . or .. — it names a directory under --root.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q", id)
	}
	for _, r := range id {
		ok := r == '_' || r == '+' || r == '-' || r == '.' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("invalid container id %q: only letters, digits and _+-. are allowed", id)
		}
	}
	return nil
}

// absPath makes p absolute ("" stays "").
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// notExist is runc's error for an unknown container.
func notExist(err error) error {
	if errdefs.IsNotFound(err) {
		return errors.New("container does not exist")
	}
	return err
}

// stateJSON is runc's `state` output.
type stateJSON struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func toStateJSON(info *runtime.Info) stateJSON {
	owner := ""
	if os.Geteuid() == 0 {
		owner = "root"
	}
	return stateJSON{
		Version: info.Version, ID: info.ID, Pid: info.Pid, Status: string(info.Status),
		Bundle: info.Bundle, Rootfs: info.Rootfs, Created: info.Created.UTC(),
		Annotations: info.Annotations, Owner: owner,
	}
}

// containerIO is the caller's stdio, handed to the container.
func (c *cli) containerIO(consoleSocket string) runtime.IO {
	return runtime.IO{Stdin: c.stdin, Stdout: asFile(c.stdout), Stderr: asFile(c.stderr), ConsoleSocket: consoleSocket}
}

func asFile(w io.Writer) *os.File {
	f, _ := w.(*os.File)
	return f
}

// trimSig accepts a signal as a number or a name with or without SIG.
func parseSignal(s string) (int, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if n, err := parseInt(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("unknown signal %q", s)
		}
		return n, nil
	}
	s = strings.TrimPrefix(s, "SIG")
	if n, ok := signalNumbers[s]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(s, "RTMIN+"); ok {
		if n, err := parseInt(rest); err == nil && 34+n <= 64 {
			return 34 + n, nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func parseInt(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' || n > 1<<20 {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(r-'0')
	}
	return n, nil
}

var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
	"STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
	"URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
	"POLL": 29, "PWR": 30, "SYS": 31, "RTMIN": 34, "RTMAX": 64,
}
