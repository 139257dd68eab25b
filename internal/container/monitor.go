package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container/logfile"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// monitor is the per-container process that holds a container's stdio,
// writes its log, reaps it, records how it exited and applies its restart
// policy. It runs as `berth _monitor <id>`, started by Start.
type monitor struct {
	s       *Service
	id      string
	c       *Container
	rt      runtime.Runtime
	bundle  string
	log     *logfile.Writer
	mu      sync.Mutex
	clients map[*monClient]struct{}
	stdin   io.WriteCloser // the container's stdin, when -i
	pty     *os.File       // the PTY master, when -t
	// initFd is a pidfd of the current run's init (-1 between runs):
	// clients' signals go through it, so that none can reach a process
	// that took the pid of an init already reaped.
	initFd int
	tr     *tracer
	// remove is set by a client's FrameRemove: no restart, and the
	// container is removed (with its anonymous volumes when removeVolumes)
	// as soon as it exits.
	remove, removeVolumes bool
	// handover is set when the remover deletes the record (removal.go).
	handover *handover
	// deleted is closed once the runtime has deleted the last run.
	deleted chan struct{}
	// execs are the exec sessions the monitor runs (monitor_exec.go).
	execs *monitorExecs
}

// waitDeleted waits for the runtime to finish deleting the previous run.
func (m *monitor) waitDeleted() {
	if m.deleted != nil {
		<-m.deleted
		m.deleted = nil
	}
}

type monClient struct {
	conn   net.Conn
	fw     *frameWriter
	opts   AttachOptions
	active bool // hello received (always true for the starter's connection)
}

