package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestNetworkRestartReplacesStrayEth0: a restart by policy keeps the
// container's network namespace. A container with NET_ADMIN that leaves
// an interface of its own named eth0 there (its real eth0 renamed) must
// neither keep the container from coming back nor stay in place of the
// veth: the next run's eth0 is berth's veth on the network, with its
// address, as after a Docker restart (which makes a new namespace).
func TestNetworkRestartReplacesStrayEth0(t *testing.T) {
	e := newEnv(t)
	script := `if [ -e /ran ]; then ip -o link show eth0; ip -o -4 addr show eth0; exec sleep 1000; fi
touch /ran
ip link set eth0 down && ip link set eth0 name old && ip link add eth0 type bridge && ip link set eth0 up && echo planted
exit 1`
	e.must("run", "-d", "--name", "ns-stray", "--cap-add", "NET_ADMIN", "--restart", "on-failure:1", "busybox", "sh", "-c", script)
	var logs string
	eventually(t, 20*time.Second, "the second run listing its eth0", func() bool {
		logs = e.run("logs", "ns-stray").stdout
		return strings.Contains(logs, "inet ")
	})
	if !strings.Contains(logs, "planted") {
		t.Fatalf("the first run did not plant its eth0:\n%s", logs)
	}
	ip := strings.TrimSpace(e.inspect("ns-stray", "{{.NetworkSettings.IPAddress}}"))
	if ip == "" || !strings.Contains(logs, "inet "+ip+"/") {
		t.Errorf("the second run's eth0 does not have the container's address %q:\n%s", ip, logs)
	}
	// A veth shows its peer (eth0@ifN); the planted bridge does not.
	if !strings.Contains(logs, "eth0@if") {
		t.Errorf("the second run's eth0 is not berth's veth:\n%s", logs)
	}
	if got := strings.TrimSpace(e.inspect("ns-stray", "{{.State.Running}} {{.RestartCount}}")); got != "true 1" {
		t.Errorf("running, restart count = %q, want \"true 1\"", got)
	}
}
