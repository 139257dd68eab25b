package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// callerTerminal is an admin's shell session on a pseudo-terminal: a host
// shell leads the session with the pty as its controlling terminal and
// runs berth in its foreground process group, as an interactive shell
// would.
type callerTerminal struct {
	t      *testing.T
	leader *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

// inCallerTerminal starts `sh -c script` as such a session leader; in the
// script "$@" is berth (with this env's root) followed by args.
func (e *env) inCallerTerminal(t *testing.T, script string, args ...string) *callerTerminal {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"-c", script, "sh", berthBin, "--root", e.root, "--runroot", e.runroot}, args...)
	cmd := exec.Command("/bin/sh", argv...)
	cmd.Env = append(os.Environ(), "BERTH_ROOT=", "BERTH_RUNROOT=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	c := &callerTerminal{t: t, leader: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			c.mu.Lock()
			c.out.Write(buf[:n])
			c.mu.Unlock()
			if err != nil { // EIO once nothing holds the terminal
				return
			}
		}
	}()
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		// The leader's process group holds all the host processes the
		// script started.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		master.Close()
	})
	return c
}

func (c *callerTerminal) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// wait waits for the session leader to exit.
func (c *callerTerminal) wait() {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("the caller's shell did not exit; terminal shows:\n%s", c.output())
	}
}

// waitFile polls until path exists and is not empty, and returns it.
func waitFile(t *testing.T, path string, timeout time.Duration, what string) string {
	t.Helper()
	var data []byte
	eventually(t, timeout, what, func() bool {
		data, _ = os.ReadFile(path)
		return len(data) > 0
	})
	return string(data)
}

// procStat is the part of /proc/PID/stat the session checks need.
type procStat struct{ pid, pgrp, session, ttyNr int }

var statRE = regexp.MustCompile(`^(\d+) \(.*\) \S+ -?\d+ (\d+) (\d+) (-?\d+) `)

