package network

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/network/dataplane"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestPublishRulesetGolden: the ruleset (dataplane.Render) of a container
// whose port bindings went through the configuration: publish-addresses
// makes the ports of every address elements of dnat4-ip/dnat6-ip keyed
// by each listed address, never elements of dnat4/dnat6 (which match any
// local address); "ip" and host_binding_ipv4 key them by that address.
func TestPublishRulesetGolden(t *testing.T) {
	bridge := &Network{Name: BridgeName, ID: "d0f1a1b2c3d4e5f6", Driver: "bridge", Bridge: "berth0",
		IPAM:    IPAM{Config: []IPAMConfig{{Subnet: "172.17.0.0/16", Gateway: "172.17.0.1"}}},
		Options: map[string]string{OptHostBinding: "0.0.0.0"}}
	dual := &Network{Name: "appnet", ID: "a11ce0000000aaaa", Driver: "bridge", Bridge: "br-a11ce0000000", EnableIPv6: true,
		IPAM:    IPAM{Config: []IPAMConfig{{Subnet: "172.18.0.0/16", Gateway: "172.18.0.1"}, {Subnet: "fd00:b::/64", Gateway: "fd00:b::1"}}},
		Options: map[string]string{}}
	bound := &Network{Name: "boundnet", ID: "b1d0000000eeee", Driver: "bridge", Bridge: "br-b1d0000000ee",
		IPAM:    IPAM{Config: []IPAMConfig{{Subnet: "172.21.0.0/16", Gateway: "172.21.0.1"}}},
		Options: map[string]string{OptHostBinding: "127.0.0.1"}}
	a := netip.MustParseAddr
	ports := container.PortMap{
		"80/tcp":  {{HostPort: "8080"}},
		"81/tcp":  {{HostIP: "0.0.0.0", HostPort: "8081"}},
		"53/udp":  {{HostIP: "127.0.0.1", HostPort: "5353"}},
		"443/tcp": {{HostIP: "::", HostPort: "8443"}},
	}
	cases := []struct {
		name   string
		pol    publishPolicy
		net    *Network
		addrs  []string
		ports  container.PortMap
		remove string // a port binding the case leaves out
	}{
		{"publish-addresses", publishPolicy{only: []netip.Addr{a("127.0.0.1"), a("192.0.2.10"), a("2001:db8::5")}}, dual,
			[]string{"172.18.0.2/16", "fd00:b::2/64"}, ports, ""},
		{"publish-addresses-v4-container", publishPolicy{only: []netip.Addr{a("127.0.0.1"), a("2001:db8::5")}}, bridge,
			[]string{"172.17.0.2/16"}, ports, "443/tcp"},
		{"default-bind-ip", publishPolicy{defaultIP: a("127.0.0.1")}, bridge,
			[]string{"172.17.0.2/16"}, ports, "443/tcp"},
		{"host-binding-option", publishPolicy{defaultIP: a("192.0.2.10")}, bound,
			[]string{"172.21.0.2/16"}, ports, "443/tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bs := container.PortMap{}
			for k, v := range tc.ports {
				if k != tc.remove {
					bs[k] = v
				}
			}
			maps, groups, err := planPorts(tc.pol, tc.net, bs)
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) != 0 {
				t.Fatalf("fixed host ports made groups to probe: %v", groups)
			}
			ep := dataplane.Endpoint{ContainerID: "c0ffee", NetworkID: tc.net.ID, IfName: "eth0", HostIfName: "veth1", Ports: maps,
				MAC: net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x02}}
			for _, p := range tc.addrs {
				ep.Addresses = append(ep.Addresses, netip.MustParsePrefix(p))
			}
			got, err := dataplane.Render("berth", []dataplane.Network{dpNetwork(tc.net)}, []dataplane.Endpoint{ep})
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
