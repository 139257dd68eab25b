package runtime

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// forkExecOut runs argv through forkExec with a pipe for its stdout and
// the test's stdin and stderr, and returns its output and status.
func forkExecOut(t *testing.T, argv ...string) (string, unix.WaitStatus) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pid, err := forkExec(argv[0], argv, []string{"PATH=/bin:/usr/bin"}, [3]int{0, int(w.Fd()), 2}, false)
	w.Close()
	if err != nil {
		t.Fatalf("forkExec %q: %v", argv, err)
	}
	out, _ := io.ReadAll(r)
	return string(out), WaitPid(pid)
}

func TestForkExecRuns(t *testing.T) {
	out, ws := forkExecOut(t, "/bin/sh", "-c", "echo hello $0", "x")
	if out != "hello x\n" || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("output %q, status %v", out, ws)
	}
	if _, ws := forkExecOut(t, "/bin/sh", "-c", "exit 7"); ws.ExitStatus() != 7 {
		t.Fatalf("exit status %d, want 7", ws.ExitStatus())
	}
}

// A failed execve comes back as its errno.
func TestForkExecFailure(t *testing.T) {
	notExec := t.TempDir() + "/file"
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{"/nonexistent/command", unix.ENOENT},
		{notExec, unix.EACCES},
		{t.TempDir(), unix.EACCES},
	}
	for _, tc := range tests {
		pid, err := forkExec(tc.path, []string{tc.path}, nil, [3]int{0, 1, 2}, false)
		if !errors.Is(err, tc.want) || pid != 0 {
			t.Errorf("forkExec(%s) = %d, %v; want %v", tc.path, pid, err, tc.want)
		}
	}
	// The exec helper's mapping of the errors.
	_, err := forkExec("/nonexistent/command", []string{"x"}, nil, [3]int{0, 1, 2}, false)
	var f *initFailure
	if !errors.As(forkFailure("/nonexistent/command", err), &f) || f.code != 127 {
		t.Errorf("forkFailure(ENOENT) = %v, want exit code 127", forkFailure("/nonexistent/command", err))
	}
}

// The child leads a new session, and has every signal at its default
// and none blocked, whatever the parent ignores, handles or blocks.
func TestForkExecSessionAndSignals(t *testing.T) {
	signal.Ignore(unix.SIGUSR2, unix.SIGHUP)
	defer signal.Reset(unix.SIGUSR2, unix.SIGHUP)
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGUSR1)
	defer signal.Stop(c)
	out, ws := forkExecOut(t, "/bin/cat", "/proc/self/status", "/proc/self/stat")
	if ws.ExitStatus() != 0 {
		t.Fatalf("cat: %v", ws)
	}
	for _, field := range []string{"SigBlk", "SigIgn", "SigCgt"} {
		want := field + ":\t0000000000000000"
		if !strings.Contains(out, want+"\n") {
			t.Errorf("child's status lacks %q:\n%s", want, out)
		}
	}
	stat := strings.Fields(out[strings.LastIndex(out, ")")+1:])
	if len(stat) < 5 || stat[3] != stat[2] || stat[4] != "0" {
		t.Errorf("child's stat (state ppid pgrp sid tty ...) = %q; want a session of its own and no terminal", stat)
	}
}

// With ctty, fd 0 becomes the controlling terminal of the new session.
func TestForkExecControllingTerminal(t *testing.T) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	master := os.NewFile(uintptr(mfd), "ptmx")
	defer master.Close()
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		t.Fatal(errno)
	}
	pid, err := forkExec("/bin/sh", []string{"sh", "-c", `read -r a b c d e f tty rest < /proc/self/stat; echo "$$ $f $tty"; test -t 0 && echo tty`}, nil, [3]int{int(sfd), int(sfd), int(sfd)}, true)
	unix.Close(int(sfd))
	if err != nil {
		t.Fatal(err)
	}
	ws := WaitPid(pid)
	var out bytes.Buffer
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(&out, master) // EIO once the terminal is closed
	f := strings.Fields(out.String())
	if ws.ExitStatus() != 0 || len(f) != 4 || f[0] != f[1] || f[2] == "0" || f[3] != "tty" {
		t.Fatalf("status %v, output %q; want pid = session, a tty and fd 0 on it", ws, out.String())
	}
}

const forkExecRotateArg = "_forkexec_rotate"

// forkExecRotate is the test binary run as a helper with sockets on
// 0, 1 and 2: it starts args with stdio {2, 0, 1}, so every fd must
// move onto one that another still needs, and exits with its status.
func forkExecRotate(args []string) int {
	pid, err := forkExec(args[0], args, nil, [3]int{2, 0, 1}, false)
	if err != nil {
		return 100
	}
	return ExitCode(WaitPid(pid))
}

func TestForkExecStdioOverlap(t *testing.T) {
	var ours [3]*os.File
	var theirs [3]*os.File
	for i := range ours {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours[i], theirs[i] = os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
		defer ours[i].Close()
	}
	cmd := exec.Command(os.Args[0], forkExecRotateArg, "/bin/sh", "-c", "read -r line; echo out $line; echo err $line >&2")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = theirs[0], theirs[1], theirs[2]
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range theirs {
		f.Close()
	}
	// The child's stdin is the helper's fd 2, its stdout fd 0, its
	// stderr fd 1.
	ours[2].WriteString("x\n")
	read := func(f *os.File) string {
		f.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(f)
		return string(b)
	}
	out, errOut := read(ours[0]), read(ours[1])
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if out != "out x\n" || errOut != "err x\n" {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
}
