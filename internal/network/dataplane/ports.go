package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PortInUseError is a published port that a host process or another
// container holds. Its text is Docker's ("Bind for 0.0.0.0:8080 failed:
// port is already allocated"); the caller adds Docker's prefix "driver
// failed programming external connectivity on endpoint NAME (ID): ".
type PortInUseError struct {
	Mapping PortMapping
	Addr    netip.AddrPort // the host address and port that could not be bound
	Err     error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("Bind for %s failed: port is already allocated", e.Addr)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// Is makes it an errdefs conflict (exit code 125, HTTP 409 as Docker's
// 500 would not be more useful).
func (e *PortInUseError) Is(target error) bool { return target == errdefs.ErrConflict }

// reservation holds bound sockets.
type reservation struct {
	once sync.Once
	fds  []int
}

func (r *reservation) Close() error {
	r.once.Do(func() {
		for _, fd := range r.fds {
			unix.Close(fd)
		}
		r.fds = nil
	})
	return nil
}

// ReservePorts binds each published host port, without listening, so
// that no host process or other container can take it while the
// container runs: the caller (the container's monitor) holds the Closer.
// Packets never reach these sockets, they are translated before local
// delivery. A mapping with HostPort 0 gets a free port from the kernel,
// written back into ports[i].HostPort. A port in use fails with a
// *PortInUseError and releases whatever was reserved.
//
// A HostIP of the zero Addr reserves the port on 0.0.0.0 and on [::]
// (when the host has IPv6); an explicit address reserves it there only.
// The sockets never set SO_REUSEADDR: a bound socket with it would let a
// server that sets it (as Go's net.Listen does) bind and listen beside.
func (d *Dataplane) ReservePorts(ctx context.Context, ports []PortMapping) (io.Closer, error) {
	r := &reservation{}
	for i := range ports {
		if err := ctx.Err(); err != nil {
			r.Close()
			return nil, err
		}
		pm := &ports[i]
		typ, proto, err := sockType(pm.Proto)
		if err != nil {
			r.Close()
			return nil, errdefs.InvalidArgument("publishing port %d: %v", pm.HostPort, err)
		}
		addrs := []netip.Addr{pm.HostIP.Unmap()}
		if !pm.HostIP.IsValid() {
			addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
		}
		fds, err := reserveOne(pm, addrs, typ, proto)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.fds = append(r.fds, fds...)
	}
	return r, nil
}

// reserveOne binds one mapping's port on each address. A port the kernel
// picks (HostPort 0) on the first address may be taken on the second:
// then it tries again with another.
func reserveOne(pm *PortMapping, addrs []netip.Addr, typ, proto int) ([]int, error) {
	pick := pm.HostPort == 0
	for attempt := 0; ; attempt++ {
		var fds []int
		var err error
		port := pm.HostPort
		for j, a := range addrs {
			var fd int
			var got uint16
			fd, got, err = bindPort(a, port, typ, proto)
			if err != nil {
				implicitV6 := j == 1
				if implicitV6 && (errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)) {
					err = nil
					continue // no IPv6 on this host
				}
				if proto == unix.IPPROTO_SCTP && (errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT)) {
					err = nil
					continue // no SCTP stack here: nothing else can bind it either
				}
				err = reserveError(pm, netip.AddrPortFrom(a, port), err)
				break
			}
			fds = append(fds, fd)
			port = got // a picked port is then asked for on the next address
		}
		if err == nil {
			pm.HostPort = port
			return fds, nil
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		if !pick || attempt == 10 || !errors.Is(err, unix.EADDRINUSE) {
			return nil, err
		}
	}
}

func reserveError(pm *PortMapping, at netip.AddrPort, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return &PortInUseError{Mapping: *pm, Addr: at, Err: err}
	}
	return fmt.Errorf("reserving %s port %s: %w", pm.Proto, at, err)
}

func sockType(proto string) (typ, p int, err error) {
	switch proto {
	case "tcp":
		return unix.SOCK_STREAM, unix.IPPROTO_TCP, nil
	case "udp":
		return unix.SOCK_DGRAM, unix.IPPROTO_UDP, nil
	case "sctp":
		return unix.SOCK_SEQPACKET, unix.IPPROTO_SCTP, nil
	}
	return 0, 0, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", proto)
}

// bindPort binds a socket to addr:port and returns it and the port bound.
func bindPort(addr netip.Addr, port uint16, typ, proto int) (int, uint16, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Port: int(port), Addr: addr.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(port), Addr: addr.As16()}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, 0, err
	}
	if family == unix.AF_INET6 {
		// [::] must not also take the IPv4 port: that is reserved (or
		// not) on its own.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, 0, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		port = uint16(s.Port)
	case *unix.SockaddrInet6:
		port = uint16(s.Port)
	}
	return fd, port, nil
}

// forgetFlows deletes the conntrack entries of UDP and SCTP flows to an
// endpoint's addresses. A UDP client that keeps sending to a published
// port keeps its entry, and with it the translation to this container,
// for as long as it sends: without this, a container published on the
// same port next would never see it. TCP needs nothing: a new
// connection makes a new entry. It dumps the whole table, so it runs only
// for endpoints that publish such ports, and it is best effort: a flow
// left behind times out.
func forgetFlows(ep Endpoint) {
	var protos []uint8
	for _, pm := range ep.Ports {
		p, _ := protoNumber(pm.Proto)
		if p != unix.IPPROTO_TCP && !slices.Contains(protos, p) {
			protos = append(protos, p)
		}
	}
	for _, a := range ep.Addresses {
		fam := netlink.FAMILY_V4
		if a.Addr().Is6() {
			fam = netlink.FAMILY_V6
		}
		var filters []netlink.CustomConntrackFilter
		for _, p := range protos {
			f := &netlink.ConntrackFilter{}
			if f.AddIP(netlink.ConntrackReplySrcIP, a.Addr().AsSlice()) != nil || f.AddProtocol(p) != nil {
				continue
			}
			filters = append(filters, f)
		}
		if len(filters) > 0 {
			netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.InetFamily(fam), filters...)
		}
	}
}