// RunMonitor is the body of `berth _monitor`. starter is the connection to
// the process that started it (file descriptor 3). With await the monitor
// was started ahead of its container (see PendingMonitor): it waits for
// its go-ahead first, and returns nil without doing anything if the
// starter goes away instead.
func (s *Service) RunMonitor(ctx context.Context, id string, starter *os.File, await bool) error {
	if await {
		if starter == nil {
			return errors.New("monitor: --await needs the starter's socket")
		}
		// encoding/json builds its tables for a type on first use, in
		// every process. Build the record's now, while the starter is
		// still creating the container: loading the record and recording
		// the start, both on the path `run` waits for, then skip it.
		if raw, err := json.Marshal(&Container{}); err == nil {
			json.Unmarshal(raw, &Container{})
		}
		buf := make([]byte, 1)
		if n, _ := starter.Read(buf); n != 1 || buf[0] != monitorGo {
			return nil
		}
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	// A subreaper must reap what it adopts (see reapAdopted).
	reapCtx, stopReaping := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReaping()
	execs := newMonitorExecs()
	go reapAdopted(reapCtx, execs.reap)
	tr := newTracer("monitor")
	writeMonitorPid(filepath.Join(s.BundleDir(id), "monitor.pid"))
	m := &monitor{tr: tr, s: s, id: id, bundle: s.BundleDir(id), clients: map[*monClient]struct{}{}, execs: execs, initFd: -1}
	var first *monClient
	if starter != nil {
		conn, err := net.FileConn(starter)
		starter.Close()
		if err == nil {
			first = &monClient{conn: conn, fw: &frameWriter{w: conn}, opts: AttachOptions{Stdin: true, Stdout: true, Stderr: true}, active: true}
		}
	}
	c, err := s.lockedGet(ctx, id)
	if err != nil {
		m.fail(first, err, 0)
		return err
	}
	m.c = c
	m.rt = s.runtimeFor(c)
	tr.mark("load record")
	if c.HostConfig.LogConfig.Type == "json-file" && c.LogPath != "" {
		wopts, err := LogWriterOptions(c.HostConfig.LogConfig.Config)
		if err == nil {
			m.log, err = logfile.NewWriter(c.LogPath, wopts)
		}
		if err != nil {
			m.fail(first, fmt.Errorf("open log: %w", err), 0)
			return err
		}
		defer m.log.Close()
	}
	ln, err := m.listen()
	if err != nil {
		m.fail(first, err, 0)
		return err
	}
	defer ln.Close()
	if first != nil {
		m.addClient(first)
	}
	tr.mark("log + attach socket")

	backoff := 100 * time.Millisecond
	var exit ExitMsg
	for attempt := 0; ; attempt++ {
		started := time.Now()
		status, err := m.runOnce(ctx, attempt)
		if err != nil {
			code := 0
			var st *errdefs.ExitStatus
			if errors.As(err, &st) {
				code = st.Code
			}
			m.fail(nil, err, code)
			return err
		}
		exit = ExitMsg{ExitCode: status.code, OOMKilled: status.oom}
		restart, delay := m.shouldRestart(status.code, time.Since(started), &backoff)
		m.mu.Lock()
		restart = restart && !m.remove
		m.mu.Unlock()
		if !restart {
			break // the final detach below lets the namespace take the veth
		}
		// Restarting: the endpoint goes now (its address may change, as
		// in Docker) and comes back at the next run; its events after
		// die, in Docker's order.
		var netEvents []Event
		s.detachNetworkHolding(ctx, m.c, false, &netEvents)
		if _, err := s.update(ctx, id, func(c *Container) error {
			c.State.Status, c.State.Restarting, c.State.Running = "restarting", true, false
			c.State.Pid = 0
			c.State.ExitCode, c.State.OOMKilled = status.code, status.oom
			c.State.FinishedAt = FormatTime(time.Now())
			c.RestartCount++
			return nil
		}); err != nil {
			break
		}
		m.emit("die", status.code)
		m.emitHeld(netEvents)
		if !m.sleepUnlessStopped(ctx, delay) {
			break
		}
		m.waitDeleted()
	}
	// Final bookkeeping, then tell clients and go.
	m.execs.waitAll(2 * time.Second)
	snapshot.Unmount(s.RootfsDir(id))
	m.mu.Lock()
	remove, removeVolumes := m.remove, m.removeVolumes
	m.mu.Unlock()
	var netEvents []Event // emitted after die, in Docker's order
	var finishNet func(context.Context) error
	if m.c.HostConfig.AutoRemove || remove {
		// Its ID never runs again: the slow part of the network's
		// teardown waits until the clients heard of the exit.
		finishNet, _ = s.detachNetworkDeferred(ctx, m.c, &netEvents)
	} else {
		// Its guards go after the report too (netstop.go).
		finishNet, _ = s.detachNetworkStopped(ctx, m.c, &netEvents)
	}
	m.tr.mark("detach network")
	if remove && !m.c.HostConfig.AutoRemove && m.removeForRemover(ctx, &exit, netEvents, removeVolumes) {
		m.tr.mark("remove")
		m.report(ctx, ln, exit, finishNet)
		return nil
	}
	c, err = s.update(ctx, id, func(c *Container) error {
		c.State.Status = "exited"
		c.State.Running, c.State.Paused, c.State.Restarting = false, false, false
		c.State.Pid = 0
		c.State.ExitCode, c.State.OOMKilled = exit.ExitCode, exit.OOMKilled
		c.State.FinishedAt = FormatTime(time.Now())
		if c.State.Health != nil {
			c.State.Health.Status = "unhealthy"
		}
		c.Internal.ExitedAt = time.Now()
		endExecs(c)
		if c.HostConfig.AutoRemove || remove {
			c.State.Status = "removing" // one transaction fewer on the removal path
			// The monitor stays recorded: the removal is its own, and
			// reconciliation finishes it only if the monitor dies.
		} else {
			c.Internal.MonitorPid, c.Internal.MonitorStart = 0, 0
		}
		return nil
	})
	m.tr.mark("unmount + record exit")
	m.emit("die", exit.ExitCode)
	m.emitHeld(netEvents)
	m.waitDeleted()
	if err == nil && (c.HostConfig.AutoRemove || remove) {
		// --rm removes anonymous volumes like docker; rm -f only with -v.
		if rerr := s.removeStopped(ctx, c, c.HostConfig.AutoRemove || removeVolumes); rerr == nil {
			exit.Removed = true
		} else {
			exit.Error = rerr.Error()
		}
	}
	m.tr.mark("auto-remove")
	m.report(ctx, ln, exit, finishNet)
	return nil
}

// report tells the clients how the container ended and closes the attach
// socket; then it finishes the network's teardown (finishNet, when set).
func (m *monitor) report(ctx context.Context, ln *net.UnixListener, exit ExitMsg, finishNet func(context.Context) error) {
	ln.Close()
	os.Remove(m.s.attachSocket(m.id))
	m.broadcastJSON(FrameExit, exit)
	m.closeClients()
	if finishNet != nil {
		finishNet(ctx)
		m.tr.mark("unpublish ports")
	}
}

// gatedRunner is a runtime that starts a container's command only once
// the caller's gate returned (runtime.Builtin.RunGated).
type gatedRunner interface {
	RunGated(ctx context.Context, id, bundle, pidFile string, io runtime.IO, gate func(context.Context) error) error
}

type exitStatus struct {
	code int
	oom  bool
}

// runOnce creates and starts the container, serves its stdio until it
// exits, and deletes it from the runtime.
func (m *monitor) runOnce(ctx context.Context, attempt int) (exitStatus, error) {
	c := m.c
	rt := m.rt
	if rt.HasState(m.id) {
		rt.Delete(ctx, m.id, true) // leftovers of a crashed predecessor
	}
	// A runtime that can wait for it attaches the network while it makes
	// the container's mounts (a bridge's veth, addresses and rules take
	// as long as the rest of a start); others get it attached first.
	gated, canGate := rt.(gatedRunner)
	if canGate {
		if err := m.s.prepareNetwork(ctx, c); err != nil {
			return exitStatus{}, err
		}
	} else if err := m.s.attachNetwork(ctx, c); err != nil {
		return exitStatus{}, err
	}
	pidFile := filepath.Join(m.bundle, "init.pid")
	os.Remove(pidFile)
	var rio runtime.IO
	var closeAfterCreate []*os.File
	var outputs []outputStream
	// Read-write, as Docker gives a container without -i its stdin.
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return exitStatus{}, err
	}
	defer devnull.Close()
	var consoleLn *net.UnixListener
	if c.Config.Tty {
		// The runtime connects to this path itself, so it must fit in
		// sun_path: a short private directory, not the bundle.
		sockDir, err := os.MkdirTemp("", "berth-console-")
		if err != nil {
			return exitStatus{}, err
		}
		defer os.RemoveAll(sockDir)
		sock := filepath.Join(sockDir, "c.sock")
		consoleLn, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return exitStatus{}, err
		}
		defer consoleLn.Close()
		rio.ConsoleSocket = sock
		rio.Stdin, rio.Stdout, rio.Stderr = devnull, devnull, devnull
	} else {
		if c.Config.OpenStdin {
			r, w, err := os.Pipe()
			if err != nil {
				return exitStatus{}, err
			}
			rio.Stdin = r
			closeAfterCreate = append(closeAfterCreate, r)
			m.mu.Lock()
			m.stdin = w
			m.mu.Unlock()
		} else {
			rio.Stdin = devnull
		}
		for _, name := range []string{"stdout", "stderr"} {
			r, w, err := os.Pipe()
			if err != nil {
				return exitStatus{}, err
			}
			closeAfterCreate = append(closeAfterCreate, w)
			outputs = append(outputs, outputStream{name: name, r: r})
			if name == "stdout" {
				rio.Stdout = w
			} else {
				rio.Stderr = w
			}
		}
	}
	var ptyCh chan *os.File
	if consoleLn != nil {
		ptyCh = make(chan *os.File, 1)
		go func() { ptyCh <- ReceivePTY(consoleLn) }()
	}
	m.tr.mark("stdio ready")
	// Created and started in one runtime call: the stdio is wired already,
	// so nothing needs to happen between the two steps.
	if canGate {
		err = gated.RunGated(ctx, m.id, m.bundle, pidFile, rio, func(ctx context.Context) error {
			err := m.s.connectNetwork(ctx, c)
			m.tr.mark("network (beside the runtime)")
			return err
		})
	} else {
		err = rt.Run(ctx, m.id, m.bundle, pidFile, rio)
	}
	m.tr.mark("runtime run")
	for _, f := range closeAfterCreate {
		f.Close()
	}
	if err != nil {
		for _, o := range outputs {
			o.r.Close()
		}
		rt.Delete(ctx, m.id, true)
		return exitStatus{}, err
	}
	if ptyCh != nil {
		select {
		case f := <-ptyCh:
			if f == nil {
				rt.Delete(ctx, m.id, true)
				return exitStatus{}, errors.New("the runtime sent no terminal")
			}
			m.mu.Lock()
			m.pty = f
			m.mu.Unlock()
			outputs = append(outputs, outputStream{name: "stdout", r: f})
		case <-time.After(10 * time.Second):
			rt.Delete(ctx, m.id, true)
			return exitStatus{}, errors.New("timed out waiting for the container's terminal")
		}
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		rt.Delete(ctx, m.id, true)
		return exitStatus{}, err
	}
	initFd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		rt.Kill(ctx, m.id, syscall.SIGKILL, true)
		runtime.WaitPid(pid)
		rt.Delete(ctx, m.id, true)
		return exitStatus{}, fmt.Errorf("open the container's init (pid %d): %w", pid, err)
	}
	m.mu.Lock()
	m.initFd = initFd
	if m.remove {
		// rm -f came while this run started (a restart): its SIGKILL
		// found no init to reach.
		unix.PidfdSendSignal(initFd, unix.SIGKILL, nil, 0)
	}
	m.mu.Unlock()
	waitCh := make(chan unix.WaitStatus, 1)
	go func() { waitCh <- runtime.WaitPid(pid) }()
	var copiers sync.WaitGroup
	for _, o := range outputs {
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			m.pump(o)
		}()
	}
	now := time.Now()
	myStart, _ := runtime.ProcessStartTime(os.Getpid())
	netSettings := c.NetworkSettings // as attachNetwork left them
	c, err = m.s.update(ctx, m.id, func(c *Container) error {
		c.State.Status, c.State.Running, c.State.Restarting, c.State.Paused = "running", true, false, false
		c.NetworkSettings = netSettings
		c.State.Pid = pid
		c.State.StartedAt = FormatTime(now)
		c.State.Error = ""
		if attempt == 0 {
			c.State.ExitCode, c.State.OOMKilled = 0, false
		}
		c.Internal.MonitorPid, c.Internal.MonitorStart = os.Getpid(), myStart
		c.Internal.StartPendingBy = nil // it runs: no longer its starter's
		if c.Config.Healthcheck != nil && !healthDisabled(c.Config.Healthcheck) {
			c.State.Health = &Health{Status: "starting", Log: []HealthLog{}}
		}
		return nil
	})
	if err != nil {
		rt.Kill(ctx, m.id, syscall.SIGKILL, true)
		<-waitCh
		m.mu.Lock()
		unix.Close(m.initFd)
		m.initFd = -1
		m.mu.Unlock()
		rt.Delete(ctx, m.id, true)
		return exitStatus{}, err
	}
	m.c = c
	m.tr.mark("record running")
	m.emit("start", 0)
	if attempt == 0 {
		m.broadcastJSON(FrameReady, ReadyMsg{Pid: pid})
	}
	hcCtx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		m.healthLoop(hcCtx)
	}()
	var ws unix.WaitStatus
	select {
	case ws = <-waitCh:
	case <-time.After(200 * time.Millisecond):
		// Still running after its start: settle into idleness.
		releaseIdleMemory()
		ws = <-waitCh
	}
	m.mu.Lock()
	unix.Close(m.initFd)
	m.initFd = -1
	m.mu.Unlock()
	enableMonitorGC()
	m.tr.mark("container exited")
	stopHealth()
	// No check of this run may outlive it: one still starting would
	// exec into the next run, under the same id.
	<-healthDone
	// The pipes close when the last process holding them exits; with the
	// pid namespace gone that is now, but do not hang on a stray holder.
	done := make(chan struct{})
	go func() { copiers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		for _, o := range outputs {
			o.r.Close()
		}
	}
	m.mu.Lock()
	if m.stdin != nil {
		m.stdin.Close()
		m.stdin = nil
	}
	if m.pty != nil {
		m.pty.Close()
		m.pty = nil
	}
	m.mu.Unlock()
	st := exitStatus{code: runtime.ExitCode(ws)}
	st.oom, _ = rt.OOMKilled(ctx, m.id)
	m.tr.mark("drain output")
	// The runtime's delete (a process of its own) overlaps with the
	// unmount and the exit record; whoever needs it done waits on deleted.
	deleted := make(chan struct{})
	go func() {
		rt.Delete(ctx, m.id, true)
		m.tr.mark("runtime delete")
		close(deleted)
	}()
	m.deleted = deleted
	return st, nil
}

