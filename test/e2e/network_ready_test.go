package e2e

import (
	"strings"
	"testing"
)

// TestNetworkReadyAtFirstInstruction: the network is attached while the
// runtime sets the container up (builtin runtime), yet the command's
// first instruction finds everything in place, as with Docker: its
// address, default route, /etc/hosts entry, and the sysctls of its own
// interface, which only exist once the veth is in.
func TestNetworkReadyAtFirstInstruction(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, network string }{
		{"default bridge", "bridge"},
		{"user network", "nr-user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network != "bridge" {
				e.must("network", "create", tc.network)
			}
			for i := 0; i < 5; i++ {
				out := e.must("run", "--rm", "--network", tc.network, "--sysctl", "net.ipv4.conf.eth0.rp_filter=2",
					"--sysctl", "net.ipv6.conf.eth0.disable_ipv6=1", "busybox", "sh", "-c",
					`cat /proc/sys/net/ipv4/conf/eth0/rp_filter /proc/sys/net/ipv6/conf/eth0/disable_ipv6
ip -4 -o addr show eth0 | awk '{print $4}'
ip route | grep -c '^default via'
grep -c "$(hostname)" /etc/hosts`)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 5 || lines[0] != "2" || lines[1] != "1" || !strings.Contains(lines[2], "/") || lines[3] != "1" || lines[4] != "1" {
					t.Fatalf("run %d: got\n%s\nwant rp_filter 2, disable_ipv6 1, an address, one default route and the hosts entry", i, out)
				}
			}
		})
	}
}
