package dataplane

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBesideDockerForwardDrop runs berth beside Docker's ruleset as
// dockerd 20.10 writes it with iptables-nft (testdata/docker-20.10-
// filter.rules: FORWARD policy drop, DOCKER-USER, the isolation chains,
// docker0 with a container), loaded with the real iptables-nft-restore
// into a namespace of the test's own that stands for the host, with a
// "Docker container" on a docker0 bridge. Docker's drop is final whatever
// berth's own chains say, so berth's rules in DOCKER-USER must let its
// traffic through, and only its traffic.
const brnfSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// dockerFixture is Docker's ruleset loaded by the test.
const dockerFixture = "testdata/docker-20.10-filter.rules"

func TestBesideDockerForwardDrop(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("d", false)
	ni := p.network("i", false)
	ni.Internal, ni.Masquerade = true, false
	ns1, ns2, ns3, dockerNS, outNS := newNS(t), newNS(t), newNS(t), newNS(t), newNS(t)
	ports := []PortMapping{{Proto: "tcp", ContainerPort: 8000, HostPort: 18000}}
	ep1 := p.endpoint(n, ns1, "1", 2, ports...)
	ep2 := p.endpoint(n, ns2, "2", 3)
	ep3 := p.endpoint(ni, ns3, "3", 2)
	hostOut, outAddr := netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.2")
	dockerGW, dockerCtr := netip.MustParseAddr("172.17.0.1"), netip.MustParseAddr("172.17.0.2")

	// berth first, Docker after: the ensure below must find Docker's
	// chain by itself.
	err := inNS(host, func() error {
		for _, x := range []struct {
			n  Network
			ep []Endpoint
		}{{n, []Endpoint{ep1, ep2}}, {ni, []Endpoint{ep3}}} {
			if err := p.EnsureNetwork(ctx, x.n); err != nil {
				return err
			}
			for _, ep := range x.ep {
				if err := p.AddEndpoint(ctx, x.n, ep); err != nil {
					return err
				}
			}
		}
		if err := vethTo(outNS, "up0", hostOut, outAddr); err != nil {
			return err
		}
		return dockerBridge(dockerNS, dockerGW, dockerCtr)
	})
	if err != nil {
		t.Fatalf("setting up the host namespace: %v", err)
	}
	brnf := brnfOn(t, host)
	runIn(t, host, "iptables-nft-restore", "--noflush", dockerFixture)
	dockerBefore := dockerTable(t, host, "")

	// Docker came after berth: its next ensure (the cheap path) adds
	// the rules.
	if err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		return p.EnsureNetwork(ctx, ni)
	}); err != nil {
		t.Fatal(err)
	}
	checkDockerUserGolden(t, p, host, n, ni)

	serve(t, ns1, 8000)
	serve(t, ns1, 8001)
	serve(t, dockerNS, 80)
	serve(t, dockerNS, 81)
	serve(t, outNS, 9000)
	a1 := ep1.Addresses[0].Addr()
	gw := n.Gateways[0]

	// The host's own traffic never crossed FORWARD.
	mustReach(t, host, "tcp", ap(a1, 8000), gw.String())
	mustReach(t, host, "tcp", ap(netip.MustParseAddr("127.0.0.1"), 18000), gw.String())
	// Another host to a published port, its address kept.
	mustReach(t, outNS, "tcp", ap(hostOut, 18000), outAddr.String())
	// Egress, masqueraded.
	mustReach(t, ns1, "tcp", ap(outAddr, 9000), hostOut.String())
	// Bridged between two containers of a network (through FORWARD
	// when br_netfilter calls iptables).
	mustReach(t, ns2, "tcp", ap(a1, 8000), ep2.Addresses[0].Addr().String())
	// --internal: still no way out.
	mustNotReach(t, ns3, "tcp", ap(outAddr, 9000))
	mustNotReach(t, ns3, "tcp", ap(dockerCtr, 80))
	// berth container -> Docker's container: its published port as
	// Docker allows it (Docker's rules decide), not an unpublished one.
	mustReach(t, ns1, "tcp", ap(dockerCtr, 80), "")
	mustNotReach(t, ns1, "tcp", ap(dockerCtr, 81))
	// Docker's container -> berth's: published ports only.
	mustReach(t, dockerNS, "tcp", ap(dockerGW, 18000), "")
	mustNotReach(t, dockerNS, "tcp", ap(a1, 8000))
	mustNotReach(t, dockerNS, "tcp", ap(a1, 8001))
	mustNotReach(t, dockerNS, "tcp", ap(ep3.Addresses[0].Addr(), 8000))
	// Another host: never to an unpublished port of either.
	mustNotReach(t, outNS, "tcp", ap(a1, 8001))
	mustNotReach(t, outNS, "tcp", ap(dockerCtr, 81))
	if !brnf {
		t.Log("br_netfilter is not loaded: bridged traffic never met iptables")
	}

	// Docker's own rules are as they were.
	if got := dockerTable(t, host, p.Table()); got != dockerBefore {
		t.Errorf("Docker's table ip filter changed:\nbefore:\n%s\nafter, without berth's rules:\n%s", dockerBefore, got)
	}

	// Deleted by hand (or lost in a crash): Reconcile puts them back.
	runIn(t, host, "iptables-nft", "-F", "DOCKER-USER")
	runIn(t, host, "iptables-nft", "-A", "DOCKER-USER", "-j", "RETURN")
	if err := inNS(host, func() error {
		return p.Reconcile(ctx, []Network{n, ni}, []Endpoint{ep1, ep2, ep3})
	}); err != nil {
		t.Fatal(err)
	}
	checkDockerUserGolden(t, p, host, n, ni)
	mustReach(t, ns1, "tcp", ap(outAddr, 9000), hostOut.String())

	// Reconcile told of one network only: the other's rules go.
	if err := inNS(host, func() error {
		return p.Reconcile(ctx, []Network{n}, []Endpoint{ep1, ep2})
	}); err != nil {
		t.Fatal(err)
	}
	if got := runIn(t, host, "iptables-nft", "-S", "DOCKER-USER"); strings.Contains(got, ni.Bridge) {
		t.Errorf("rules of a network Reconcile was not told of are left:\n%s", got)
	}

	// The last network goes: nothing of berth's is left in Docker's table.
	if err := inNS(host, func() error { return p.RemoveNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	if got, want := runIn(t, host, "iptables-nft", "-S", "DOCKER-USER"), "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"; got != want {
		t.Errorf("DOCKER-USER after RemoveNetwork:\n%s\nwant:\n%s", got, want)
	}
	if got := dockerTable(t, host, ""); got != dockerBefore {
		t.Errorf("Docker's table ip filter after RemoveNetwork:\n%s\nwant:\n%s", got, dockerBefore)
	}
}

// vethTo links the current namespace to ns by a veth pair: name here with
// addr, eth0 there with peer and a default route back.
func vethTo(ns, name string, addr, peer netip.Addr) error {
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp, TxQLen: -1}, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}
	if err := netlink.LinkAdd(veth); err != nil {
		return err
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, 24))}); err != nil {
		return err
	}
	return inNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(peer, 24))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: addr.AsSlice()})
	})
}

