// Package ipam chooses subnets for networks and addresses for containers
// on them. It keeps no state: the caller (internal/network) passes what is
// taken and stores the result in the same metadata write transaction, so
// that concurrent berth processes never hand out an address twice.
package ipam

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Pool is one subnet of a network as the user configured it (or as a
// default pool gave it).
type Pool struct {
	Subnet netip.Prefix
	// Range narrows the addresses handed out dynamically (--ip-range);
	// invalid means the whole subnet.
	Range   netip.Prefix
	Gateway netip.Addr
}

// ParsePool checks --subnet, --ip-range and --gateway as Docker does and
// fills the gateway (the subnet's first host address) when none is given.
func ParsePool(subnet, ipRange, gateway string) (Pool, error) {
	var p Pool
	var err error
	if p.Subnet, err = netip.ParsePrefix(subnet); err != nil {
		return p, errdefs.InvalidArgument("Invalid subnet %s : invalid CIDR address: %s", subnet, subnet)
	}
	if p.Subnet.Masked() != p.Subnet {
		// Docker keeps the user's text but works on the masked prefix.
		p.Subnet = p.Subnet.Masked()
	}
	if ipRange != "" {
		if p.Range, err = netip.ParsePrefix(ipRange); err != nil {
			return p, errdefs.InvalidArgument("invalid ip-range %s : invalid CIDR address: %s", ipRange, ipRange)
		}
		p.Range = p.Range.Masked()
		if !contains(p.Subnet, p.Range) {
			return p, errdefs.InvalidArgument("Invalid ip-range %s: it is not within the subnet %s", ipRange, p.Subnet)
		}
	}
	if gateway != "" {
		if p.Gateway, err = netip.ParseAddr(gateway); err != nil {
			return p, errdefs.InvalidArgument("invalid gateway %s : invalid address", gateway)
		}
		if !p.Subnet.Contains(p.Gateway) {
			return p, errdefs.InvalidArgument("Invalid gateway %s: it is not within the subnet %s", gateway, p.Subnet)
		}
	} else {
		p.Gateway = p.Subnet.Addr().Next()
		if !p.Subnet.Contains(p.Gateway) {
			return p, errdefs.InvalidArgument("subnet %s has no room for a gateway", p.Subnet)
		}
	}
	return p, nil
}

// contains reports whether inner lies inside outer.
func contains(outer, inner netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// Overlaps reports whether two prefixes share an address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// Allocate returns the first address of the pool's range that is neither
// the subnet's network or broadcast address, the gateway, nor taken.
// A full pool is an error naming the subnet.
func Allocate(p Pool, taken func(netip.Addr) bool) (netip.Addr, error) {
	r := p.Range
	if !r.IsValid() {
		r = p.Subnet
	}
	first := r.Addr()
	last := lastAddr(r)
	for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if !usable(p, a) || taken(a) {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, errdefs.Unavailable("no available IPv%d addresses on this network's address pools: %s", family(p.Subnet), p.Subnet)
}

// CheckStatic judges a user-chosen address (--ip, --ip6): it must lie in
// the subnet, be usable and be free.
func CheckStatic(p Pool, a netip.Addr, taken func(netip.Addr) bool) error {
	if !p.Subnet.Contains(a) {
		return ErrNotInSubnet(a)
	}
	// The gateway, the subnet's own and broadcast addresses are held by
	// the network: Docker says they are in use.
	if !usable(p, a) || taken(a) {
		return errdefs.Conflict("Address already in use")
	}
	return nil
}

// ErrNotInSubnet is Docker's refusal of a --ip outside the network.
func ErrNotInSubnet(a netip.Addr) error {
	return errdefs.InvalidArgument("Invalid address %s: It does not belong to any of this network's subnets", a)
}

// usable excludes the subnet's own address, the IPv4 broadcast address and
// the gateway.
func usable(p Pool, a netip.Addr) bool {
	if a == p.Subnet.Addr() || a == p.Gateway {
		return false
	}
	if a.Is4() && p.Subnet.Bits() < 31 && a == lastAddr(p.Subnet) {
		return false
	}
	return true
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

// lastAddr is the highest address of prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		hostBits := len(b)*8 - bits - (len(b)-1-i)*8
		switch {
		case hostBits >= 8:
			b[i] = 0xff
		case hostBits > 0:
			b[i] |= byte(1<<hostBits - 1)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// MAC is the address Docker derives from a container's IPv4 address:
// 02:42 followed by the address's four bytes.
func MAC(ip netip.Addr) net.HardwareAddr {
	mac := net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0}
	if ip.Is4() {
		b := ip.As4()
		copy(mac[2:], b[:])
	}
	return mac
}

// DefaultPools are Docker's default local address pools: 172.17-31.0.0/16,
// then 192.168.0-240.0/20.
func DefaultPools() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// PickSubnet returns the first default pool that overlaps none of used
// (the subnets of other networks and the host's routes).
func PickSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for _, p := range DefaultPools() {
		free := true
		for _, u := range used {
			if u.Bits() == 0 {
				continue // a default route overlaps everything
			}
			if p.Overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errdefs.Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

// PickSubnet6 gives an IPv6 network without --subnet a unique local /64
// derived from its ID (fdxx:xxxx:xxxx::/64), avoiding the used ones.
func PickSubnet6(networkID string, used []netip.Prefix) (netip.Prefix, error) {
	var seed [8]byte
	for i := 0; i < 8 && 2*i+1 < len(networkID); i++ {
		fmt.Sscanf(networkID[2*i:2*i+2], "%02x", &seed[i])
	}
	base := binary.BigEndian.Uint64(seed[:])
	for n := uint64(0); n < 64; n++ {
		var b [16]byte
		b[0] = 0xfd
		v := base + n
		b[1], b[2], b[3], b[4], b[5] = byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		p := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		free := true
		for _, u := range used {
			if u.Bits() != 0 && p.Overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errdefs.Unavailable("could not find an available, non-overlapping IPv6 address pool to assign to the network")
}
