package ipam

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func mustPool(t *testing.T, subnet, rng, gw string) Pool {
	t.Helper()
	p, err := ParsePool(subnet, rng, gw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePool(t *testing.T) {
	tests := []struct {
		name, subnet, rng, gw string
		wantGW                string
		wantErr               string
	}{
		{"default gateway", "10.1.0.0/16", "", "", "10.1.0.1", ""},
		{"given gateway", "10.1.0.0/16", "", "10.1.255.254", "10.1.255.254", ""},
		{"masked", "10.1.2.3/16", "", "", "10.1.0.1", ""},
		{"ipv6", "fd00:1::/64", "", "", "fd00:1::1", ""},
		{"bad subnet", "10.1.0.0/33", "", "", "", "Invalid subnet 10.1.0.0/33 : invalid CIDR address: 10.1.0.0/33"},
		{"gateway outside", "10.1.0.0/16", "", "10.2.0.1", "", "Invalid gateway 10.2.0.1: it is not within the subnet 10.1.0.0/16"},
		{"range outside", "10.1.0.0/16", "10.2.0.0/24", "", "", "Invalid ip-range 10.2.0.0/24: it is not within the subnet 10.1.0.0/16"},
		{"range wider", "10.1.0.0/16", "10.0.0.0/8", "", "", "Invalid ip-range 10.0.0.0/8: it is not within the subnet 10.1.0.0/16"},
		{"bad gateway", "10.1.0.0/16", "", "x", "", "invalid gateway x : invalid address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePool(tc.subnet, tc.rng, tc.gw)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || p.Gateway.String() != tc.wantGW {
				t.Fatalf("gateway %v err %v, want %s", p.Gateway, err, tc.wantGW)
			}
		})
	}
}

// TestAllocate hands out every usable address of small pools once, in
// order, skipping the network and broadcast addresses and the gateway,
// and then reports exhaustion.
func TestAllocate(t *testing.T) {
	tests := []struct {
		name   string
		pool   Pool
		want   []string
		preset []string // taken before
	}{
		{"ipv4 /29", mustPool(t, "10.0.0.0/29", "", ""), []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, nil},
		{"gateway in the middle", mustPool(t, "10.0.0.0/29", "", "10.0.0.3"), []string{"10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"}, nil},
		{"range", mustPool(t, "10.0.0.0/24", "10.0.0.8/30", ""), []string{"10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11"}, nil},
		{"taken skipped", mustPool(t, "10.0.0.0/29", "", ""), []string{"10.0.0.2", "10.0.0.5", "10.0.0.6"}, []string{"10.0.0.3", "10.0.0.4"}},
		{"ipv6 /126", mustPool(t, "fd00::/126", "", ""), []string{"fd00::2", "fd00::3"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			taken := map[netip.Addr]bool{}
			for _, a := range tc.preset {
				taken[netip.MustParseAddr(a)] = true
			}
			var got []string
			for {
				a, err := Allocate(tc.pool, func(a netip.Addr) bool { return taken[a] })
				if err != nil {
					if !errors.Is(err, errdefs.ErrUnavailable) {
						t.Fatalf("exhaustion: %v, want Unavailable", err)
					}
					break
				}
				if taken[a] {
					t.Fatalf("%s handed out twice", a)
				}
				taken[a] = true
				got = append(got, a.String())
				if len(got) > 300 {
					t.Fatal("never exhausted")
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestCheckStatic(t *testing.T) {
	p := mustPool(t, "10.0.0.0/24", "10.0.0.128/25", "")
	taken := func(a netip.Addr) bool { return a == netip.MustParseAddr("10.0.0.9") }
	tests := []struct {
		ip, want string
	}{
		{"10.0.0.5", ""}, // outside the range but in the subnet: allowed, as in Docker
		{"10.0.0.9", "Address already in use"},
		{"10.0.0.1", "Address already in use"},
		{"10.0.0.0", "Address already in use"},
		{"10.0.0.255", "Address already in use"},
		{"10.0.1.5", "Invalid address 10.0.1.5: It does not belong to any of this network's subnets"},
	}
	for _, tc := range tests {
		err := CheckStatic(p, netip.MustParseAddr(tc.ip), taken)
		if (err == nil) != (tc.want == "") || err != nil && err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.ip, err, tc.want)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	pf := netip.MustParsePrefix
	tests := []struct {
		name string
		used []netip.Prefix
		want string
	}{
		{"empty", nil, "172.17.0.0/16"},
		{"docker0 beside", []netip.Prefix{pf("172.17.0.0/16")}, "172.18.0.0/16"},
		{"host route inside", []netip.Prefix{pf("172.17.5.0/24"), pf("172.18.0.0/16")}, "172.19.0.0/16"},
		{"default route ignored", []netip.Prefix{pf("0.0.0.0/0")}, "172.17.0.0/16"},
		{"wide route", []netip.Prefix{pf("172.16.0.0/12")}, "192.168.0.0/20"},
	}
	for _, tc := range tests {
		got, err := PickSubnet(tc.used)
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := PickSubnet([]netip.Prefix{pf("172.16.0.0/12"), pf("192.168.0.0/16")}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("all pools used: %v", err)
	}
}

func TestMAC(t *testing.T) {
	if got := MAC(netip.MustParseAddr("172.17.0.2")).String(); got != "02:42:ac:11:00:02" {
		t.Fatalf("MAC %s", got)
	}
}

func TestPickSubnet6(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	a, err := PickSubnet6(id, nil)
	if err != nil || a.Bits() != 64 || a.Addr().As16()[0] != 0xfd {
		t.Fatalf("%v %v", a, err)
	}
	b, err := PickSubnet6(id, []netip.Prefix{a})
	if err != nil || b == a {
		t.Fatalf("second pick %v %v", b, err)
	}
}
