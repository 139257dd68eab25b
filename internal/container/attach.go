package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// FrameHello opens a connection to a monitor's attach socket: JSON
// AttachOptions saying which streams the client wants.
const FrameHello byte = 0x24

// AttachOptions choose the streams of an attachment.
type AttachOptions struct {
	Stdin  bool `json:"stdin"`
	Stdout bool `json:"stdout"`
	Stderr bool `json:"stderr"`
}

// Attachment is a client's connection to a container's monitor.
type Attachment struct {
	conn net.Conn
	fw   *frameWriter
	tty  bool
	buf  []byte
	// early holds output that arrived before the ready frame: the monitor
	// reports readiness only once the started container is recorded, and
	// a fast container may have written by then.
	early []earlyFrame
}

type earlyFrame struct {
	kind    byte
	payload []byte
}

func newAttachment(conn net.Conn, tty bool) *Attachment {
	return &Attachment{conn: conn, fw: &frameWriter{w: conn}, tty: tty}
}

// Tty tells whether the container has a terminal (output is one raw stream).
func (a *Attachment) Tty() bool { return a.tty }

// Close ends the attachment; the container goes on.
func (a *Attachment) Close() error { return a.conn.Close() }

func (a *Attachment) waitReady(ctx context.Context) (ReadyMsg, error) {
	var msg ReadyMsg
	stop := context.AfterFunc(ctx, func() { a.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		kind, payload, err := readFrame(a.conn, a.buf)
		if err != nil {
			if ctx.Err() != nil {
				return msg, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return msg, errors.New("the monitor exited without reporting")
			}
			return msg, err
		}
		switch kind {
		case FrameReady:
			return msg, json.Unmarshal(payload, &msg)
		case FrameStdout, FrameStderr, FrameExit:
			a.early = append(a.early, earlyFrame{kind, append([]byte(nil), payload...)})
		}
	}
}

// Stream copies the container's output to stdout and stderr (stderr is not
// used for a TTY) and stdin to the container until the container exits,
// and returns how it exited. When stdin is nil none is sent.
func (a *Attachment) Stream(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (*ExitMsg, error) {
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if a.fw.writeFrame(FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					a.fw.writeFrame(FrameCloseStdin, nil)
					return
				}
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() { a.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		var kind byte
		var payload []byte
		if len(a.early) > 0 {
			kind, payload = a.early[0].kind, a.early[0].payload
			a.early = a.early[1:]
		} else {
			var err error
			kind, payload, err = readFrame(a.conn, a.buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, io.EOF) {
					return nil, errMonitorGone
				}
				return nil, err
			}
			a.buf = payload[:0]
		}
		switch kind {
		case FrameStdout:
			if stdout != nil {
				stdout.Write(payload)
			}
		case FrameStderr:
			if stderr != nil {
				stderr.Write(payload)
			}
		case FrameExit, FrameStopped:
			var msg ExitMsg
			if err := json.Unmarshal(payload, &msg); err != nil {
				return nil, err
			}
			msg.Stopped = kind == FrameStopped
			return &msg, nil
		}
	}
}

var errMonitorGone = errors.New("the container's monitor went away")

// Resize sets the container's terminal size.
func (a *Attachment) Resize(height, width uint16) error {
	var p [4]byte
	binary.BigEndian.PutUint16(p[0:], height)
	binary.BigEndian.PutUint16(p[2:], width)
	return a.fw.writeFrame(FrameResize, p[:])
}

// Signal sends sig to the container's main process.
func (a *Attachment) Signal(sig syscall.Signal) error {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(sig))
	return a.fw.writeFrame(FrameSignal, p[:])
}

// CloseStdin closes the container's standard input.
func (a *Attachment) CloseStdin() error { return a.fw.writeFrame(FrameCloseStdin, nil) }

// Attach connects to a running container's monitor.
func (s *Service) Attach(ctx context.Context, ref string, opts AttachOptions) (*Attachment, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running && !c.State.Restarting {
		return nil, errdefs.Conflict("You cannot attach to a stopped container, start it first")
	}
	if c.State.Paused {
		return nil, errdefs.Conflict("You cannot attach to a paused container, unpause it first")
	}
	conn, err := s.dialMonitor(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	att := newAttachment(conn, c.Config.Tty)
	if err := att.fw.writeJSON(FrameHello, opts); err != nil {
		conn.Close()
		return nil, err
	}
	return att, nil
}

func (s *Service) dialMonitor(ctx context.Context, id string) (net.Conn, error) {
	conn, err := dialUnix(ctx, s.attachSocket(id))
	if err != nil {
		return nil, errdefs.Conflict("container %s is not running: %v", id[:12], err)
	}
	return conn, nil
}

// Wait blocks until the container is not running and returns its exit code,
// like `docker wait`.
func (s *Service) Wait(ctx context.Context, ref string) (int, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return 0, err
	}
	if err := s.waitMonitor(ctx, c.ID); err != nil {
		return 0, err
	}
	c, err = s.Get(ctx, c.ID)
	if errdefs.IsNotFound(err) {
		return 0, nil // removed on exit (--rm); its code went with it
	}
	if err != nil {
		return 0, err
	}
	return c.State.ExitCode, nil
}

// waitMonitor returns when the container's monitor has exited, or at once
// when none runs.
func (s *Service) waitMonitor(ctx context.Context, id string) error {
	conn, err := s.dialMonitor(ctx, id)
	if err == nil {
		att := newAttachment(conn, false)
		defer att.Close()
		if err := att.fw.writeJSON(FrameHello, AttachOptions{}); err == nil {
			_, err := att.Stream(ctx, nil, nil, nil)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			_ = err // an exit frame or EOF: either way the monitor is done
		}
	}
	// The socket is gone or closed; the monitor may still be finishing its
	// bookkeeping. Poll its pid until it is gone.
	for {
		c, err := s.lockedGet(ctx, id)
		if err != nil || !processAlive(c.Internal.MonitorPid, c.Internal.MonitorStart) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// StoppedChan returns a channel closed once the container stops running.
func (s *Service) StoppedChan(ctx context.Context, id string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		s.waitMonitor(ctx, id)
	}()
	return ch
}

func (e *ExitMsg) String() string { return fmt.Sprintf("exit %d", e.ExitCode) }
