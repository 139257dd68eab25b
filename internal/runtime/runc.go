package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Binary drives an OCI runtime binary with runc's command line (runc, or
// crun, which accepts the same commands). Every call runs the binary once,
// directly (no shell, no helper process): that cost is on the path of
// every `berth run`.
//
// The caller of Create, and of Exec with detach, should be a child
// subreaper (prctl PR_SET_CHILD_SUBREAPER) or expect the container's
// processes to be re-parented to init: the runtime exits once they are
// started, and they become children of the nearest subreaper. berth's
// per-container monitor is one.
type Binary struct {
	// Binary is the runtime's path or name, looked up on PATH; "" is "runc".
	Binary string
	// Root is the runtime's state directory (runc --root), e.g.
	// <runroot>/runc; "" leaves the runtime's default.
	Root string
}

// IO is the standard I/O of a container's process. Nil files are
// /dev/null. The files are handed to the process itself, so the caller
// should close its copies of pipe ends once the call returns.
type IO struct {
	Stdin, Stdout, Stderr *os.File
	// ConsoleSocket, when set, is a unix socket on which the runtime sends
	// the pty master of a process with Terminal set.
	ConsoleSocket string
}

func (r *Binary) binary() string {
	if r.Binary == "" {
		return "runc"
	}
	return r.Binary
}

func (r *Binary) name() string { return filepath.Base(r.binary()) }

// command prepares one invocation. logPath, when set, makes the runtime log
// to that file instead of stderr (needed when stderr is the container's).
func (r *Binary) command(ctx context.Context, logPath string, args ...string) *exec.Cmd {
	global := make([]string, 0, 6+len(args))
	if r.Root != "" {
		global = append(global, "--root", r.Root)
	}
	if logPath != "" {
		global = append(global, "--log", logPath)
	}
	global = append(global, "--log-format", "json")
	cmd := exec.CommandContext(ctx, r.binary(), append(global, args...)...)
	cmd.Env = runtimeEnv()
	return cmd
}

// runtimeEnv is berth's environment without NOTIFY_SOCKET: under a systemd
// Type=notify unit, runc would otherwise pass the service's notify socket
// into the container. nil (inherit) when there is nothing to remove.
func runtimeEnv() []string {
	if _, ok := os.LookupEnv("NOTIFY_SOCKET"); !ok {
		return nil
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}

// run runs a command whose stdio are not the container's and returns its
// stdout; its stderr (JSON log lines) becomes the error.
func (r *Binary) run(ctx context.Context, op, id string, wantOutput bool, args ...string) ([]byte, error) {
	cmd := r.command(ctx, "", args...)
	var stdout, stderr bytes.Buffer
	if wantOutput {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, r.failure(ctx, op, id, stderr.Bytes(), err)
	}
	return stdout.Bytes(), nil
}

// Create creates container id from the bundle: its init process is set up
// and left waiting for Start; its host pid is written to pidFile. The init
// process gets io as its stdio and outlives the caller (no parent-death
// signal). A command that cannot be found or run fails here, as an
// *errdefs.ExitStatus with code 127 or 126 and Docker's message.
//
// On such failures runc also prints its error on the container's stderr
// (io.Stderr), which is its own stderr; callers that show that stream to a
// user may discard what it received before Create failed. If ctx ends
// during the call, the runtime is killed and may leave the container half
// created: Delete it with force.
func (r *Binary) Create(ctx context.Context, id, bundle, pidFile string, io IO) error {
	logPath, err := r.logFile("create")
	if err != nil {
		return err
	}
	defer os.Remove(logPath)
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if io.ConsoleSocket != "" {
		args = append(args, "--console-socket", io.ConsoleSocket)
	}
	cmd := r.command(ctx, logPath, append(args, id)...)
	setStdio(cmd, io)
	if err := cmd.Run(); err != nil {
		return r.failure(ctx, "create", id, readLog(logPath), err)
	}
	return nil
}

// Run creates and starts container id in one runtime call (`run
// --detach`): Create followed by Start, with one process fewer on the
// container start path. Failures are reported as Create reports them.
func (r *Binary) Run(ctx context.Context, id, bundle, pidFile string, io IO) error {
	logPath, err := r.logFile("run")
	if err != nil {
		return err
	}
	defer os.Remove(logPath)
	args := []string{"run", "--detach", "--bundle", bundle, "--pid-file", pidFile}
	if io.ConsoleSocket != "" {
		args = append(args, "--console-socket", io.ConsoleSocket)
	}
	cmd := r.command(ctx, logPath, append(args, id)...)
	setStdio(cmd, io)
	if err := cmd.Run(); err != nil {
		return r.failure(ctx, "run", id, readLog(logPath), err)
	}
	return nil
}

// Start starts the user process of a created container.
func (r *Binary) Start(ctx context.Context, id string) error {
	_, err := r.run(ctx, "start", id, false, "start", id)
	return err
}

// Kill sends sig to the container's init process, or with all to every
// process in it.
func (r *Binary) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, "kill", id, false, append(args, id, strconv.Itoa(int(sig)))...)
	return err
}

