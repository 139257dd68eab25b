package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/term"
)

// A foreground `exec -t` has no console socket: like runc, the exec helper
// then holds the terminal itself. It gets the pty master from the init (on
// a socketpair instead of a console socket), puts its own terminal in raw
// mode, copies both ways and passes on window size changes.

// receiveMaster reads the pty master that sendConsole sent on sock.
func receiveMaster(sock *os.File) (*os.File, error) {
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receiving the terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("receiving the terminal: no file descriptor sent")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("receiving the terminal: no file descriptor sent")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// proxyTerminal serves the terminal of pid from master on the helper's
// stdio until pid exits, and returns the status to exit with; sigs is
// relayed as by relayUntilExit.
func proxyTerminal(master *os.File, pid int, sigs chan os.Signal) int {
	resize := func() {
		if h, w := term.Size(os.Stdin); h > 0 || w > 0 {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
		}
	}
	resize()
	if term.IsTerminal(os.Stdin) {
		if restore, err := term.MakeRaw(os.Stdin); err == nil {
			defer restore()
		}
	}
	go io.Copy(master, os.Stdin)
	outDone := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master) // ends with EIO once no process holds the terminal
		close(outDone)
	}()
	code := relayUntilExit(pid, resize, sigs)
	select {
	case <-outDone:
	case <-time.After(2 * time.Second): // a background process kept it open
	}
	return code
}
