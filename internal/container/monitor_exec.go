package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// The monitor's side of exec sessions (see exec.go). The monitor starts
// the process through the runtime's detached exec: the runtime's helper
// (`berth _exec --detach`, `runc exec --detach`) exits once the process
// runs, and the process, orphaned, is adopted by the monitor, its child
// subreaper. So the monitor is its parent, waits for it and records its
// exit, whoever started it and whatever became of them. Its stdio are
// pipes the monitor made, or a new pty whose master the runtime sends on
// a console socket: never a caller's descriptor or terminal.

// Frames of the exec protocol on the attach socket.
const (
	// FrameExecStart (client -> monitor) is a JSON execStartMsg; the
	// monitor answers with FrameReady (a JSON execReadyMsg), and the
	// connection then carries the session's I/O as an attach stream
	// does, ending with FrameExit.
	FrameExecStart byte = 0x26
	// FrameExecResize (client -> monitor) is a JSON execResizeMsg; the
	// monitor answers with FrameReady.
	FrameExecResize byte = 0x27
	// FrameExecState (client -> monitor) names a session (JSON
	// execResizeMsg with its ID only); the monitor answers with FrameReady
	// carrying the process's pid while it runs, none otherwise.
	FrameExecState byte = 0x28
)

// monitorExecs are a monitor's exec sessions.
type monitorExecs struct {
	mu sync.Mutex
	// started are the sessions whose start this monitor accepted.
	started map[string]bool
	running map[string]*execProc
	wg      sync.WaitGroup
	reap    *reapGuard
	// settle hands memory back once sessions have started or ended
	// and nothing has happened for a while (see settleLater).
	settle *time.Timer
}

// settleDelay is how long the monitor waits after an exec's start or end
// before it gives back the memory the exec took (a burst of execs pays
// for it once).
const settleDelay = 300 * time.Millisecond

// settleLater gives back, settleDelay after the last exec activity, the
// heap and binary pages a session's start and relay took, so that an
// idle monitor stays as small with execs behind it as without.
func (x *monitorExecs) settleLater() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.settle == nil {
		x.settle = time.AfterFunc(settleDelay, releaseIdleMemory)
		return
	}
	x.settle.Reset(settleDelay)
}

func newMonitorExecs() *monitorExecs {
	return &monitorExecs{started: map[string]bool{}, running: map[string]*execProc{}, reap: newReapGuard()}
}

// forget drops id from started: the record tells from now on.
func (x *monitorExecs) forget(id string) {
	x.mu.Lock()
	delete(x.started, id)
	x.mu.Unlock()
}