// Delete removes the runtime's state of the container; force kills it
// first if it runs. A container the runtime does not know is not an error.
func (r *Binary) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, "delete", id, false, append(args, id)...)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// State reports the container's state; errdefs.ErrNotFound when the runtime
// does not know it.
func (r *Binary) State(ctx context.Context, id string) (*specs.State, error) {
	out, err := r.run(ctx, "state", id, true, "state", id)
	if err != nil {
		return nil, err
	}
	var st specs.State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state %s: unreadable output: %w", r.name(), id, err)
	}
	return &st, nil
}

// Pause freezes every process of the container.
func (r *Binary) Pause(ctx context.Context, id string) error {
	_, err := r.run(ctx, "pause", id, false, "pause", id)
	return err
}

// Resume thaws a paused container.
func (r *Binary) Resume(ctx context.Context, id string) error {
	_, err := r.run(ctx, "resume", id, false, "resume", id)
	return err
}

// Ps lists the host pids of the container's processes.
func (r *Binary) Ps(ctx context.Context, id string) ([]int, error) {
	out, err := r.run(ctx, "ps", id, true, "ps", "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("%s ps %s: unreadable output: %w", r.name(), id, err)
	}
	return pids, nil
}

// Exec starts proc in the running container; its host pid is written to
// pidFile when set.
//
// With detach, Exec returns (nil, nil) once the process runs; it is
// re-parented to the caller's subreaper, which must reap it.
//
// Without detach, Exec returns the started runtime process once proc runs
// (or has already finished): it stays proc's parent, relays signals sent to
// it, and exits with proc's status (128+n when killed by signal n). The
// caller must Wait for it. ctx bounds only the start.
//
// Either way, a command that cannot be found or run is reported by Exec
// itself as an *errdefs.ExitStatus with code 127 or 126.
func (r *Binary) Exec(ctx context.Context, id string, proc *specs.Process, pidFile string, io IO, detach bool) (*exec.Cmd, error) {
	data, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("encoding exec process: %w", err)
	}
	logPath, err := r.logFile("exec")
	if err != nil {
		return nil, err
	}
	defer os.Remove(logPath)
	if pidFile == "" {
		// We need one to learn when the process has started.
		pidFile = strings.TrimSuffix(logPath, ".log") + ".pid"
		defer os.Remove(pidFile)
	}
	// The process JSON goes through a pipe, read by the runtime as
	// /proc/self/fd/3: no file to write and clean up.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{"exec", "--process", "/proc/self/fd/3", "--pid-file", pidFile}
	if detach {
		args = append(args, "--detach")
	}
	if io.ConsoleSocket != "" {
		args = append(args, "--console-socket", io.ConsoleSocket)
	}
	var cmd *exec.Cmd
	if detach {
		cmd = r.command(ctx, logPath, append(args, id)...)
	} else {
		// Not bound to ctx: the caller owns the session's lifetime.
		cmd = r.command(context.Background(), logPath, append(args, id)...)
	}
	setStdio(cmd, io)
	cmd.ExtraFiles = []*os.File{pr}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, r.startFailure(err)
	}
	pr.Close()
	go func() {
		// Fails with EPIPE, ending the goroutine, if the runtime exits
		// without reading.
		pw.Write(data)
		pw.Close()
	}()

	if detach {
		if err := cmd.Wait(); err != nil {
			return nil, r.failure(ctx, "exec", id, readLog(logPath), err)
		}
		return nil, nil
	}
	started, err := waitStarted(ctx, cmd.Process.Pid, pidFile)
	if started {
		return cmd, nil
	}
	if err != nil { // ctx ended first
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s exec %s: %w", r.name(), id, err)
	}
	werr := cmd.Wait()
	return nil, r.failure(ctx, "exec", id, readLog(logPath), werr)
}

// waitStarted waits until the runtime process pid has written pidFile (the
// exec'd process is running) or has exited without doing so. It does not
// reap pid, so the caller can still Wait for it. It polls nothing: it
// sleeps in poll(2) on an inotify watch of the pid file's directory and a
// pidfd of the runtime.
func waitStarted(ctx context.Context, pid int, pidFile string) (bool, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		pidfd = -1 // kernel < 5.3: check for exit on a short timer instead
	} else {
		defer unix.Close(pidfd)
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err == nil {
		_, err = unix.InotifyAddWatch(ifd, filepath.Dir(pidFile), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE)
		if err != nil {
			unix.Close(ifd)
		}
	}
	if err != nil {
		ifd = -1 // no inotify: look for the file on a short timer instead
	} else {
		defer unix.Close(ifd)
	}
	exited := func() bool {
		// With WNOHANG and nothing to report, Linux zeroes the siginfo;
		// an exited child shows as SIGCHLD. WNOWAIT leaves it unreaped.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err == nil && info.Signo == int32(unix.SIGCHLD)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := os.Stat(pidFile); err == nil {
			return true, nil
		}
		timeout := 100 // ms, to notice ctx ending
		if pidfd < 0 || ifd < 0 {
			timeout = 5
		}
		fds := make([]unix.PollFd, 0, 2)
		if ifd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(ifd), Events: unix.POLLIN})
		}
		if pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			return false, err
		}
		if ifd >= 0 {
			for {
				if n, _ := unix.Read(ifd, buf); n <= 0 {
					break
				}
			}
		}
		if exited() {
			// The runtime writes the pid file before it waits for the
			// process, so its absence now means it never started.
			_, err := os.Stat(pidFile)
			return err == nil, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
}

