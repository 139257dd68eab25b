package runtime

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/term"
)

// A foreground `exec -t` has no console socket: like runc, the exec helper
// then holds the terminal itself. It opened the pty, keeps the master,
// puts its own terminal in raw mode, copies both ways and passes on
// window size changes.

// proxyTerminal serves the terminal of pid from master on the helper's
// stdio until pid exits, relaying sigs, and returns the status to exit
// with.
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
	code := relayUntilExit(pid, sigs, resize)
	select {
	case <-outDone:
	case <-time.After(2 * time.Second): // a background process kept it open
	}
	return code
}
