package logfile

import (
	"bytes"
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// watcher wakes a follower when something happens to the log's files. It
// watches the directory rather than the file: that sees the file appear,
// get renamed away and be created again, which a watch on the file itself
// would not.
type watcher struct {
	c    chan struct{} // receives a value (coalesced) per batch of events
	f    *os.File
	done chan struct{}
}

// newWatcher watches dir for changes to base and base.*; it returns nil if
// inotify is not available (then the follower polls).
func newWatcher(dir, base string) *watcher {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	const mask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE |
		unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor goes to the runtime poller, so that Close
	// interrupts the blocked Read below.
	w := &watcher{c: make(chan struct{}, 1), f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go w.run(base)
	return w
}

func (w *watcher) run(base string) {
	defer close(w.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		if relevant(buf[:n], base) {
			select {
			case w.c <- struct{}{}:
			default:
			}
		}
	}
}

// relevant reports whether a batch of inotify events concerns the log.
func relevant(b []byte, base string) bool {
	// struct inotify_event: int wd; uint32 mask, cookie, len; char name[len].
	for len(b) >= unix.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(b[4:8])
		end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
		if end > len(b) {
			return true
		}
		if mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			return true
		}
		name := bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")
		if string(name) == base || (bytes.HasPrefix(name, []byte(base)) && len(name) > len(base) && name[len(base)] == '.') {
			return true
		}
		b = b[end:]
	}
	return false
}

func (w *watcher) close() {
	w.f.Close()
	<-w.done
}
