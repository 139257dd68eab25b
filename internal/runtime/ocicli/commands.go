package ocicli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// createFlags are the flags create and run share.
type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (f *createFlags) register(c *cli, name string) *pflag.FlagSet {
	fs := c.flags(name)
	fs.StringVarP(&f.bundle, "bundle", "b", "", "path to the root of the bundle directory")
	fs.StringVar(&f.pidFile, "pid-file", "", "specify the file to write the process id to")
	fs.StringVar(&f.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive the pty master")
	fs.BoolVar(&f.noPivot, "no-pivot", false, "do not use pivot root (not supported)")
	fs.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "do not create a new session keyring")
	fs.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass N additional file descriptors (not supported)")
	return fs
}

// check validates the flags and the id, and makes the paths absolute.
func (f *createFlags) check(id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if f.noPivot {
		return errdefs.NotImplemented("the berth runtime always uses pivot_root: --no-pivot is not supported")
	}
	if f.preserveFDs != 0 {
		return errdefs.NotImplemented("the berth runtime does not support --preserve-fds")
	}
	if f.bundle == "" {
		f.bundle = "."
	}
	var err error
	if f.bundle, err = absPath(f.bundle); err != nil {
		return err
	}
	if f.pidFile, err = absPath(f.pidFile); err != nil {
		return err
	}
	if _, err := os.Stat(f.bundle + "/config.json"); err != nil {
		return fmt.Errorf("JSON specification file config.json not found in %s", f.bundle)
	}
	return nil
}

func (c *cli) create(ctx context.Context, args []string) error {
	var f createFlags
	fs := f.register(c, "create")
	rest, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := f.check(rest[0]); err != nil {
		return err
	}
	return c.builtin().Create(ctx, rest[0], f.bundle, f.pidFile, c.containerIO(f.consoleSocket))
}

func (c *cli) start(ctx context.Context, args []string) error {
	rest, err := parse(c.flags("start"), args, 1, 1)
	if err != nil {
		return err
	}
	return notExist(c.builtin().Start(ctx, rest[0]))
}

// run is create and start; without --detach it waits for the container,
// relays signals to it, deletes it and exits with its status.
func (c *cli) run(ctx context.Context, args []string) error {
	var f createFlags
	fs := f.register(c, "run")
	detach := fs.BoolP("detach", "d", false, "detach from the container's process")
	keep := fs.Bool("keep", false, "do not delete the container after it exits")
	rest, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := rest[0]
	if err := f.check(id); err != nil {
		return err
	}
	b := c.builtin()
	// Signals that arrive while the container starts are relayed once it
	// runs, not lost and not fatal to this process.
	sigs := make(chan os.Signal, 32)
	if !*detach {
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	if err := b.Run(ctx, id, f.bundle, f.pidFile, c.containerIO(f.consoleSocket)); err != nil {
		return err
	}
	if *detach {
		return nil
	}
	info, err := b.Info(ctx, id)
	if err != nil {
		return err
	}
	// The init is this process's child, even if it has exited already.
	go relaySignals(sigs, info.InitPid)
	code := runtime.ExitCode(runtime.WaitPid(info.InitPid))
	// Reaped: its pid may belong to anyone from now on.
	signal.Stop(sigs)
	close(sigs)
	if !*keep {
		if err := b.Delete(context.WithoutCancel(ctx), id, true); err != nil {
			return err
		}
	}
	return exitCode(code)
}

// relaySignals forwards what this process receives to pid.
func relaySignals(sigs chan os.Signal, pid int) {
	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
			continue
		}
		unix.Kill(pid, sig)
	}
}

func (c *cli) state(ctx context.Context, args []string) error {
	rest, err := parse(c.flags("state"), args, 1, 1)
	if err != nil {
		return err
	}
	info, err := c.builtin().Info(ctx, rest[0])
	if err != nil {
		return notExist(err)
	}
	raw, err := json.MarshalIndent(toStateJSON(info), "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", raw)
	return nil
}

func (c *cli) kill(ctx context.Context, args []string) error {
	fs := c.flags("kill")
	all := fs.BoolP("all", "a", false, "send the signal to all processes in the container")
	rest, err := parse(fs, args, 1, 2)
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if len(rest) == 2 {
		n, err := parseSignal(rest[1])
		if err != nil {
			return err
		}
		sig = syscall.Signal(n)
	}
	err = c.builtin().Kill(ctx, rest[0], sig, *all)
	if errdefs.IsConflict(err) {
		return errors.New("container not running")
	}
	return notExist(err)
}

