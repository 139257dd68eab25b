package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// ExecStreams are the caller's side of an exec'd process's stdio. They are
// plain readers and writers so that any front end (the CLI's stdio, an API
// connection) can serve them; the process itself only ever sees pipes
// berth made, or a new pty.
type ExecStreams struct {
	// Stdin, when set, is copied to the process's stdin; its EOF closes
	// the process's stdin. Nil gives the process /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
}

// drainIdle is how long output may pause, once the process has exited,
// before berth stops copying it. What the process itself wrote is already
// in the pipe by then; this only bounds what a background process that
// kept the pipe open may still add.
const drainIdle = 200 * time.Millisecond

// ExecProcess is a started exec. Unless detached it owns the pipes between
// the process and the caller's streams and the goroutines that copy them;
// Wait must be called to end them.
type ExecProcess struct {
	// ID names the exec in events.
	ID string

	cmd      *exec.Cmd  // the runtime's helper, parent of the process
	theirs   []*os.File // the process's ends, closed once the runtime holds them
	stdin    *os.File   // our end of the process's stdin
	stdinSrc io.Reader
	outs     []*os.File // our ends of stdout and stderr
	outDsts  []io.Writer
	outputs  sync.WaitGroup
	exited   chan struct{}
}

// newExecRelay makes the pipes for a foreground exec and returns the
// runtime IO that hands their far ends to the process. With a TTY the
// runtime's helper serves the new pty on the caller's files itself (it
// needs the terminal for raw mode and window size, and never passes it
// on), so files are handed over as they are and only other streams go
// through pipes.
func newExecRelay(streams ExecStreams, tty bool) (*ExecProcess, runtime.IO, error) {
	p := &ExecProcess{exited: make(chan struct{})}
	var rio runtime.IO
	fail := func(err error) (*ExecProcess, runtime.IO, error) {
		p.started(nil, false)
		return nil, runtime.IO{}, err
	}
	if streams.Stdin != nil {
		if f, ok := streams.Stdin.(*os.File); ok && tty {
			rio.Stdin = f
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			p.theirs = append(p.theirs, r)
			p.stdin, p.stdinSrc, rio.Stdin = w, streams.Stdin, r
		}
	}
	for _, o := range []struct {
		dst  io.Writer
		into **os.File
	}{{streams.Stdout, &rio.Stdout}, {streams.Stderr, &rio.Stderr}} {
		if o.dst == nil {
			continue
		}
		if f, ok := o.dst.(*os.File); ok && tty {
			*o.into = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		p.theirs = append(p.theirs, w)
		p.outs, p.outDsts = append(p.outs, r), append(p.outDsts, o.dst)
		*o.into = w
	}
	return p, rio, nil
}

// started is told whether the runtime started the process (cmd its
// helper). Our copies of the process's ends go either way; on success the
// copying begins, on failure our ends close too.
func (p *ExecProcess) started(cmd *exec.Cmd, ok bool) {
	for _, f := range p.theirs {
		f.Close()
	}
	p.theirs = nil
	if !ok || cmd == nil {
		for _, f := range p.outs {
			f.Close()
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
		close(p.exited)
		return
	}
	p.cmd = cmd
	if p.stdin != nil {
		go func() {
			io.Copy(p.stdin, p.stdinSrc)
			p.stdin.Close()
		}()
	}
	for i, r := range p.outs {
		p.outputs.Add(1)
		go p.copyOutput(p.outDsts[i], r)
	}
}

// copyOutput copies src to dst until every writer has closed src or, once
// the process has exited, src stays empty for drainIdle.
func (p *ExecProcess) copyOutput(dst io.Writer, src *os.File) {
	defer p.outputs.Done()
	// Closing our end when dst fails makes the process's writes fail
	// (EPIPE), as in a shell pipeline.
	defer src.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-p.exited:
			src.SetReadDeadline(time.Now().Add(drainIdle))
		case <-stop:
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		select {
		case <-p.exited:
			src.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
	}
}

// Signal sends sig to the process (through the runtime's helper, which
// relays it).
func (p *ExecProcess) Signal(sig os.Signal) error {
	if p.cmd == nil {
		return errors.New("exec: the process is detached")
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits until the process has exited and its output has been copied,
// and returns its exit status (128+n when killed by signal n).
func (p *ExecProcess) Wait() (int, error) {
	if p.cmd == nil {
		return 0, errors.New("exec: a detached process cannot be waited for")
	}
	err := p.cmd.Wait()
	close(p.exited)
	p.outputs.Wait()
	if p.stdin != nil {
		// Ends a copy still blocked writing to the process.
		p.stdin.Close()
	}
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, fmt.Errorf("exec: %w", err)
}