func parseStat(t *testing.T, raw string) procStat {
	t.Helper()
	m := statRE.FindStringSubmatch(strings.TrimSpace(raw))
	if m == nil {
		t.Fatalf("unreadable /proc/PID/stat: %q", raw)
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return procStat{pid: n[0], pgrp: n[1], session: n[2], ttyNr: n[3]}
}

// TestExecCallerTerminal: a process started by exec (plain, -i, -d) or run
// from an admin's terminal gets neither that terminal nor its session:
// /dev/tty is ENXIO, it has no controlling terminal (so no TIOCSTI), it
// leads a session of its own, and nothing it writes reaches the terminal.
func TestExecCallerTerminal(t *testing.T) {
	e := newEnv(t)
	out := t.TempDir()
	name := fmt.Sprintf("execio-%d", time.Now().UnixNano())
	e.must("run", "-d", "--name", name, "-v", out+":/out", "busybox", "sleep", "1000")

	// probe records the process's session and what opening /dev/tty did;
	// a leaked terminal would show MARK-<case> to the admin.
	probe := func(c string) string {
		return fmt.Sprintf(`cat /proc/$$/stat > /out/%[1]s.stat; if echo MARK-%[1]s > /dev/tty; then echo wrote; else echo failed; fi > /out/%[1]s.tty.tmp 2>&1; mv /out/%[1]s.tty.tmp /out/%[1]s.tty`, c)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"exec", []string{"exec", name, "sh", "-c", probe("exec")}},
		{"exec-i", []string{"exec", "-i", name, "sh", "-c", probe("exec-i")}},
		// Writes a second after `exec -d` has returned, while the admin's
		// shell still runs.
		{"exec-d", []string{"exec", "-d", name, "sh", "-c", "sleep 1; " + probe("exec-d")}},
		{"run", []string{"run", "--rm", "-v", out + ":/out", "busybox", "sh", "-c", probe("run")}},
		{"run-i", []string{"run", "-i", "--rm", "-v", out + ":/out", "busybox", "sh", "-c", probe("run-i")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := fmt.Sprintf(`"$@" > /dev/null; echo rc=$? > %s/%s.rc; exec sleep 60`, out, tc.name)
			term := e.inCallerTerminal(t, script, tc.args...)
			if rc := waitFile(t, filepath.Join(out, tc.name+".rc"), time.Minute, "berth to return"); strings.TrimSpace(rc) != "rc=0" {
				t.Fatalf("berth %v: %s; terminal shows:\n%s", tc.args, rc, term.output())
			}
			res := waitFile(t, filepath.Join(out, tc.name+".tty"), 30*time.Second, "the process's /dev/tty result")
			if !strings.Contains(res, "failed") || !strings.Contains(res, "No such device or address") {
				t.Errorf("opening /dev/tty in the container did not fail with ENXIO: %q", res)
			}
			st := parseStat(t, waitFile(t, filepath.Join(out, tc.name+".stat"), 5*time.Second, "the process's stat"))
			if st.ttyNr != 0 {
				t.Errorf("the process has a controlling terminal (tty_nr %d): TIOCSTI would reach the admin's shell", st.ttyNr)
			}
			if st.session != st.pid || st.pgrp != st.pid {
				t.Errorf("the process (pid %d) is not the leader of a session of its own: session %d, process group %d", st.pid, st.session, st.pgrp)
			}
			if strings.Contains(term.output(), "MARK-"+tc.name) {
				t.Errorf("the container wrote to the admin's terminal:\n%s", term.output())
			}
		})
	}

	t.Run("kill-0", func(t *testing.T) {
		res := filepath.Join(out, "kill.res")
		script := fmt.Sprintf(`sleep 60 & s=$!; "$@"; if kill -0 $s; then echo survived > %[1]s; kill $s; else echo killed > %[1]s; fi`, res)
		term := e.inCallerTerminal(t, script, "exec", name, "sh", "-c", "kill -TERM 0")
		term.wait()
		got, _ := os.ReadFile(res)
		if strings.TrimSpace(string(got)) != "survived" {
			t.Fatalf("kill -TERM 0 in the container reached the caller's process group (result %q); terminal shows:\n%s", got, term.output())
		}
	})
}

