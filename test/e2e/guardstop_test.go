package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// neighMAC is the host's neighbour entry on bridge br for ip ("" when
// none or not resolved).
func neighMAC(t *testing.T, br, ip string) string {
	t.Helper()
	l, err := netlink.LinkByName(br)
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := netlink.NeighList(l.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == ip && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// berthTables is what nft lists of the root's tables (inet and bridge).
func berthTables(t *testing.T, e *env) string {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	table := strings.TrimSpace(e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	var sb strings.Builder
	for _, family := range []string{"inet", "bridge"} {
		out, err := exec.Command(nft, "list", "table", family, table).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table %s %s: %v\n%s", family, table, err, out)
		}
		sb.Write(out)
	}
	return sb.String()
}

// monitorsOf counts the monitor processes of container id under e's root
// (a monitor lives on a little after it reported the exit, deleting its
// container's guards).
func monitorsOf(e *env, id string) int {
	n := 0
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "_monitor" && args[len(args)-1] == id && strings.Contains(string(raw), e.root) {
			n++
		}
	}
	return n
}

// TestStoppedContainerGuards: a stopped container's port guards (no
// published ports: its release leaves them) go once the stop was
// reported (the test polls); started again, it is guarded again (a
// gratuitous ARP for its neighbour's address leaves the host's entry
// the victim's, and the victim's published port answers); stopped and
// removed, nothing of it is left in the root's tables. On a berth that
// deletes them only on removal or prune, the first poll times out.
func TestStoppedContainerGuards(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "gs-victim", "-p", "127.0.0.1::80", "busybox", "sh", "-c", httpdCmd)
	hp := strings.TrimSpace(e.must("port", "gs-victim", "80/tcp"))
	vip := e.inspect("gs-victim", "{{.NetworkSettings.IPAddress}}")
	vmac := e.inspect("gs-victim", "{{.NetworkSettings.MacAddress}}")
	br := strings.TrimSpace(e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	if body := httpGet(t, hp); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("the victim's published port: %q", body)
	}
	if got := neighMAC(t, br, vip); got != vmac {
		t.Fatalf("the host's entry for %s is %q before the attack, want %s", vip, got, vmac)
	}
	// Each run counts itself, then announces the victim's address for
	// ever (busybox arping binds its source first: a foreign one needs
	// ip_nonlocal_bind, which the container may set for itself).
	e.must("run", "-d", "--name", "gs-evil", "--sysctl", "net.ipv4.ip_nonlocal_bind=1", "busybox", "sh", "-c",
		"echo run >>/tmp/runs; while :; do arping -U -c 1 -w 1 -I eth0 -s "+vip+" "+vip+"; done")
	id := e.inspect("gs-evil", "{{.Id}}")
	port := hostIfName(id, e.inspect("gs-evil", "{{.NetworkSettings.Networks.bridge.NetworkID}}"))
	if got := guardElementPorts(t, e)[port]; got != 5 {
		t.Fatalf("the running container's port %s has %d guard elements, want 5", port, got)
	}

	e.must("stop", "-t", "0", "gs-evil")
	eventually(t, 20*time.Second, "the stopped container's guards deleted", func() bool { return guardElementPorts(t, e)[port] == 0 })

	e.must("start", "gs-evil")
	if got := guardElementPorts(t, e)[port]; got != 5 {
		t.Fatalf("started again, its port %s has %d guard elements, want 5", port, got)
	}
	eventually(t, 10*time.Second, "the second run attacking", func() bool {
		r := e.run("exec", "gs-evil", "sh", "-c", "wc -l </tmp/runs")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "2"
	})
	// Linux takes a gratuitous request at once: a few rounds are plenty.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := neighMAC(t, br, vip); got != vmac {
			t.Fatalf("the host's entry for the victim %s is now %s, want %s", vip, got, vmac)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body := httpGet(t, hp); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("the victim's published port during the attack: %q", body)
	}
	if got := guardElementPorts(t, e)[port]; got != 5 {
		t.Fatalf("its port %s has %d guard elements after the attack, want 5", port, got)
	}

	e.must("stop", "-t", "0", "gs-evil")
	e.must("rm", "gs-evil")
	left := func() bool {
		s := berthTables(t, e)
		return strings.Contains(s, port) || strings.Contains(s, id[:32])
	}
	eventually(t, 20*time.Second, "nothing of the removed container left in the tables", func() bool { return !left() })
	if got := guardElementPorts(t, e)[hostIfName(e.inspect("gs-victim", "{{.Id}}"), e.inspect("gs-victim", "{{.NetworkSettings.Networks.bridge.NetworkID}}"))]; got != 5 {
		t.Errorf("the victim's port has %d guard elements, want 5", got)
	}
}

