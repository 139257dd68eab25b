package e2e

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptySession runs berth under a pseudo-terminal, as a user at a terminal.
type ptySession struct {
	t    *testing.T
	mu   sync.Mutex
	out  bytes.Buffer
	tty  io.ReadWriteCloser
	done chan error
}

func (e *env) startPTY(t *testing.T, args ...string) *ptySession {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := e.command(ctx, args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, tty: f, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { s.done <- cmd.Wait(); f.Close() }()
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *ptySession) waitFor(text string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.output(), text) {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %q; terminal shows:\n%q", text, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *ptySession) exitCode() int {
	s.t.Helper()
	select {
	case err := <-s.done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			return ee.ExitCode()
		}
		s.t.Fatal(err)
	case <-time.After(30 * time.Second):
		s.t.Fatalf("berth did not exit; terminal shows:\n%s", s.output())
	}
	return -1
}

func TestInteractiveTTY(t *testing.T) {
	e := newEnv(t)
	s := e.startPTY(t, "run", "-it", "--rm", "busybox", "sh")
	s.waitFor("# ")
	io.WriteString(s.tty, "stty size; tty; echo marker-$((40+2))\n")
	s.waitFor("marker-42")
	if out := s.output(); !strings.Contains(out, "30 100") || !strings.Contains(out, "/dev/pts/0") {
		t.Fatalf("terminal size or tty wrong:\n%s", out)
	}
	io.WriteString(s.tty, "exit 5\n")
	if code := s.exitCode(); code != 5 {
		t.Fatalf("exit code %d\n%s", code, s.output())
	}

	// exec -it into a detached container.
	e.must("run", "-d", "--name", "shell", "busybox", "sleep", "1000")
	x := e.startPTY(t, "exec", "-it", "shell", "sh")
	x.waitFor("# ")
	io.WriteString(x.tty, "tty; echo exec-$((1+1)); exit 3\n")
	x.waitFor("exec-2")
	if code := x.exitCode(); code != 3 {
		t.Fatalf("exec exit code %d\n%s", code, x.output())
	}
	if !strings.Contains(x.output(), "/dev/pts/") {
		t.Fatalf("exec -t got no terminal:\n%s", x.output())
	}
}

func TestSignalProxy(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, "run", "--rm", "--name", "trapper", "busybox", "sh", "-c", "trap 'echo got-int; exit 9' INT; touch /ready; while true; do sleep 0.1; done")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the trap to be set", func() bool {
		return e.run("exec", "trapper", "test", "-e", "/ready").code == 0
	})
	cmd.Process.Signal(interruptSignal)
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		code = ee.ExitCode()
	}
	if code != 9 || !strings.Contains(out.String(), "got-int") {
		t.Fatalf("SIGINT not proxied: exit %d, output %q", code, out.String())
	}
}