type outputStream struct {
	name string
	r    *os.File
}

// pump copies one output stream to the log and to attached clients.
func (m *monitor) pump(o outputStream) {
	defer o.r.Close()
	kind := FrameStdout
	if o.name == "stderr" {
		kind = FrameStderr
	}
	var lw *io.PipeWriter
	var logDone chan struct{}
	if m.log != nil {
		var pr *io.PipeReader
		pr, lw = io.Pipe()
		logDone = make(chan struct{})
		go func() {
			defer close(logDone)
			m.log.CopyStream(o.name, pr)
			io.Copy(io.Discard, pr)
		}()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := o.r.Read(buf)
		if n > 0 {
			if lw != nil {
				lw.Write(buf[:n])
			}
			m.broadcast(kind, buf[:n])
		}
		if err != nil {
			break
		}
	}
	if lw != nil {
		lw.Close()
		<-logDone
	}
}

func (m *monitor) listen() (*net.UnixListener, error) {
	path := m.s.attachSocket(m.id)
	os.Remove(path)
	ln, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("attach socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			m.addClient(&monClient{conn: conn, fw: &frameWriter{w: conn}})
		}
	}()
	return ln, nil
}

func (m *monitor) addClient(cl *monClient) {
	m.mu.Lock()
	m.clients[cl] = struct{}{}
	m.mu.Unlock()
	go m.serveClient(cl)
}