// TestStopStartRaceKeepsGuards: `stop` then `start` at once, and
// `restart`, 20 times each: each stopped run's monitor deletes its guards
// after its report, and the next run (the same port name, address and
// MAC) starts right after; no such late deletion may take the next run's
// guards, which would leave the running container unguarded. Checked
// after each start and once every earlier run's monitor has ended.
func TestStopStartRaceKeepsGuards(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "gr", "busybox", "sleep", "600")
	id := e.inspect("gr", "{{.Id}}")
	port := hostIfName(id, e.inspect("gr", "{{.NetworkSettings.Networks.bridge.NetworkID}}"))
	ip := e.inspect("gr", "{{.NetworkSettings.IPAddress}}")
	for i := range 20 {
		e.must("stop", "-t", "0", "gr")
		e.must("start", "gr")
		if got := guardElementPorts(t, e)[port]; got != 5 {
			t.Fatalf("round %d: started again, its port %s has %d guard elements, want 5", i, port, got)
		}
		// The same in one process: the next run's attach comes sooner.
		e.must("restart", "-t", "0", "gr")
		if got := guardElementPorts(t, e)[port]; got != 5 {
			t.Fatalf("round %d: started again, its port %s has %d guard elements, want 5", i, port, got)
		}
	}
	if got := e.inspect("gr", "{{.NetworkSettings.IPAddress}}"); got != ip {
		t.Fatalf("the container's address changed from %s to %s: the runs' guards differ anyway, the race is not tested", ip, got)
	}
	eventually(t, 30*time.Second, "the earlier runs' monitors ended", func() bool { return monitorsOf(e, id) == 1 })
	if got := guardElementPorts(t, e)[port]; got != 5 {
		t.Fatalf("once the earlier runs' monitors ended, the running container's port %s has %d guard elements, want 5", port, got)
	}
	if got := e.inspect("gr", "{{.State.Running}}"); got != "true" {
		t.Fatalf("running=%s", got)
	}
}

// TestFailedStartLeavesNoGuards: a start that fails after the container
// was attached (its command does not exist) leaves no guard of its port
// once the failure was reported (the test polls), as a stop does.
func TestFailedStartLeavesNoGuards(t *testing.T) {
	e := newEnv(t)
	r := e.run("run", "-d", "--name", "gf-bad", "busybox", "/no/such/command")
	if r.code == 0 {
		t.Fatalf("run of a missing command succeeded: %s", r)
	}
	port := hostIfName(e.inspect("gf-bad", "{{.Id}}"), strings.TrimSpace(e.must("network", "inspect", "-f", "{{.Id}}", "bridge")))
	eventually(t, 20*time.Second, "the failed container's guards deleted", func() bool { return guardElementPorts(t, e)[port] == 0 })
}

// TestStoppedNamespaceKeptGuarded: a stopped container whose network
// namespace another container keeps alive (--network container:) keeps
// its veth, which that container can still send from: its guards stay
// after its monitor has ended.
func TestStoppedNamespaceKeptGuarded(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "gk-owner", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "gk-joiner", "--network", "container:gk-owner", "busybox", "sleep", "600")
	id := e.inspect("gk-owner", "{{.Id}}")
	port := hostIfName(id, e.inspect("gk-owner", "{{.NetworkSettings.Networks.bridge.NetworkID}}"))
	e.must("stop", "-t", "0", "gk-owner")
	eventually(t, 20*time.Second, "the stopped container's monitor ended", func() bool { return monitorsOf(e, id) == 0 })
	if _, err := os.Stat("/sys/class/net/" + port); err != nil {
		t.Fatalf("the kept namespace's veth %s: %v (the test would prove nothing)", port, err)
	}
	if got := guardElementPorts(t, e)[port]; got != 5 {
		t.Fatalf("the veth %s of the kept namespace has %d guard elements, want 5", port, got)
	}
	if got := strings.TrimSpace(e.must("exec", "gk-joiner", "cat", "/sys/class/net/eth0/operstate")); got != "up" {
		t.Errorf("the joiner's eth0 is %q", got)
	}
}
