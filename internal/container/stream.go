package container

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frames of the attach protocol between a monitor and its clients. Output
// frames use docker's stdcopy header (stream byte, three zero bytes, big-
// endian uint32 length), so a non-TTY attach stream can be passed on to a
// Docker API client as it is. Control frames use stream bytes docker never
// sends.
const (
	FrameStdin  byte = 0
	FrameStdout byte = 1
	FrameStderr byte = 2

	FrameReady      byte = 0x10 // monitor -> client: JSON readyMsg, once started (or failed)
	FrameExit       byte = 0x11 // monitor -> client: JSON ExitMsg, then the monitor closes
	FrameCloseStdin byte = 0x20 // client -> monitor: no more stdin
	FrameResize     byte = 0x21 // client -> monitor: 2 x uint16 (height, width)
	FrameSignal     byte = 0x22 // client -> monitor: uint32 signal number
	FrameDetach     byte = 0x23 // client -> monitor: stop sending me output
	FrameRemove     byte = 0x25 // client -> monitor: JSON removeMsg; remove the container once it exits
	FrameStopped    byte = 0x13 // monitor -> remover: JSON ExitMsg; torn down, the record is the remover's to delete (removeMsg.Handover)
	FrameRecordGone byte = 0x30 // remover -> monitor: JSON bool, whether the remover deleted the record

	maxFrame = 1 << 20
)

// ReadyMsg tells a client whether the container started.
type ReadyMsg struct {
	Error    string `json:"error,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"` // 126/127 when the command could not run
	Pid      int    `json:"pid,omitempty"`
}

// removeMsg asks a monitor to remove its container when it exits (rm -f).
type removeMsg struct {
	Volumes bool `json:"volumes"`
	// Handover: the remover deletes the record (see removeForRemover).
	Handover bool `json:"handover,omitempty"`
}

// ExitMsg tells a client how the container ended.
type ExitMsg struct {
	ExitCode  int    `json:"exitCode"`
	OOMKilled bool   `json:"oomKilled,omitempty"`
	Error     string `json:"error,omitempty"`
	Removed   bool   `json:"removed,omitempty"`
	// Stopped: the frame was FrameStopped, not the final FrameExit.
	Stopped bool `json:"-"`
}

// frameWriter serialises frames written by several goroutines.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (fw *frameWriter) writeFrame(kind byte, payload []byte) error {
	var hdr [8]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if _, err := fw.w.Write(hdr[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := fw.w.Write(payload)
	return err
}

func (fw *frameWriter) writeJSON(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.writeFrame(kind, b)
}

// readFrame reads one frame into buf (grown as needed).
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach stream: frame of %d bytes is too large", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
