package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkEndpoint is what a container on a bridge pays in the dataplane
// over --network none: AddEndpoint, then ReleaseEndpoint (the stop path:
// the veth goes with the namespace) or RemoveEndpoint (disconnect: the
// veth is deleted, which waits for RCU grace periods), with no port and
// with two published ports; "add" times AddEndpoint alone, what a
// container's start pays; "100-neighbours" with the guards of 100 other
// endpoints on the network (antispoof.go: set elements, no cost per
// neighbour). Each iteration is a new container (a new port name), as
// each run --rm is, but for "restart" (the same endpoint again: its
// guards left by the release are its own) and "changed-mac" (the same
// port name with another MAC each time: AddEndpoint replaces the guards
// left, a transaction that deletes).
//
//	go test -run '^$' -bench Endpoint -benchtime 100x ./internal/network/dataplane/
func BenchmarkEndpoint(b *testing.B) {
	two := []PortMapping{{Proto: "tcp", HostPort: 47001, ContainerPort: 80}, {Proto: "udp", HostPort: 47001, ContainerPort: 53}}
	for _, bc := range []struct {
		name       string
		ports      []PortMapping
		release    bool
		addOnly    bool // time AddEndpoint alone (the start path); release untimed
		others     int  // other endpoints' guards on the network
		noRedirect bool
	}{
		{"add/no-ports", nil, true, true, 0, false},
		{"add/two-ports", two, true, true, 0, false},
		{"add+release/no-ports", nil, true, false, 0, false},
		{"add+release/no-ports/100-neighbours", nil, true, false, 100, false},
		{"add+release/two-ports", two, true, false, 0, false},
		// The socket redirect's share: its programs are attached with
		// the first publication and detached with the last, each time
		// here.
		{"add+release/two-ports-no-redirect", two, true, false, 0, true},
		{"add+release/no-ports/restart", nil, true, false, 0, false},
		{"add+release/no-ports/changed-mac", nil, true, false, 0, false},
		{"add+remove/no-ports", nil, false, false, 0, false},
		{"add+remove/two-ports", two, false, false, 0, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			p := newTestPlane(b)
			p.opts.noRedirect = bc.noRedirect
			n := p.network("x", false)
			if err := p.EnsureNetwork(ctx, n); err != nil {
				b.Fatal(err)
			}
			if bc.others > 0 {
				var els []element
				for i := range bc.others {
					g, err := guardElements(n, p.endpoint(n, "", fmt.Sprintf("n%d", i), 3+i))
					if err != nil {
						b.Fatal(err)
					}
					els = append(els, g...)
				}
				if err := p.addElements(els); err != nil {
					b.Fatal(err)
				}
			}
			var first Endpoint
			b.ResetTimer()
			for i := range b.N {
				// A fresh namespace each time, as each container has one;
				// its making and unmounting is not timed (--network none
				// pays for it too).
				b.StopTimer()
				ns := newNS(b)
				ep := p.endpoint(n, ns, "i"+strconv.FormatInt(int64(i), 36), 2, bc.ports...)
				switch {
				case strings.HasSuffix(bc.name, "/restart"):
					if i == 0 {
						first = p.endpoint(n, ns, "r", 2)
					}
					ep = first
					ep.NetNSPath = ns
				case strings.HasSuffix(bc.name, "/changed-mac"):
					ep.HostIfName = "bv" + p.tag + "m"
				}
				b.StartTimer()
				if err := p.AddEndpoint(ctx, n, ep); err != nil {
					b.Fatal(err)
				}
				if bc.addOnly {
					b.StopTimer()
				}
				var err error
				if bc.release {
					err = p.ReleaseEndpoint(ctx, n, ep)
				} else {
					err = p.RemoveEndpoint(ctx, n, ep)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				unmountNS(ns)
				waitGone(b, ep.HostIfName)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkThroughput sends 256 MiB over TCP from the host to a receiver
// in a container's namespace, straight to its address and through a port
// published on 127.0.0.1, and, as the anchor, to a receiver on the host's
// loopback. MB/s are comparable within one run only.
//
//	go test -run '^$' -bench Throughput -benchtime 4x ./internal/network/dataplane/
func BenchmarkThroughput(b *testing.B) {
	ctx := context.Background()
	p := newTestPlane(b)
	n := p.network("t", false)
	if mtu := os.Getenv("BERTH_BENCH_MTU"); mtu != "" {
		n.MTU, _ = strconv.Atoi(mtu)
	}
	if err := p.EnsureNetwork(ctx, n); err != nil {
		b.Fatal(err)
	}
	ports := []PortMapping{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 9000}}
	c, err := p.ReservePorts(ctx, ports)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ns := newNS(b)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		b.Fatal(err)
	}
	sink(b, ns, 9000)
	sink(b, "", 9001)
	const size = 256 << 20
	loop := netip.MustParseAddr("127.0.0.1")
	for _, bc := range []struct {
		name string
		to   netip.AddrPort
		from *net.TCPAddr
	}{
		{"loopback", netip.MustParseAddrPort("127.0.0.1:9001"), nil},
		{"container-address", netip.AddrPortFrom(ep.Addresses[0].Addr(), 9000), nil},
		{"published-127.0.0.1", netip.AddrPortFrom(loop, ports[0].HostPort), nil},
		// A client bound to 127.0.0.1 is left to the DNAT path by the
		// socket redirect: the two side by side in one run.
		{"published-127.0.0.1-dnat", netip.AddrPortFrom(loop, ports[0].HostPort), &net.TCPAddr{IP: loop.AsSlice()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			buf := make([]byte, 1<<20)
			for range b.N {
				d := net.Dialer{}
				if bc.from != nil {
					d.LocalAddr = bc.from
				}
				conn, err := d.Dial("tcp", bc.to.String())
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := conn.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				conn.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, conn) // the sink closes when it has read all
				conn.Close()
			}
		})
	}
}

// sink accepts connections on port in the namespace and reads them to
// the end.
func sink(b testing.TB, ns string, port int) {
	var ln net.Listener
	if err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
}
