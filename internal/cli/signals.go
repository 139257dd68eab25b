package cli

import (
	"os/signal"
	"syscall"
)

func ignoreMonitorSignals() {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP)
}