func setStdio(cmd *exec.Cmd, io IO) {
	// Assign only non-nil files: a nil *os.File in the interface would not
	// read as "none".
	if io.Stdin != nil {
		cmd.Stdin = io.Stdin
	}
	if io.Stdout != nil {
		cmd.Stdout = io.Stdout
	}
	if io.Stderr != nil {
		cmd.Stderr = io.Stderr
	}
}

// logFile creates an empty per-call log file for the runtime in its state
// directory (or the temp dir), where runc ignores files.
func (r *Binary) logFile(op string) (string, error) {
	dir := r.Root
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "."+op+"-*.log")
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, "."+op+"-*.log")
		}
	}
	if err != nil {
		return "", fmt.Errorf("creating runtime log file: %w", err)
	}
	f.Close()
	return f.Name(), nil
}

func readLog(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// startFailure reports that the runtime binary itself could not be run.
func (r *Binary) startFailure(err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return errdefs.Unavailable("OCI runtime %q not found: install it or choose another with --runtime (%v)", r.binary(), err)
	}
	return fmt.Errorf("running OCI runtime %s: %w", r.binary(), err)
}

// failure turns a failed invocation into a classified error from the
// runtime's log output.
func (r *Binary) failure(ctx context.Context, op, id string, log []byte, runErr error) error {
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		return r.startFailure(runErr)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s %s: %w", r.name(), op, id, ctx.Err())
	}
	msg := runtimeMessage(log)
	if msg == "" {
		msg = runErr.Error()
	}
	// runc repeats the command: "runc create failed: ..." under "runc create c".
	msg = strings.TrimPrefix(msg, r.name()+" "+op+" failed: ")
	msg = strings.TrimPrefix(msg, op+" failed: ")
	return classify(r.name(), op, id, msg)
}

// runtimeMessage extracts the error from runtime output: the last
// error-level message of its JSON log lines, or else its last line of
// plain text.
func runtimeMessage(out []byte) string {
	var lastErr, lastText string
	for _, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e struct{ Level, Msg string }
		if line[0] == '{' && json.Unmarshal(line, &e) == nil {
			if e.Level == "error" || e.Level == "fatal" || e.Level == "panic" {
				lastErr = e.Msg
			}
			continue
		}
		lastText = string(line)
	}
	if lastErr != "" {
		return lastErr
	}
	return lastText
}

// classify maps a runtime error message to berth's error classes. For
// create and exec, a command that cannot be started becomes the exit
// status Docker reports: 127 when it does not exist, 126 when it cannot be
// executed; the message keeps runc's own wording from `exec: "cmd"` on,
// which is what Docker shows.
func classify(runtime, op, id, msg string) error {
	low := strings.ToLower(msg)
	if op == "create" || op == "run" || op == "exec" {
		detail := msg
		if i := strings.Index(msg, `exec: "`); i >= 0 {
			detail = msg[i:]
		}
		isExec := strings.Contains(msg, `exec: "`) || strings.Contains(low, "executable file")
		switch {
		case isExec && (strings.Contains(low, "executable file not found") || strings.Contains(low, "no such file or directory")):
			return &errdefs.ExitStatus{Code: errdefs.ExitCommandAbsent, Msg: detail}
		case isExec && (strings.Contains(low, "permission denied") || strings.Contains(low, "exec format error") || strings.Contains(low, "is a directory")):
			return &errdefs.ExitStatus{Code: errdefs.ExitCannotInvoke, Msg: detail}
		}
	}
	switch {
	case strings.Contains(low, "container does not exist") ||
		(strings.Contains(low, "container") && strings.Contains(low, "does not exist")):
		return errdefs.NotFound("%s %s %s: container %s does not exist in the runtime", runtime, op, id, id)
	case strings.Contains(low, "already exists"), strings.Contains(low, "with id exists"):
		return errdefs.Conflict("%s %s %s: %s", runtime, op, id, msg)
	case strings.Contains(low, "not running"), strings.Contains(low, "not stopped"),
		strings.Contains(low, "not paused"), strings.Contains(low, "already running"),
		strings.Contains(low, "has stopped"), strings.Contains(low, "is paused"),
		strings.Contains(low, "not created"):
		return errdefs.Conflict("%s %s %s: %s", runtime, op, id, msg)
	}
	return fmt.Errorf("%s %s %s: %s", runtime, op, id, msg)
}