// waitAll waits, at most d, until every session's exit is recorded. They
// end with the container's pid namespace, so this is quick.
func (x *monitorExecs) waitAll(d time.Duration) {
	done := make(chan struct{})
	go func() { x.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// execProc is a running exec'd process.
type execProc struct {
	id  string
	pid int
	tty bool

	mu     sync.Mutex
	pidfd  int        // -1 once the process is reaped
	stdin  *os.File   // our end of its stdin pipe; nil when none or closed
	pty    *os.File   // the terminal's master, with tty
	client *monClient // the attached client; nil when none or gone
	// console receives the terminal while the process starts.
	console *execConsole

	outs     []outputStream
	outputs  sync.WaitGroup
	exited   chan struct{}
	recorded chan struct{} // closed once the record says it runs
}

// serveExec starts the session cl asks for and, unless detached, serves
// its I/O on cl until the process exits.
func (m *monitor) serveExec(cl *monClient, payload []byte) {
	var req execStartMsg
	if err := json.Unmarshal(payload, &req); err != nil || req.Process == nil || req.ID == "" {
		cl.fw.writeJSON(FrameReady, execReadyMsg{Error: "exec: bad start request", Class: "invalid"})
		return
	}
	p, err := m.startExec(req)
	if err != nil {
		r := execReadyMsg{Error: err.Error(), Class: errClass(err)}
		var st *errdefs.ExitStatus
		if errors.As(err, &st) {
			r.ExitCode = st.Code
		}
		cl.fw.writeJSON(FrameReady, r)
		return
	}
	if !req.Detach {
		cl.fw.writeJSON(FrameReady, execReadyMsg{Pid: p.pid})
		p.client = cl // before the output flows: none of it is lost
	}
	m.execs.wg.Add(1)
	go func() {
		defer m.execs.wg.Done()
		m.runExec(p, req.Detach)
	}()
	m.execs.settleLater()
	if req.Detach {
		<-p.recorded
		cl.fw.writeJSON(FrameReady, execReadyMsg{Pid: p.pid})
		return
	}
	var buf []byte
	for {
		kind, payload, err := readFrame(cl.conn, buf)
		if err != nil {
			break
		}
		buf = payload[:0]
		switch kind {
		case FrameStdin:
			if req.Stdin {
				p.writeStdin(payload)
			}
		case FrameCloseStdin:
			p.closeStdin()
		case FrameResize:
			if len(payload) == 4 {
				p.resize(binary.BigEndian.Uint16(payload[0:]), binary.BigEndian.Uint16(payload[2:]))
			}
		case FrameSignal:
			if len(payload) == 4 {
				p.signal(unix.Signal(binary.BigEndian.Uint32(payload)))
			}
		}
	}
	// The client went away (or was done): the process goes on, without
	// its stdin; as in a shell pipeline whose reader exited, it gets
	// EPIPE if it writes to its stdout or stderr again (a terminal's
	// output is drained and dropped).
	p.mu.Lock()
	p.client = nil
	p.mu.Unlock()
	p.closeStdin()
	if !p.tty {
		for _, o := range p.outs {
			o.r.Close()
		}
	}
}

// startExec starts the process of session req.ID and records it running.
func (m *monitor) startExec(req execStartMsg) (*execProc, error) {
	ctx := context.Background()
	x := m.execs
	x.mu.Lock()
	if x.started[req.ID] {
		x.mu.Unlock()
		return nil, errdefs.Conflict("Error: Exec command %s is already running", req.ID)
	}
	x.started[req.ID] = true
	x.mu.Unlock()
	// Once started here (started), and never if the record says it ran:
	// it may have, and ended, since the client read the record.
	c, err := m.s.lockedGet(ctx, m.id)
	if err != nil {
		x.forget(req.ID)
		return nil, err
	}
	if sess := c.Internal.Execs[req.ID]; sess == nil || sess.Started {
		x.forget(req.ID)
		if sess == nil {
			return nil, errNoSuchExec(req.ID)
		}
		return nil, errdefs.Conflict("Error: Exec command %s has already run", req.ID)
	}
	if err := execAllowed(c); err != nil {
		x.forget(req.ID)
		return nil, err
	}
	p, rio, cleanup, err := m.execStdio(req)
	if err != nil {
		return nil, m.execFailed(req.ID, err)
	}
	pidFile := filepath.Join(m.bundle, "exec-"+req.ID[:min(len(req.ID), 16)]+".pid")
	m.tr.mark("exec: stdio ready")
	x.reap.mu.Lock()
	_, err = m.rt.Exec(ctx, m.id, req.Process, pidFile, rio, true)
	if err == nil {
		p.pid, err = readPidFile(pidFile)
		if err == nil {
			x.reap.own[p.pid] = true
		}
	}
	x.reap.mu.Unlock()
	m.tr.mark("exec: runtime exec")
	os.Remove(pidFile)
	if err == nil && req.Process.Terminal {
		err = p.receiveTerminal()
	}
	cleanup()
	if err == nil {
		p.pidfd, err = unix.PidfdOpen(p.pid, 0)
	}
	if err != nil {
		if p.pid > 0 {
			// Started, but no terminal or no handle: it must not run
			// unseen.
			unix.Kill(p.pid, unix.SIGKILL)
			runtime.WaitPid(p.pid)
			x.reap.mu.Lock()
			delete(x.reap.own, p.pid)
			x.reap.mu.Unlock()
		}
		p.closeAll()
		return nil, m.execFailed(req.ID, err)
	}
	if req.Process.Terminal && req.Process.ConsoleSize != nil {
		p.resize(uint16(req.Process.ConsoleSize.Height), uint16(req.Process.ConsoleSize.Width))
	}
	x.mu.Lock()
	x.running[req.ID] = p
	x.mu.Unlock()
	return p, nil
}

// execConsole is the console socket of a starting terminal session.
type execConsole struct {
	ln  *net.UnixListener
	got chan *os.File
}

// execStdio makes the process's stdio: for a terminal a console socket
// (the runtime sends the pty's master on it), else pipes for the streams
// the client attaches and /dev/null for the others. cleanup closes what
// only the start needs, the process's ends included.
func (m *monitor) execStdio(req execStartMsg) (p *execProc, rio runtime.IO, cleanup func(), err error) {
	p = &execProc{id: req.ID, pidfd: -1, tty: req.Process.Terminal, exited: make(chan struct{}), recorded: make(chan struct{})}
	var theirs []*os.File
	var dir string
	cleanup = func() {
		for _, f := range theirs {
			f.Close()
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	fail := func(err error) (*execProc, runtime.IO, func(), error) {
		cleanup()
		p.closeAll()
		return nil, runtime.IO{}, func() {}, err
	}
	// Read-write, as Docker gives a process without -i its stdin.
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	theirs = append(theirs, devnull)
	rio.Stdin, rio.Stdout, rio.Stderr = devnull, devnull, devnull
	if p.tty {
		// The runtime connects to this path itself, so it must fit in
		// sun_path: a short private directory, not the bundle.
		if dir, err = os.MkdirTemp("", "berth-exec-"); err != nil {
			return fail(err)
		}
		sock := filepath.Join(dir, "c.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return fail(err)
		}
		con := &execConsole{ln: ln, got: make(chan *os.File, 1)}
		go func() { con.got <- ReceivePTY(ln); ln.Close() }()
		p.console = con
		rio.ConsoleSocket = sock
		return p, rio, cleanup, nil
	}
	if req.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		theirs = append(theirs, r)
		p.stdin, rio.Stdin = w, r
	}
	for _, o := range []struct {
		on   bool
		name string
		into **os.File
	}{{req.Stdout, "stdout", &rio.Stdout}, {req.Stderr, "stderr", &rio.Stderr}} {
		if !o.on {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		theirs = append(theirs, w)
		p.outs = append(p.outs, outputStream{name: o.name, r: r})
		*o.into = w
	}
	return p, rio, cleanup, nil
}

// receiveTerminal takes the pty master the runtime sent.
func (p *execProc) receiveTerminal() error {
	con := p.console
	p.console = nil
	select {
	case f := <-con.got:
		if f == nil {
			return errors.New("exec: the runtime sent no terminal")
		}
		p.pty = f
		p.outs = append(p.outs, outputStream{name: "stdout", r: f})
		return nil
	case <-time.After(10 * time.Second):
		con.ln.Close()
		return errors.New("exec: timed out waiting for the process's terminal")
	}
}

// execFailed records that session id could not start (exit code 126,
// or the runtime's 126/127) and returns err.
func (m *monitor) execFailed(id string, err error) error {
	st := cannotInvoke(err)
	code := st.Code
	m.s.update(context.Background(), m.id, func(c *Container) error {
		if e := c.Internal.Execs[id]; e != nil {
			e.Started, e.Running = true, false
			e.ExitCode, e.Error, e.Ended = &code, err.Error(), time.Now().UTC()
			c.ExecIDs = liveExecIDs(c.Internal.Execs)
		}
		return nil
	})
	m.execs.forget(id)
	return st
}

// runExec relays the process's output until it has exited and its output
// is drained, then records its exit and tells the client.
func (m *monitor) runExec(p *execProc, detached bool) {
	for _, o := range p.outs {
		p.outputs.Add(1)
		go p.pump(o)
	}
	waited := make(chan unix.WaitStatus, 1)
	go func() { waited <- runtime.WaitPid(p.pid) }()
	// The session is recorded running here, beside the attached client's
	// stream rather than in its way, and only if the process is still
	// running a moment later: a quick command (most are) gets one write
	// for its start and exit. A detached start is answered once the
	// record says it runs, so that an inspect right after finds it so.
	var ws unix.WaitStatus
	exited := false
	if !detached {
		select {
		case ws = <-waited:
			exited = true
		case <-time.After(quickExit):
		}
	}
	if !exited {
		m.s.update(context.Background(), m.id, func(c *Container) error {
			if e := c.Internal.Execs[p.id]; e != nil {
				e.Started, e.Running, e.Pid = true, true, p.pid
				c.ExecIDs = liveExecIDs(c.Internal.Execs)
			}
			return nil
		})
		m.tr.mark("exec: record running")
	}
	close(p.recorded)
	if !exited {
		ws = <-waited
	}
	code := runtime.ExitCode(ws)
	p.mu.Lock()
	unix.Close(p.pidfd)
	p.pidfd = -1
	p.mu.Unlock()
	x := m.execs
	x.reap.mu.Lock()
	delete(x.reap.own, p.pid)
	x.reap.mu.Unlock()
	close(p.exited)
	m.tr.mark("exec: exited")
	p.outputs.Wait()
	p.closeAll()
	m.tr.mark("exec: output drained")
	m.s.update(context.Background(), m.id, func(c *Container) error {
		if e := c.Internal.Execs[p.id]; e != nil {
			e.Started, e.Running, e.Pid = true, false, 0
			e.ExitCode, e.Ended = &code, time.Now().UTC()
			c.ExecIDs = liveExecIDs(c.Internal.Execs)
		}
		return nil
	})
	m.tr.mark("exec: record exit")
	x.mu.Lock()
	delete(x.running, p.id)
	// The record says it ran from now on: the monitor need not
	// remember it (a monitor may live for a great many execs).
	delete(x.started, p.id)
	x.mu.Unlock()
	m.s.Emit(context.Background(), ContainerEvent(m.c, "exec_die", "execID", p.id, "exitCode", strconv.Itoa(code)))
	p.mu.Lock()
	cl := p.client
	p.client = nil
	p.mu.Unlock()
	if cl != nil {
		cl.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		cl.fw.writeJSON(FrameExit, ExitMsg{ExitCode: code})
		cl.conn.Close()
	}
	x.settleLater()
}

// pump copies one output of the process to the attached client, if any,
// until every writer has closed it or, once the process has exited, it
// stays empty for drainIdle (a background process may keep it open).
func (p *execProc) pump(o outputStream) {
	defer p.outputs.Done()
	kind := FrameStdout
	if o.name == "stderr" {
		kind = FrameStderr
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-p.exited:
			o.r.SetReadDeadline(time.Now().Add(drainIdle))
		case <-stop:
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := o.r.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cl := p.client
			p.mu.Unlock()
			if cl != nil {
				cl.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if cl.fw.writeFrame(kind, buf[:n]) != nil {
					// A client that cannot keep up loses the output, not
					// the process its progress.
					p.mu.Lock()
					p.client = nil
					p.mu.Unlock()
				}
			}
		}
		if err != nil {
			break
		}
		select {
		case <-p.exited:
			o.r.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
	}
	if o.r != p.pty { // the terminal is closed by closeAll
		o.r.Close()
	}
}

// quickExit is how long an attached session's process may take to exit
// and still have its start and exit recorded in one write.
const quickExit = 20 * time.Millisecond

// drainIdle is how long output may pause, once the process has exited,
// before the monitor stops copying it. What the process itself wrote is
// already in the pipe by then; this only bounds what a background process
// that kept the pipe open may still add.
const drainIdle = 200 * time.Millisecond

func (p *execProc) writeStdin(b []byte) {
	p.mu.Lock()
	w := p.stdin
	if p.tty {
		w = p.pty
	}
	p.mu.Unlock()
	if w != nil {
		w.Write(b)
	}
}

// closeStdin ends the process's stdin (a terminal stays open).
func (p *execProc) closeStdin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

func (p *execProc) resize(h, w uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pty != nil {
		unix.IoctlSetWinsize(int(p.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
	}
}

// signal sends sig to the process through its pidfd, which names it
// for good: never a process that took over its pid.
func (p *execProc) signal(sig unix.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	}
}

func (p *execProc) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	if p.pty != nil {
		p.pty.Close()
		p.pty = nil
	}
	if p.console != nil {
		p.console.ln.Close()
		p.console = nil
	}
}

// resizeExec sets the terminal size of a running session for a client
// other than the one attached (Docker's exec resize).
// execState tells whether a session's process runs, and its pid: the
// record says so only a moment after the start (see runExec).
func (m *monitor) execState(cl *monClient, payload []byte) {
	var req execResizeMsg
	json.Unmarshal(payload, &req)
	m.execs.mu.Lock()
	p := m.execs.running[req.ID]
	m.execs.mu.Unlock()
	msg := execReadyMsg{}
	if p != nil {
		msg.Pid = p.pid
	}
	cl.fw.writeJSON(FrameReady, msg)
}

func (m *monitor) resizeExec(cl *monClient, payload []byte) {
	var req execResizeMsg
	if err := json.Unmarshal(payload, &req); err != nil {
		cl.fw.writeJSON(FrameReady, execReadyMsg{Error: "exec resize: bad request", Class: "invalid"})
		return
	}
	m.execs.mu.Lock()
	p := m.execs.running[req.ID]
	m.execs.mu.Unlock()
	if p == nil {
		cl.fw.writeJSON(FrameReady, execReadyMsg{Error: "Exec " + req.ID + " is not running", Class: "conflict"})
		return
	}
	p.resize(req.Height, req.Width)
	cl.fw.writeJSON(FrameReady, execReadyMsg{})
}