func (m *monitor) dropClient(cl *monClient) {
	m.mu.Lock()
	delete(m.clients, cl)
	m.mu.Unlock()
	cl.conn.Close()
}

// serveClient reads a client's frames: hello, stdin, resize, signals.
func (m *monitor) serveClient(cl *monClient) {
	defer m.dropClient(cl)
	defer m.answerHandover(cl, false) // a remover gone says no
	var buf []byte
	for {
		kind, payload, err := readFrame(cl.conn, buf)
		if err != nil {
			return
		}
		buf = payload[:0]
		switch kind {
		case FrameHello:
			var o AttachOptions
			json.Unmarshal(payload, &o)
			m.mu.Lock()
			cl.opts, cl.active = o, true
			m.mu.Unlock()
		case FrameStdin:
			if !cl.opts.Stdin {
				continue
			}
			m.mu.Lock()
			var w io.Writer
			if m.pty != nil {
				w = m.pty
			} else if m.stdin != nil {
				w = m.stdin
			}
			m.mu.Unlock()
			if w != nil {
				w.Write(payload)
			}
		case FrameCloseStdin:
			if !cl.opts.Stdin {
				continue
			}
			m.mu.Lock()
			if m.stdin != nil && m.c.Config.StdinOnce {
				m.stdin.Close()
				m.stdin = nil
			}
			m.mu.Unlock()
		case FrameResize:
			if len(payload) == 4 {
				m.mu.Lock()
				if m.pty != nil {
					unix.IoctlSetWinsize(int(m.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{
						Row: binary.BigEndian.Uint16(payload[0:]), Col: binary.BigEndian.Uint16(payload[2:]),
					})
				}
				m.mu.Unlock()
			}
		case FrameSignal:
			if len(payload) == 4 {
				m.signalInit(unix.Signal(binary.BigEndian.Uint32(payload)))
			}
		case FrameDetach:
			return
		case FrameExecStart:
			// The connection now carries the session's I/O.
			m.serveExec(cl, payload)
			return
		case FrameExecResize:
			m.resizeExec(cl, payload)
		case FrameExecState:
			m.execState(cl, payload)
		case FrameRemove:
			var rm removeMsg
			json.Unmarshal(payload, &rm)
			m.mu.Lock()
			m.remove, m.removeVolumes = true, rm.Volumes
			if rm.Handover && m.handover == nil {
				m.handover = &handover{remover: cl, gone: make(chan bool, 1)}
			}
			m.mu.Unlock()
			// Killing the init of a pid namespace ends every process in it.
			m.signalInit(unix.SIGKILL)
		case FrameRecordGone:
			var gone bool
			json.Unmarshal(payload, &gone)
			m.answerHandover(cl, gone)
		}
	}
}

// signalInit sends sig to the current run's init, if one runs.
func (m *monitor) signalInit(sig unix.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.initFd >= 0 {
		unix.PidfdSendSignal(m.initFd, sig, nil, 0)
	}
}

func (m *monitor) broadcast(kind byte, p []byte) {
	m.mu.Lock()
	targets := make([]*monClient, 0, len(m.clients))
	for cl := range m.clients {
		if cl.active && (kind == FrameStdout && cl.opts.Stdout || kind == FrameStderr && cl.opts.Stderr || kind >= FrameReady) {
			targets = append(targets, cl)
		}
	}
	m.mu.Unlock()
	for _, cl := range targets {
		// A client that cannot keep up is dropped rather than stalling the
		// container's output.
		cl.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := cl.fw.writeFrame(kind, p); err != nil {
			m.dropClient(cl)
		}
	}
}

func (m *monitor) broadcastJSON(kind byte, v any) { m.broadcast(kind, mustJSON(v)) }

func (m *monitor) closeClients() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for cl := range m.clients {
		cl.conn.Close()
	}
}

