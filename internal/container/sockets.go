package container

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// maxSocketPath is the longest path bind(2) and connect(2) take for a unix
// socket (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// listenUnix listens on a unix socket at path, even when path is longer than
// sun_path: the socket is then bound through /proc/self/fd/N of its
// directory, which the kernel resolves like any other path.
func listenUnix(path string) (*net.UnixListener, error) {
	if len(path) <= maxSocketPath {
		return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	short := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// The listener would unlink the short name on Close, which no longer
	// resolves; callers remove path themselves.
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// dialUnix connects to a unix socket at path of any length.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	if len(path) <= maxSocketPath {
		return d.DialContext(ctx, "unix", path)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(int(dir.Fd()))+"/"+filepath.Base(path))
}