func (c *cli) delete(ctx context.Context, args []string) error {
	fs := c.flags("delete")
	force := fs.BoolP("force", "f", false, "forcibly delete the container if it is still running")
	rest, err := parse(fs, args, 1, -1)
	if err != nil {
		return err
	}
	b := c.builtin()
	var errs []error
	for _, id := range rest {
		if err := c.deleteOne(ctx, b, id, *force); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *cli) deleteOne(ctx context.Context, b *runtime.Builtin, id string, force bool) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	st, err := b.State(ctx, id)
	if errdefs.IsNotFound(err) {
		if force || b.HasState(id) {
			return b.Delete(ctx, id, true) // what a failed create left
		}
		return errors.New("container does not exist")
	}
	if err != nil {
		return err
	}
	switch st.Status {
	case specs.StateStopped, specs.StateCreated:
		force = true // a created container is deleted as runc does: killed
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, st.Status)
		}
	}
	return b.Delete(ctx, id, force)
}

func (c *cli) pause(ctx context.Context, args []string) error {
	rest, err := parse(c.flags("pause"), args, 1, 1)
	if err != nil {
		return err
	}
	return notExist(c.builtin().Pause(ctx, rest[0]))
}

func (c *cli) resume(ctx context.Context, args []string) error {
	rest, err := parse(c.flags("resume"), args, 1, 1)
	if err != nil {
		return err
	}
	return notExist(c.builtin().Resume(ctx, rest[0]))
}

func (c *cli) ps(ctx context.Context, args []string) error {
	fs := c.flags("ps")
	format := fs.StringP("format", "f", "table", "select one of: table or json")
	rest, err := parse(fs, args, 1, -1)
	if err != nil {
		return err
	}
	pids, err := c.builtin().Ps(ctx, rest[0])
	if err != nil {
		return notExist(err)
	}
	if pids == nil {
		pids = []int{}
	}
	switch *format {
	case "json":
		return json.NewEncoder(c.stdout).Encode(pids)
	case "table":
		return c.psTable(pids, rest[1:])
	}
	return fmt.Errorf("invalid format option")
}

// psTable runs the host's ps (with psArgs, -ef by default) and keeps its
// header and the lines of pids, as runc does.
func (c *cli) psTable(pids []int, psArgs []string) error {
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		// No ps on the host: the pids alone.
		fmt.Fprintln(c.stdout, "PID")
		for _, p := range pids {
			fmt.Fprintln(c.stdout, p)
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	col := -1
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if col < 0 {
			col = slices.Index(fields, "PID")
			if col < 0 {
				return errors.New("couldn't find PID field in ps output")
			}
			fmt.Fprintln(c.stdout, sc.Text())
			continue
		}
		if col < len(fields) {
			if p, err := strconv.Atoi(fields[col]); err == nil && slices.Contains(pids, p) {
				fmt.Fprintln(c.stdout, sc.Text())
			}
		}
	}
	return nil
}

func (c *cli) list(ctx context.Context, args []string) error {
	fs := c.flags("list")
	format := fs.StringP("format", "f", "table", "select one of: table or json")
	quiet := fs.BoolP("quiet", "q", false, "display only container IDs")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	b := c.builtin()
	ids, err := b.List()
	if err != nil {
		return err
	}
	states := []stateJSON{}
	for _, id := range ids {
		if info, err := b.Info(ctx, id); err == nil {
			states = append(states, toStateJSON(info))
		}
	}
	switch {
	case *quiet:
		for _, s := range states {
			fmt.Fprintln(c.stdout, s.ID)
		}
	case *format == "json":
		return json.NewEncoder(c.stdout).Encode(states)
	case *format == "table":
		w := tabwriter.NewWriter(c.stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format("2006-01-02T15:04:05.999999999Z"), s.Owner)
		}
		return w.Flush()
	default:
		return fmt.Errorf("invalid format option")
	}
	return nil
}

func (c *cli) features(ctx context.Context, args []string) error {
	if _, err := parse(c.flags("features"), args, 0, 0); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(runtime.Features(), "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", raw)
	return nil
}

// update takes the new limits as runtime-spec LinuxResources JSON
// (--resources FILE, - for stdin), as containerd's shim sends them, or
// from the common flags.
func (c *cli) update(ctx context.Context, args []string) error {
	fs := c.flags("update")
	resources := fs.StringP("resources", "r", "", "path to a file with the resources to update, or - for stdin")
	memory := fs.Int64("memory", 0, "memory limit in bytes")
	pids := fs.Int64("pids-limit", 0, "maximum number of pids")
	shares := fs.Uint64("cpu-shares", 0, "CPU shares")
	rest, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	res := &specs.LinuxResources{}
	switch *resources {
	case "":
	case "-":
		if err := json.NewDecoder(c.stdin).Decode(res); err != nil {
			return fmt.Errorf("reading the resources: %w", err)
		}
	default:
		raw, err := os.ReadFile(*resources)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, res); err != nil {
			return fmt.Errorf("reading the resources: %w", err)
		}
	}
	if fs.Changed("memory") {
		res.Memory = &specs.LinuxMemory{Limit: memory}
	}
	if fs.Changed("pids-limit") {
		res.Pids = &specs.LinuxPids{Limit: pids}
	}
	if fs.Changed("cpu-shares") {
		res.CPU = &specs.LinuxCPU{Shares: shares}
	}
	return notExist(c.builtin().Update(ctx, rest[0], res))
}
