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
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dataplane"
	"golang.org/x/sys/unix"
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
// reserves them. Where each is published follows the -p address, the
// first network's host binding and publish-addresses (publish.go): the
// zero Addr is every address (the dataplane reserves the port on 0.0.0.0
// and [::]). Without a host port the dataplane's reservation picks a free
// one (HostPort 0, written back); a host range gets its first free port.
// A binding published on several listed addresses gets the same port on
// each. Published ports go to the container's first network.
func (a *Attacher) reserve(ctx context.Context, c *container.Container) (published, error) {
	bs := bindings(c)
	if len(bs) == 0 {
		return published{}, nil
	}
	pol, err := a.svc.policy()
	if err != nil {
		return published{}, err
	}
	first, err := a.firstNetwork(ctx, c)
	if err != nil {
		return published{}, err
	}
	maps, ranges, err := planPorts(pol, first, bs)
	if err != nil {
		return published{}, err
	}
	// A range's free port is probed, then reserved with the others; one
	// that another process took in between is probed again.
	var closer io.Closer
	for attempt := 0; ; attempt++ {
		for _, r := range ranges {
			ips := make([]netip.Addr, len(r.idx))
			for i, j := range r.idx {
				ips[i] = maps[j].HostIP
			}
			port, err := groupFreePort(maps[r.idx[0]].Proto, ips, r.lo, r.hi)
			if err != nil {
				return published{}, err
			}
			for _, j := range r.idx {
				maps[j].HostPort = port
			}
		}
		closer, err = a.dp.ReservePorts(ctx, maps)
		if err == nil || len(ranges) == 0 || attempt == 4 {
			break
		}
	}
	if err != nil {
		if len(pol.only) > 0 && errors.Is(err, unix.EADDRNOTAVAIL) {
			err = errdefs.InvalidArgument("%v: an address publish-addresses in %s lists (%s) is not one of this host's: correct the list", err, pol.sourceName(), joinAddrs(pol.only))
		}
		return published{}, err
	}
	return published{mappings: maps, closer: closer}, nil
}

// portGroup is one binding's mappings, which get one host port: the
// first free of lo-hi, or one picked (lo == 0).
type portGroup struct {
	idx    []int
	lo, hi uint16
}

// planPorts turns the container's port bindings into mappings, in the
// order of their container ports, each with its host addresses resolved
// (hostAddrs) and its host port, or 0 for the reservation to pick; the
// groups are the bindings whose port must be probed first (ranges, and
// picked ports shared by several addresses).
func planPorts(pol publishPolicy, first *Network, bs container.PortMap) ([]dataplane.PortMapping, []portGroup, error) {
	keys := make([]string, 0, len(bs))
	for k := range bs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var maps []dataplane.PortMapping
	var groups []portGroup
	for _, k := range keys {
		cport, proto, err := splitPort(k)
		if err != nil {
			return nil, nil, err
		}
		for _, b := range bs[k] {
			ips, err := pol.hostAddrs(b.HostIP, k, first)
			if err != nil {
				return nil, nil, err
			}
			lo, hi, err := hostPortRange(b.HostPort)
			if err != nil {
				return nil, nil, err
			}
			r := portGroup{lo: lo, hi: hi}
			for _, ip := range ips {
				r.idx = append(r.idx, len(maps))
				maps = append(maps, dataplane.PortMapping{Proto: proto, HostIP: ip, HostPort: lo, ContainerPort: cport})
			}
			if lo != hi || (lo == 0 && len(ips) > 1) {
				groups = append(groups, r)
			}
		}
	}
	return maps, groups, nil
}

// firstNetwork is the record of the network the container's ports are
// published on; nil when it names none that exists (attaching says so).
func (a *Attacher) firstNetwork(ctx context.Context, c *container.Container) (*Network, error) {
	order := networkOrder(c)
	if len(order) == 0 {
		return nil, nil
	}
	var n *Network
	err := a.svc.view(ctx, func(tx *metadata.Tx) error {
		n, _ = resolveTx(tx, order[0])
		return nil
	})
	return n, err
}

// groupFreePort is a port free on every one of ips: the first in lo-hi,
// or one the kernel picks (lo == 0).
func groupFreePort(proto string, ips []netip.Addr, lo, hi uint16) (uint16, error) {
	if len(ips) == 1 {
		return freePort(proto, ips[0], lo, hi)
	}
	freeOnRest := func(p uint16) bool {
		for _, ip := range ips[1:] {
			if _, err := freePort(proto, ip, p, p); err != nil {
				return false
			}
		}
		return true
	}
	if lo == 0 {
		for try := 0; ; try++ {
			p, err := freePort(proto, ips[0], 0, 0)
			if err != nil || freeOnRest(p) || try == 20 {
				return p, err
			}
		}
	}
	for p := int(lo); p <= int(hi); p++ {
		if got, err := freePort(proto, ips[0], uint16(p), uint16(p)); err == nil && freeOnRest(got) {
			return got, nil
		}
	}
	return 0, errdefs.Conflict("Bind for %s:%d-%d failed: no port of the range is free on all of %s", ips[0], lo, hi, joinAddrs(ips))
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
