package dns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// buildQuery is a client's query for name and type; with opt it carries
// an EDNS0 OPT record with payload size 1232 and the given options.
func buildQuery(t testing.TB, id uint16, name string, typ dnsmessage.Type, opt []dnsmessage.Option) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	must(t, b.StartQuestions())
	must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}))
	if opt != nil {
		var rh dnsmessage.ResourceHeader
		must(t, rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, false))
		must(t, b.StartAdditionals())
		must(t, b.OPTResource(rh, dnsmessage.OPTResource{Options: opt}))
	}
	out, err := b.Finish()
	must(t, err)
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parsed is a reply as the tests look at it.
type parsed struct {
	header dnsmessage.Header
	q      []dnsmessage.Question
	addrs  []netip.Addr
	ptrs   []string
	ttls   []uint32
	opt    *dnsmessage.OPTResource
}

func parseReply(t testing.TB, raw []byte) parsed {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("unreadable reply %x: %v", raw, err)
	}
	p := parsed{header: m.Header, q: m.Questions}
	for _, a := range m.Answers {
		p.ttls = append(p.ttls, a.Header.TTL)
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			p.addrs = append(p.addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			p.addrs = append(p.addrs, netip.AddrFrom16(b.AAAA))
		case *dnsmessage.PTRResource:
			p.ptrs = append(p.ptrs, b.PTR.String())
		}
	}
	for _, a := range m.Additionals {
		if b, ok := a.Body.(*dnsmessage.OPTResource); ok {
			p.opt = b
		}
	}
	return p
}

// exchangeUDP sends q over c and returns the reply.
func exchangeUDP(t testing.TB, c net.Conn, q []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, maxMsgSize)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func exchangeTCP(t testing.TB, c net.Conn, q []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(lengthPrefixed(q)); err != nil {
		t.Fatal(err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// listenPair opens a UDP socket and a TCP listener on the same free port
// of ip.
func listenPair(t testing.TB, ip string) (*net.UDPConn, *net.TCPListener) {
	t.Helper()
	for range 50 {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip), Port: port})
		if err == nil {
			return udp, tcp
		}
		udp.Close()
	}
	t.Fatal("no free port pair on " + ip)
	return nil, nil
}

// testServer serves reg for networks on 127.0.0.1 of the host (no
// namespace needed) and returns its address.
func testServer(t testing.TB, reg *Registry, networks []string, upstream []netip.AddrPort, timeout time.Duration) (*Server, netip.AddrPort) {
	t.Helper()
	udp, tcp := listenPair(t, "127.0.0.1")
	s := serve(Config{Networks: networks, Upstream: upstream}, reg, udp, tcp, timeout)
	t.Cleanup(func() { s.Close() })
	return s, udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

func dial(t testing.TB, network string, at netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.Dial(network, at.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addEntries(t testing.TB, reg *Registry, entries ...Entry) {
	t.Helper()
	for _, e := range entries {
		if err := reg.Add(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}
