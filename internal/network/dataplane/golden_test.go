package dataplane

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

var (
	defaultNet = Network{
		ID: "d0f1a1b2c3d4e5f6", Bridge: "berth0", Masquerade: true, ICC: true,
		Subnets: []netip.Prefix{mustPrefix("172.17.0.0/16")}, Gateways: []netip.Addr{mustAddr("172.17.0.1")},
	}
	appNet = Network{
		ID: "a11ce0000000aaaa", Bridge: "br-a11ce0000000", Masquerade: true, ICC: true, MTU: 1450,
		Subnets: []netip.Prefix{mustPrefix("172.18.0.0/16")}, Gateways: []netip.Addr{mustAddr("172.18.0.1")},
	}
	otherNet = Network{
		ID: "b0b000000000bbbb", Bridge: "br-b0b000000000", Masquerade: true, ICC: false,
		Subnets: []netip.Prefix{mustPrefix("172.19.0.0/16")}, Gateways: []netip.Addr{mustAddr("172.19.0.1")},
	}
	internalNet = Network{
		ID: "1e7e0000000cccc", Bridge: "br-1e7e0000000c", Internal: true, ICC: true,
		Subnets: []netip.Prefix{mustPrefix("10.99.0.0/24")}, Gateways: []netip.Addr{mustAddr("10.99.0.1")},
	}
	boundNet = Network{
		ID: "b1d0000000eeee", Bridge: "br-b1d0000000ee", Masquerade: true, ICC: true,
		Subnets: []netip.Prefix{mustPrefix("172.21.0.0/16")}, Gateways: []netip.Addr{mustAddr("172.21.0.1")},
		HostBinding: mustAddr("127.0.0.1"),
	}
	v6Net = Network{
		ID: "5ix0000000dddd", Bridge: "br-5ix0000000dd", Masquerade: true, ICC: true,
		Subnets:  []netip.Prefix{mustPrefix("172.20.0.0/16"), mustPrefix("fd00:b::/64")},
		Gateways: []netip.Addr{mustAddr("172.20.0.1"), mustAddr("fd00:b::1")},
	}
)

func endpoint(n Network, cid string, host string, addrs []string, ports ...PortMapping) Endpoint {
	ep := Endpoint{ContainerID: cid, NetworkID: n.ID, NetNSPath: "/run/netns/x", IfName: "eth0", HostIfName: host,
		MAC: net.HardwareAddr{2, 0x42, 0xac, 0x11, 0, 2}, Ports: ports}
	for _, a := range addrs {
		ep.Addresses = append(ep.Addresses, mustPrefix(a))
	}
	return ep
}

func tcp(hostIP string, host, ctr uint16) PortMapping {
	pm := PortMapping{Proto: "tcp", HostPort: host, ContainerPort: ctr}
	if hostIP != "" {
		pm.HostIP = mustAddr(hostIP)
	}
	return pm
}

func udp(hostIP string, host, ctr uint16) PortMapping {
	pm := tcp(hostIP, host, ctr)
	pm.Proto = "udp"
	return pm
}

func TestRulesetGolden(t *testing.T) {
	cases := []struct {
		name string
		nets []Network
		eps  []Endpoint
	}{
		{"default-bridge-ports", []Network{defaultNet}, []Endpoint{
			endpoint(defaultNet, "c1", "veth1", []string{"172.17.0.2/16"}, tcp("", 8080, 80), udp("", 5353, 53), tcp("127.0.0.1", 9000, 9000)),
			endpoint(defaultNet, "c2", "veth2", []string{"172.17.0.3/16"}),
		}},
		{"user-network", []Network{appNet}, []Endpoint{
			endpoint(appNet, "db", "veth3", []string{"172.18.0.2/16"}, tcp("192.0.2.10", 5432, 5432)),
		}},
		{"host-binding", []Network{boundNet}, []Endpoint{
			endpoint(boundNet, "web", "veth8", []string{"172.21.0.2/16"}, tcp("", 8080, 80), tcp("0.0.0.0", 8081, 81)),
		}},
		{"internal-network", []Network{internalNet}, []Endpoint{
			endpoint(internalNet, "c3", "veth4", []string{"10.99.0.2/24"}, tcp("", 8081, 80)),
		}},
		{"ipv6-network", []Network{v6Net}, []Endpoint{
			endpoint(v6Net, "c4", "veth5", []string{"172.20.0.2/16", "fd00:b::2/64"}, tcp("", 8082, 80), tcp("fd00:b::1", 8083, 80), tcp("0.0.0.0", 8084, 80)),
		}},
		{"two-networks", []Network{appNet, otherNet}, []Endpoint{
			endpoint(appNet, "x", "veth6", []string{"172.18.0.5/16"}),
			endpoint(otherNet, "y", "veth7", []string{"172.19.0.5/16"}, tcp("", 8085, 80)),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render("berth", tc.nets, tc.eps)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(want, []byte(got)) {
				t.Errorf("ruleset differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestDNSRedirectGolden(t *testing.T) {
	got := RenderDNSRedirect("berth-dns", 40001, 40002)
	path := filepath.Join("testdata", "dns-redirect.nft")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("DNS redirect differs from %s (run with -update after checking):\n%s", path, got)
	}
}