// dockerBridge makes docker0 in the current namespace with gw, and a
// "Docker container" in ns on it with addr.
func dockerBridge(ns string, gw, addr netip.Addr) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "docker0", TxQLen: -1}}
	if err := netlink.LinkAdd(br); err != nil {
		return err
	}
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(gw, 16))}); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return err
	}
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethdk0", MasterIndex: br.Index, Flags: net.FlagUp, TxQLen: -1}, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}
	if err := netlink.LinkAdd(veth); err != nil {
		return err
	}
	return inNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, 16))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()})
	})
}

// brnfOn turns bridge-nf-call-iptables on in ns, as Docker does, when
// br_netfilter is loaded.
func brnfOn(t *testing.T, ns string) bool {
	t.Helper()
	on := false
	if err := inNS(ns, func() error {
		if _, err := os.Stat(brnfSysctl); err != nil {
			return nil
		}
		on = true
		return os.WriteFile(brnfSysctl, []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	return on
}

// runIn runs a command in the namespace at ns and returns its output.
func runIn(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	testutil.RequiresBinary(t, name)
	nsenter := testutil.RequiresBinary(t, "nsenter")
	cmd := exec.Command(nsenter, append([]string{"--net=" + ns, name}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

var nftCounter = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// dockerTable is `nft list table ip filter` in ns without counters and,
// with table set, without the lines of berth's rules of that table.
func dockerTable(t *testing.T, ns, table string) string {
	t.Helper()
	var keep []string
	for _, l := range strings.Split(runIn(t, ns, "nft", "list", "table", "ip", "filter"), "\n") {
		if table != "" && strings.Contains(l, `comment "berth `+table+` `) {
			continue
		}
		keep = append(keep, nftCounter.ReplaceAllString(l, "counter"))
	}
	return strings.Join(keep, "\n")
}

// checkDockerUserGolden compares `iptables-nft -S DOCKER-USER` with
// testdata/docker-user.golden, the test's random names replaced.
func checkDockerUserGolden(t *testing.T, p *testPlane, ns string, nets ...Network) {
	t.Helper()
	got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER")
	for i, n := range nets {
		got = strings.ReplaceAll(got, n.Bridge, "BRIDGE"+string(rune('A'+i)))
	}
	got = strings.ReplaceAll(got, p.Table(), "TABLE")
	path := filepath.Join("testdata", "docker-user.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("iptables-nft -S DOCKER-USER differs from %s (run with -update after checking):\n%s", path, got)
	}
}