// TestExecTTYSession: with -t the process leads a new session whose
// controlling terminal is a new pty (the caller's belongs to the caller's
// session, so it cannot be that one), on its stdio.
func TestExecTTYSession(t *testing.T) {
	e := newEnv(t)
	name := fmt.Sprintf("execio-tty-%d", time.Now().UnixNano())
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	s := e.startPTY(t, "exec", "-t", name, "sh", "-c", `echo "STAT $(cat /proc/$$/stat)"; for fd in 0 1 2; do echo "FD$fd $(readlink /proc/$$/fd/$fd)"; done; echo END`)
	s.waitFor("END")
	if code := s.exitCode(); code != 0 {
		t.Fatalf("exec -t: exit %d\n%s", code, s.output())
	}
	text := strings.ReplaceAll(s.output(), "\r", "")
	m := regexp.MustCompile(`STAT ([^\n]*)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no stat in output:\n%s", text)
	}
	st := parseStat(t, m[1])
	if st.session != st.pid || st.ttyNr == 0 {
		t.Fatalf("exec -t: want a new session with a terminal, got pid %d session %d tty_nr %d", st.pid, st.session, st.ttyNr)
	}
	for fd := 0; fd <= 2; fd++ {
		if !regexp.MustCompile(fmt.Sprintf(`FD%d /dev/pts/\d+\n`, fd)).MatchString(text) {
			t.Fatalf("exec -t: fd %d is not the container's pty:\n%s", fd, text)
		}
	}
}

// TestExecStdioPipes: without -t the process's stdio are pipes relayed by
// berth: a host file that is berth's stdout can be neither truncated nor
// read through /proc/self/fd/1, and stdin, output, large transfers and
// exit codes still work.
func TestExecStdioPipes(t *testing.T) {
	e := newEnv(t)
	out := t.TempDir()
	name := fmt.Sprintf("execio-pipes-%d", time.Now().UnixNano())
	e.must("run", "-d", "--name", name, "-v", out+":/out", "busybox", "sleep", "1000")

	t.Run("host-file", func(t *testing.T) {
		hostFile := filepath.Join(out, "admin.log")
		const earlier = "SECRET-EARLIER-CONTENT\n"
		if err := os.WriteFile(hostFile, []byte(earlier), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(hostFile, os.O_WRONLY|os.O_APPEND, 0) // `>> admin.log`
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Reading berth's pipe through /proc blocks (nothing is written),
		// hence the timeout; a host file would be copied at once. The
		// shell opens /proc/self/fd/1 before it redirects fd 1 to the copy.
		cmd := e.command(ctx, "exec", name, "sh", "-c", `timeout 1 cat < /proc/self/fd/1 > /out/copy; echo X > /proc/self/fd/1`)
		cmd.Stdout = f
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("exec: %v\n%s", err, stderr.String())
		}
		got, _ := os.ReadFile(hostFile)
		if string(got) != earlier+"X\n" {
			t.Errorf("the host file berth's stdout was appended to reads %q, want %q", got, earlier+"X\n")
		}
		if copied, _ := os.ReadFile(filepath.Join(out, "copy")); bytes.Contains(copied, []byte("SECRET")) {
			t.Errorf("the container read the host file through /proc/self/fd/1: %q", copied)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		r := e.runIn([]byte("data\n"), "exec", "-i", name, "cat")
		if r.code != 0 || r.stdout != "data\n" {
			t.Fatalf("echo data | exec -i cat: %s", r)
		}
		// Without -i the process reads nothing of ours.
		r = e.runIn([]byte("data\n"), "exec", name, "cat")
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("echo data | exec cat: %s", r)
		}
	})

	t.Run("exit-code", func(t *testing.T) {
		if r := e.run("exec", name, "sh", "-c", "echo out; echo err >&2; exit 7"); r.code != 7 || r.stdout != "out\n" || r.stderr != "err\n" {
			t.Fatalf("exec sh -c 'exit 7': %s", r)
		}
		if r := e.run("exec", name, "sh", "-c", "kill -KILL $$"); r.code != 137 {
			t.Fatalf("exec of a process killed by SIGKILL: %s", r)
		}
	})

	t.Run("signals", func(t *testing.T) {
		for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
			ready := fmt.Sprintf("/out/sig-ready-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := e.command(ctx, "exec", name, "sh", "-c", fmt.Sprintf(`trap 'echo got-%[1]d; exit 9' %[1]d; touch %[2]s; while :; do sleep 0.1; done`, int(sig), ready))
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			// A process that missed the signal keeps our pipe open after
			// berth is killed at the deadline: do not wait for it then.
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFile := filepath.Join(out, filepath.Base(ready))
			eventually(t, 20*time.Second, "the trap to be set", func() bool { _, err := os.Stat(waitFile); return err == nil })
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 9 || !strings.Contains(stdout.String(), fmt.Sprintf("got-%d", int(sig))) {
				t.Fatalf("%v to berth exec: %v, exit %d, output %q", sig, err, code, stdout.String())
			}
		}
	})

	t.Run("large", func(t *testing.T) {
		const outN, errN = 3 << 20, 2 << 20
		r := e.run("exec", name, "sh", "-c", fmt.Sprintf("head -c %d /dev/zero >&2 & head -c %d /dev/zero; wait", errN, outN))
		if r.code != 0 || len(r.stdout) != outN || len(r.stderr) != errN {
			t.Fatalf("large output: exit %d, %d bytes of stdout (want %d), %d of stderr (want %d)", r.code, len(r.stdout), outN, len(r.stderr), errN)
		}
		in := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
		r = e.runIn(in, "exec", "-i", name, "wc", "-c")
		if r.code != 0 || strings.TrimSpace(r.stdout) != strconv.Itoa(len(in)) {
			t.Fatalf("large input: %s", r)
		}
	})
}
