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

// publish resolves the container's port bindings to host ports (a free
// one where none or a range is given), reserves them, and returns the
// mappings with the Ports of the container's NetworkSettings. Published
// ports go to the container's first network.
func (a *Attacher) publish(ctx context.Context, c *container.Container, atts []*attachment) (published, container.PortMap, error) {
	ports := container.PortMap{}
	for p := range c.Config.ExposedPorts {
		ports[p] = nil
	}
	bs := bindings(c)
	if len(bs) == 0 || len(atts) == 0 {
		return published{}, ports, nil
	}
	has6 := false
	for _, al := range atts[0].allocs {
		if p, ok := prefixOf(al.Address); ok && p.Addr().Is6() {
			has6 = true
		}
	}
	keys := make([]string, 0, len(bs))
	for k := range bs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fixed, dynamic []dataplane.PortMapping
	type dyn struct {
		idx    int
		lo, hi uint16
		key    string
		hostIP string
	}
	var dyns []dyn
	for _, k := range keys {
		cport, proto, err := splitPort(k)
		if err != nil {
			return published{}, nil, err
		}
		for _, b := range bs[k] {
			hostIPs := []netip.Addr{netip.IPv4Unspecified()}
			if has6 {
				hostIPs = append(hostIPs, netip.IPv6Unspecified())
			}
			if b.HostIP != "" {
				ip, err := netip.ParseAddr(b.HostIP)
				if err != nil {
					return published{}, nil, errdefs.InvalidArgument("invalid host IP %q for port %s", b.HostIP, k)
				}
				hostIPs = []netip.Addr{ip}
			}
			lo, hi, err := hostPortRange(b.HostPort)
			if err != nil {
				return published{}, nil, err
			}
			for _, ip := range hostIPs {
				m := dataplane.PortMapping{Proto: proto, HostIP: ip, HostPort: lo, ContainerPort: cport}
				if lo != 0 && lo == hi {
					fixed = append(fixed, m)
					continue
				}
				dyns = append(dyns, dyn{idx: len(dynamic), lo: lo, hi: hi, key: k, hostIP: ip.String()})
				dynamic = append(dynamic, m)
			}
		}
	}
	// Free host ports are chosen by the kernel (or probed in a range) and
	// then reserved with the others; one that another process took in
	// between is chosen again.
	var closer io.Closer
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		for _, d := range dyns {
			m := &dynamic[d.idx]
			m.HostPort, err = freePort(m.Proto, m.HostIP, d.lo, d.hi)
			if err != nil {
				return published{}, nil, err
			}
		}
		all := append(append([]dataplane.PortMapping{}, fixed...), dynamic...)
		closer, err = a.dp.ReservePorts(ctx, all)
		if err == nil || len(dyns) == 0 {
			break
		}
	}
	if err != nil {
		return published{}, nil, err
	}
	all := append(append([]dataplane.PortMapping{}, fixed...), dynamic...)
	for _, m := range all {
		k := fmt.Sprintf("%d/%s", m.ContainerPort, m.Proto)
		ports[k] = append(ports[k], container.PortBinding{HostIP: m.HostIP.String(), HostPort: strconv.Itoa(int(m.HostPort))})
	}
	return published{mappings: all, closer: closer}, ports, nil
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

// freePort finds a host port free for proto on ip: one the kernel picks
// (lo == 0) or the first of lo-hi that can be bound.
func freePort(proto string, ip netip.Addr, lo, hi uint16) (uint16, error) {
	try := func(port uint16) (uint16, error) {
		addr := netip.AddrPortFrom(ip, port).String()
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