// fail reports a start failure to the starter and records it on the
// container: it stays "created" with the exit code and error, like docker.
func (m *monitor) fail(first *monClient, err error, code int) {
	if code == 0 {
		code = 128
	}
	msg := ReadyMsg{Error: err.Error()}
	var st *errdefs.ExitStatus
	if errors.As(err, &st) {
		msg.ExitCode = st.Code
	}
	// The starter hears of the failure only once a --rm container is
	// gone, as docker's run waits for the removal: nothing is left for
	// it (or a script after it) to find.
	var finishNet func(context.Context) error
	defer func() {
		if first != nil {
			first.fw.writeJSON(FrameReady, msg)
			first.conn.Close()
		} else {
			m.broadcastJSON(FrameReady, msg)
			m.closeClients()
		}
		if finishNet != nil {
			finishNet(context.Background()) // its guards, after the report (netstop.go)
		}
	}()
	ctx := context.Background()
	snapshot.Unmount(m.s.RootfsDir(m.id))
	if m.c != nil {
		finishNet, _ = m.s.detachNetworkStopped(ctx, m.c, nil)
	}
	c, uerr := m.s.update(ctx, m.id, func(c *Container) error {
		c.State.Running, c.State.Restarting = false, false
		if c.State.Status == "restarting" || c.State.Status == "running" {
			c.State.Status = "exited"
		}
		c.State.Error = err.Error()
		c.State.ExitCode = code
		c.State.Pid = 0
		c.Internal.MonitorPid, c.Internal.MonitorStart = 0, 0
		return nil
	})
	if uerr == nil && c.HostConfig.AutoRemove {
		m.s.removeStopped(ctx, c, true)
	}
	os.Remove(m.s.attachSocket(m.id))
}

