package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attacks by a hostile container on berth's networks, driven through the
// CLI as a user would (the dataplane's own attack tests are in
// internal/network/dataplane/attack_linux_test.go).

// TestNetworkAttackInternalEgress: a container on an --internal network
// reaches neither the host's resolvers (SERVFAIL, as from Docker) nor a
// port another network's container publishes, through its own gateway
// (a host address) or the other network's; the publishing network's
// containers still reach it that way.
func TestNetworkAttackInternalEgress(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--internal", "na-int")
	e.must("network", "create", "na-pub")
	e.must("run", "-d", "--name", "na-web", "--network", "na-pub", "-p", "80", "busybox",
		"sh", "-c", "mkdir /www && echo hi >/www/index.html && exec httpd -f -p 80 -h /www")
	port := strings.TrimSpace(e.must("port", "na-web", "80/tcp"))
	port = port[strings.LastIndex(port, ":")+1:]
	gwInt := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "na-int"))
	gwPub := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "na-pub"))
	get := `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 %s ` + port + ` | head -1`
	probe := func(network, addr string) string {
		r := e.run("run", "--rm", "--network", network, "busybox", "sh", "-c", strings.ReplaceAll(get, "%s", addr))
		return strings.TrimSpace(r.stdout)
	}
	eventually(t, 10*time.Second, "the published port answering from its own network", func() bool {
		return strings.Contains(probe("na-pub", gwPub), "200 OK")
	})
	for _, addr := range []string{gwInt, gwPub} {
		if got := probe("na-int", addr); got != "" {
			t.Errorf("an internal network's container reached %s:%s: %q", addr, port, got)
		}
	}
	r := e.run("run", "--rm", "--network", "na-int", "busybox", "nslookup", "example.com")
	if !strings.Contains(r.stdout+r.stderr, "SERVFAIL") {
		t.Errorf("name lookup from an internal network: %s", r)
	}
}

// TestNetworkAttackRouterAdvertisements: neither the host's side (the
// bridge) nor a container's interface takes router advertisements, which
// any container with CAP_NET_RAW can send on its network.
func TestNetworkAttackRouterAdvertisements(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "na-ra")
	br := "br-" + strings.TrimSpace(e.must("network", "inspect", "-f", "{{.Id}}", "na-ra"))[:12]
	if got := e.must("run", "--rm", "--network", "na-ra", "busybox", "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"); got != "0\n" {
		t.Errorf("container eth0 accept_ra = %q, want 0", got)
	}
	if got := e.must("run", "--rm", "busybox", "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"); got != "0\n" {
		t.Errorf("default bridge: container eth0 accept_ra = %q, want 0", got)
	}
	if got, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + br + "/accept_ra"); err != nil || string(got) != "0\n" {
		t.Errorf("bridge %s accept_ra = %q (%v), want 0", br, got, err)
	}
}

// TestNetworkAttackNeighbourTakeover: a container (default capabilities:
// CAP_NET_RAW) announces its neighbour's address by gratuitous ARP. The
// host's neighbour entry for the victim keeps the victim's MAC and the
// victim's published port keeps answering (a taken entry would send it
// to the attacker, which serves nothing).
func TestNetworkAttackNeighbourTakeover(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "na-victim", "-p", "127.0.0.1::80", "busybox", "sh", "-c", httpdCmd)
	hp := strings.TrimSpace(e.must("port", "na-victim", "80/tcp"))
	vip := e.inspect("na-victim", "{{.NetworkSettings.IPAddress}}")
	vmac := e.inspect("na-victim", "{{.NetworkSettings.MacAddress}}")
	br := strings.TrimSpace(e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	if body := httpGet(t, hp); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("published port before the attack: %q", body)
	}
	hostEntry := func() string {
		l, err := netlink.LinkByName(br)
		if err != nil {
			t.Fatal(err)
		}
		neighs, err := netlink.NeighList(l.Attrs().Index, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neighs {
			if n.IP.String() == vip && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				return n.HardwareAddr.String()
			}
		}
		return ""
	}
	if got := hostEntry(); got != vmac {
		t.Fatalf("the host's entry for %s is %q before the attack, want %s", vip, got, vmac)
	}
	// busybox arping binds its source address first: a foreign one
	// needs ip_nonlocal_bind, which the container may set for itself.
	e.must("run", "-d", "--name", "na-evil", "--sysctl", "net.ipv4.ip_nonlocal_bind=1", "busybox", "sh", "-c",
		"touch /tmp/started; while :; do arping -U -c 1 -w 1 -I eth0 -s "+vip+" "+vip+"; done")
	eventually(t, 10*time.Second, "the attacker started", func() bool {
		return e.run("exec", "na-evil", "test", "-e", "/tmp/started").code == 0
	})
	// Linux takes a gratuitous request at once: a few rounds are plenty.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := hostEntry(); got != vmac {
			t.Fatalf("the host's entry for the victim %s is now %s, want %s", vip, got, vmac)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body := httpGet(t, hp); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("published port during the attack: %q", body)
	}
}
