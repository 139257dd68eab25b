package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network/dataplane"
)

// published are a container's resolved port mappings and the reservation
// that holds their host ports.
type published struct {
	mappings []dataplane.PortMapping
	closer   io.Closer
}

// PortSpec is one container port ("80/tcp") split.
func splitPort(p string) (port uint16, proto string, err error) {
	num, proto, _ := strings.Cut(p, "/")
	if proto == "" {
		proto = "tcp"
	}
	v, err := strconv.ParseUint(num, 10, 16)
	if err != nil || v == 0 {
		return 0, "", errdefs.InvalidArgument("invalid container port %q", p)
	}
	return uint16(v), proto, nil
}

// bindings are the container's port bindings with -P's: every exposed
// port not bound explicitly gets a free host port.
func bindings(c *container.Container) container.PortMap {
	out := container.PortMap{}
	for p, bs := range c.HostConfig.PortBindings {
		out[p] = bs
	}
	if c.HostConfig.PublishAllPorts {
		for p := range c.Config.ExposedPorts {
			if _, ok := out[p]; !ok {
				out[p] = []container.PortBinding{{}}
			}
		}
	}
	return out
}

// reserve resolves the container's port bindings to host ports and
// reserves them. A binding without a host address is published on every
// address (the zero Addr: the dataplane reserves the port on 0.0.0.0 and
// [::]); without a host port the dataplane's reservation picks a free one
// (HostPort 0, written back); a host range gets its first free port.
// Published ports go to the container's first network.
func (a *Attacher) reserve(ctx context.Context, c *container.Container) (published, error) {
	bs := bindings(c)
	if len(bs) == 0 {
		return published{}, nil
	}
	keys := make([]string, 0, len(bs))
	for k := range bs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type ranged struct {
		idx    int
		lo, hi uint16
	}
	var maps []dataplane.PortMapping
	var ranges []ranged
	for _, k := range keys {
		cport, proto, err := splitPort(k)
		if err != nil {
			return published{}, err
		}
		for _, b := range bs[k] {
			var ip netip.Addr
			if b.HostIP != "" {
				if ip, err = netip.ParseAddr(b.HostIP); err != nil {
					return published{}, errdefs.InvalidArgument("invalid host IP %q for port %s", b.HostIP, k)
				}
			}
			lo, hi, err := hostPortRange(b.HostPort)
			if err != nil {
				return published{}, err
			}
			if lo != hi {
				ranges = append(ranges, ranged{idx: len(maps), lo: lo, hi: hi})
			}
			maps = append(maps, dataplane.PortMapping{Proto: proto, HostIP: ip, HostPort: lo, ContainerPort: cport})
		}
	}
	// A range's free port is probed, then reserved with the others; one
	// that another process took in between is probed again.
	var closer io.Closer
	var err error
	for attempt := 0; ; attempt++ {
		for _, r := range ranges {
			m := &maps[r.idx]
			if m.HostPort, err = freePort(m.Proto, m.HostIP, r.lo, r.hi); err != nil {
				return published{}, err
			}
		}
		closer, err = a.dp.ReservePorts(ctx, maps)
		if err == nil || len(ranges) == 0 || attempt == 4 {
			break
		}
	}
	if err != nil {
		return published{}, err
	}
	return published{mappings: maps, closer: closer}, nil
}

// portsView is the Ports of the container's NetworkSettings: each exposed
// port, with the host addresses it is published on. A port published on
// every address shows 0.0.0.0, and [::] too when the container has an
// IPv6 address to forward to.
func portsView(c *container.Container, maps []dataplane.PortMapping, atts []*attachment) container.PortMap {
	ports := container.PortMap{}
	for p := range c.Config.ExposedPorts {
		ports[p] = nil
	}
	has6 := false
	if len(atts) > 0 {
		for _, al := range atts[0].allocs {
			if p, ok := prefixOf(al.Address); ok && p.Addr().Is6() {
				has6 = true
			}
		}
	}
	for _, m := range maps {
		k := fmt.Sprintf("%d/%s", m.ContainerPort, m.Proto)
		port := strconv.Itoa(int(m.HostPort))
		if m.HostIP.IsValid() {
			ports[k] = append(ports[k], container.PortBinding{HostIP: m.HostIP.String(), HostPort: port})
			continue
		}
		ports[k] = append(ports[k], container.PortBinding{HostIP: "0.0.0.0", HostPort: port})
		if has6 {
			ports[k] = append(ports[k], container.PortBinding{HostIP: "::", HostPort: port})
		}
	}
	return ports
}

// hostPortRange reads "", "8080" or "8080-8090"; 0, 0 for "".
func hostPortRange(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || h < l {
		return 0, 0, errdefs.InvalidArgument("invalid host port %q", s)
	}
	return uint16(l), uint16(h), nil
}

// freePort finds a host port free for proto on ip (every address when
// invalid): one the kernel picks (lo == 0) or the first of lo-hi that can
// be bound.
func freePort(proto string, ip netip.Addr, lo, hi uint16) (uint16, error) {
	try := func(port uint16) (uint16, error) {
		addr := ":" + strconv.Itoa(int(port))
		if ip.IsValid() {
			addr = netip.AddrPortFrom(ip, port).String()
		}
		switch proto {
		case "udp":
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
		default: // tcp; sctp ports are judged by TCP's (no Go listener)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return 0, err
			}
			defer l.Close()
			return uint16(l.Addr().(*net.TCPAddr).Port), nil
		}
	}
	if lo == 0 {
		return try(0)
	}
	var last error
	for p := int(lo); p <= int(hi); p++ {
		got, err := try(uint16(p))
		if err == nil {
			return got, nil
		}
		last = err
	}
	return 0, errdefs.Conflict("Bind for %s:%d-%d failed: no free port in the range: %v", ip, lo, hi, errors.Unwrap(last))
}

func parseMAC(s string) net.HardwareAddr {
	m, _ := net.ParseMAC(s)
	return m
}
