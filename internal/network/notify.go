package network

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A running container's embedded DNS server lives in its monitor, while
// `network connect` and `disconnect` of the running container run in
// another process. That process writes the container's file under
// notifyDir; the monitor watches it (inotify) and gives the server the
// container's user networks as recorded now.

func (a *Attacher) notifyPath(containerID string) string {
	return filepath.Join(a.notifyDir, containerID)
}

// notifyChanged tells the monitor of container id that its networks
// changed.
func (a *Attacher) notifyChanged(id string) {
	if a.notifyDir == "" {
		return
	}
	os.WriteFile(a.notifyPath(id), nil, 0o600) // no watcher: nothing to tell
}

// watchNetworks keeps srv's networks those of container id, until the
// returned closer is called.
func (a *Attacher) watchNetworks(id string, srv DNSServer) (func(), error) {
	if a.notifyDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(a.notifyDir, 0o700); err != nil {
		return nil, err
	}
	path := a.notifyPath(id)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			atts, err := a.svc.attachmentsOf(context.Background(), id)
			if err != nil {
				continue
			}
			var nets []string
			for _, at := range atts {
				if at.net.IsUserDefined() {
					nets = append(nets, at.net.ID)
				}
			}
			srv.SetNetworks(nets)
		}
	}()
	return func() {
		f.Close()
		os.Remove(path)
	}, nil
}
