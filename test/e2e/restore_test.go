package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestoreAfterCrash stands in for a reboot: every monitor dies with -9,
// and `system restore` (what berth-restore.service runs at boot) brings
// back what docker's daemon start would.
func TestRestoreAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "always1", "--restart", "always", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "unless1", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "unless2", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "norestart", "busybox", "sleep", "1000")
	e.must("stop", "-t", "0", "unless2")
	for _, name := range []string{"always1", "unless1", "norestart"} {
		syscall.Kill(monitorPid(t, e, name), syscall.SIGKILL)
	}
	eventually(t, 20*time.Second, "crashed containers noticed", func() bool {
		return strings.TrimSpace(e.must("ps", "-q")) == ""
	})
	out := e.must("system", "restore")
	if n := len(strings.Fields(out)); n != 2 {
		t.Fatalf("restore started %d containers:\n%s", n, out)
	}
	for name, want := range map[string]string{"always1": "running", "unless1": "running", "unless2": "exited", "norestart": "exited"} {
		if st := e.inspect(name, "{{.State.Status}}"); st != want {
			t.Errorf("%s: %s, want %s", name, st, want)
		}
	}
}