// shouldRestart applies the restart policy with docker's back-off: the
// delay doubles from 100 ms up to a minute and resets after 10 s of uptime.
func (m *monitor) shouldRestart(code int, uptime time.Duration, backoff *time.Duration) (bool, time.Duration) {
	c, err := m.s.lockedGet(context.Background(), m.id)
	if err != nil || c.Internal.ManualStop {
		return false, 0
	}
	m.c = c
	p := c.HostConfig.RestartPolicy
	restart := false
	switch p.Name {
	case "always", "unless-stopped":
		restart = true
	case "on-failure":
		restart = code != 0 && (p.MaximumRetryCount == 0 || c.RestartCount < p.MaximumRetryCount)
	}
	if !restart {
		return false, 0
	}
	if uptime >= 10*time.Second {
		*backoff = 100 * time.Millisecond
	}
	d := *backoff
	*backoff = min(*backoff*2, time.Minute)
	return true, d
}

// sleepUnlessStopped waits d, returning false when the user stopped the
// container meanwhile.
func (m *monitor) sleepUnlessStopped(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
		m.mu.Lock()
		remove := m.remove // rm -f arrived during the back-off
		m.mu.Unlock()
		if remove {
			return false
		}
		if c, err := m.s.lockedGet(ctx, m.id); err != nil || c.Internal.ManualStop {
			return false
		}
	}
	return true
}

// emitHeld emits events a detach held back.
func (m *monitor) emitHeld(evs []Event) {
	for _, ev := range evs {
		m.s.Emit(context.Background(), ev)
	}
}

// emit records a container event.
func (m *monitor) emit(action string, code int) {
	attrs := map[string]string{"name": m.c.ShortName(), "image": m.c.Config.Image}
	if action == "die" {
		attrs["exitCode"] = strconv.Itoa(code)
	}
	m.s.Emit(context.Background(), Event{Type: "container", Action: action, ID: m.id, Attributes: attrs, Labels: m.c.Config.Labels})
}

// ReceivePTY accepts the runtime's connection on the console socket and
// receives the PTY master it sends.
func ReceivePTY(ln *net.UnixListener) *os.File {
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil
	}
	defer conn.Close()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil
	}
	return os.NewFile(uintptr(fds[0]), "pty-master")
}
