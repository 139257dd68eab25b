package network

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/network/dns"
)

// A running container's embedded DNS server lives in its monitor, while
// `network connect` and `disconnect` of the running container run in
// another process. That process writes the container's file under
// notifyDir; the monitor watches it (inotify) and brings the server in
// line with the container's user networks as recorded now: their list,
// or a server started (and resolv.conf pointed at 127.0.0.11) when a
// container without one gets its first user network, or stopped (and
// the host's resolvers written back) when it leaves the last.

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

// watchNetworks keeps h.server in line with the networks of ep's
// container until the returned function is called (h.close).
func (a *Attacher) watchNetworks(ep *container.Endpoint, h *held) (func(), error) {
	if a.notifyDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(a.notifyDir, 0o700); err != nil {
		return nil, err
	}
	path := a.notifyPath(ep.ID)
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
			a.syncDNS(context.Background(), ep, h)
		}
	}()
	return func() {
		os.Remove(path)
		// Close waits until the reader has woken up, which may take
		// milliseconds on a busy machine: nobody needs to wait for it
		// (h.closed keeps the reader from acting meanwhile).
		go f.Close()
	}, nil
}

// syncDNS gives h.server the container's user networks as recorded now,
// starting or stopping the server (and rewriting resolv.conf) when the
// container gets its first or leaves its last.
func (a *Attacher) syncDNS(ctx context.Context, ep *container.Endpoint, h *held) {
	atts, err := a.svc.attachmentsOf(ctx, ep.ID)
	if err != nil {
		return
	}
	var nets []string
	for _, at := range atts {
		if at.net.IsUserDefined() {
			nets = append(nets, at.net.ID)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
	case h.server != nil && len(nets) > 0:
		h.server.SetNetworks(nets)
	case h.server == nil && len(nets) > 0 && a.startDNS != nil && ep.Container != nil:
		srv, err := a.startDNS(ctx, dns.Config{NetNSPath: ep.NetNSPath, Networks: nets, Upstream: a.upstream(ep.Container, atts), Links: dnsLinks(ep.Container)})
		if err != nil {
			return // the container keeps its resolvers
		}
		h.server = srv
		container.RewriteResolvConf(ep.Container, true)
	case h.server != nil:
		// Its last user network: the host's resolvers again. The
		// redirect of 127.0.0.11:53 stays, to ports nobody listens on
		// (refused at once); a later connect's server asks for them.
		h.server.Close()
		h.server = nil
		if ep.Container != nil {
			container.RewriteResolvConf(ep.Container, false)
		}
	}
}
