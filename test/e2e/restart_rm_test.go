package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRemoveDuringRestartBackOff: `rm -f` of a container waiting out its
// restart back-off removes it at once. The monitor used to sleep through
// the back-off, start the container again and only then see the removal,
// so a container that then kept running held `rm -f` for 30 s.
func TestRemoveDuringRestartBackOff(t *testing.T) {
	e := newEnv(t)
	// Exits at once three times (back-off 100, 200, 400 ms, then 800 ms),
	// then would run for good.
	e.must("run", "-d", "--name", "bo", "--restart", "always", "busybox", "sh", "-c",
		`n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) > /n; [ "$n" -ge 4 ] && exec sleep 1000; exit 1`)
	eventually(t, 30*time.Second, "the fourth back-off", func() bool {
		n, _ := strconv.Atoi(e.inspect("bo", "{{.RestartCount}}"))
		return n >= 4 && e.inspect("bo", "{{.State.Status}}") == "restarting"
	})
	if r := e.runWithin(20*time.Second, "rm", "-f", "bo"); r.code != 0 {
		t.Fatalf("rm -f during the back-off: %s", r)
	}
	if out := strings.TrimSpace(e.must("ps", "-aq")); out != "" {
		t.Fatalf("containers left: %q", out)
	}
}
