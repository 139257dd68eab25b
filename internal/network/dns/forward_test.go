package dns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// upstreamMode is how a fake upstream behaves.
type upstreamMode int

const (
	answer   upstreamMode = iota // one A record, 192.0.2.1
	truncate                     // over UDP: TC and no answer; over TCP: 60 A records
	silent                       // never answers
	refuse                       // REFUSED
)

// fakeUpstream is a resolver on 127.0.0.1 of the host, where the
// server's forwarded queries go.
type fakeUpstream struct {
	addr netip.AddrPort
	mode upstreamMode

	mu   sync.Mutex
	seen []seenQuery
}

type seenQuery struct {
	tcp  bool
	name string
	opt  []dnsmessage.Option // nil without an OPT record
}

func startUpstream(t testing.TB, mode upstreamMode) *fakeUpstream {
	t.Helper()
	udp, tcp := listenPair(t, "127.0.0.1")
	u := &fakeUpstream{addr: udp.LocalAddr().(*net.UDPAddr).AddrPort(), mode: mode}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, maxMsgSize)
		for {
			n, from, err := udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if resp := u.respond(t, buf[:n], false); resp != nil {
				udp.WriteToUDPAddrPort(resp, from)
			}
		}
	})
	wg.Go(func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				if resp := u.respond(t, q, true); resp != nil {
					c.Write(lengthPrefixed(resp))
				}
			})
		}
	})
	return u
}

func (u *fakeUpstream) respond(t testing.TB, raw []byte, tcp bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(raw); err != nil || len(m.Questions) != 1 {
		t.Errorf("upstream got an unreadable query %x: %v", raw, err)
		return nil
	}
	sq := seenQuery{tcp: tcp, name: m.Questions[0].Name.String()}
	for _, a := range m.Additionals {
		if o, ok := a.Body.(*dnsmessage.OPTResource); ok {
			sq.opt = append([]dnsmessage.Option{}, o.Options...)
		}
	}
	u.mu.Lock()
	u.seen = append(u.seen, sq)
	u.mu.Unlock()
	m.Header.Response = true
	m.Header.RecursionAvailable = true
	m.Answers = nil
	rh := dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 30}
	switch {
	case u.mode == silent:
		return nil
	case u.mode == refuse:
		m.Header.RCode = dnsmessage.RCodeRefused
	case u.mode == truncate && !tcp:
		m.Header.Truncated = true
	case u.mode == truncate:
		for i := range 60 {
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, byte(i)}}})
		}
	default:
		m.Answers = append(m.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}}})
	}
	out, err := m.Pack()
	if err != nil {
		t.Errorf("upstream: %v", err)
	}
	return out
}

func (u *fakeUpstream) queries() []seenQuery {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenQuery{}, u.seen...)
}

// TestForward: names the tables do not have go to the upstream resolvers
// through the server's sockets, over UDP and TCP.
func TestForward(t *testing.T) {
	cookie := []dnsmessage.Option{{Code: 10, Data: []byte("8bytes!!")}}
	ip := netip.MustParseAddr
	tests := []struct {
		name      string
		modes     []upstreamMode // upstream resolvers, in order
		tcp       bool
		edns      bool
		rcode     dnsmessage.RCode
		addrs     int
		truncated bool
		upstream  []string // "udp"/"tcp" queries the first upstream saw
	}{
		{"UDP", []upstreamMode{answer}, false, false, dnsmessage.RCodeSuccess, 1, false, []string{"udp"}},
		{"TCP client", []upstreamMode{answer}, true, false, dnsmessage.RCodeSuccess, 1, false, []string{"udp"}},
		{"EDNS0 passes through", []upstreamMode{answer}, false, true, dnsmessage.RCodeSuccess, 1, false, []string{"udp"}},
		{"truncated: asked again over TCP, given to a TCP client", []upstreamMode{truncate}, true, false, dnsmessage.RCodeSuccess, 60, false, []string{"udp", "tcp"}},
		{"truncated: asked again over TCP, too large for a UDP client", []upstreamMode{truncate}, false, false, dnsmessage.RCodeSuccess, 0, true, []string{"udp", "tcp"}},
		{"truncated: fits the UDP client's EDNS0 size", []upstreamMode{truncate}, false, true, dnsmessage.RCodeSuccess, 60, false, []string{"udp", "tcp"}},
		{"timeout is SERVFAIL", []upstreamMode{silent}, false, false, dnsmessage.RCodeServerFailure, 0, false, []string{"udp"}},
		{"timeout is SERVFAIL over TCP", []upstreamMode{silent}, true, false, dnsmessage.RCodeServerFailure, 0, false, []string{"udp"}},
		{"REFUSED moves to the next resolver", []upstreamMode{refuse, answer}, false, false, dnsmessage.RCodeSuccess, 1, false, []string{"udp"}},
		{"a silent resolver is passed over", []upstreamMode{silent, answer}, false, false, dnsmessage.RCodeSuccess, 1, false, []string{"udp"}},
		{"the last refusal is given when all refuse", []upstreamMode{refuse, refuse}, false, false, dnsmessage.RCodeRefused, 0, false, []string{"udp"}},
		{"no upstream is SERVFAIL", nil, false, false, dnsmessage.RCodeServerFailure, 0, false, nil},
		{"no upstream is SERVFAIL over TCP", nil, true, false, dnsmessage.RCodeServerFailure, 0, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ups []*fakeUpstream
			var addrs []netip.AddrPort
			for _, m := range tc.modes {
				u := startUpstream(t, m)
				ups = append(ups, u)
				addrs = append(addrs, u.addr)
			}
			reg := OpenRegistry(t.TempDir())
			addEntries(t, reg, Entry{Network: "n", ContainerID: "c", Names: []string{"web"}, IPv4: ip("10.0.0.2")})
			_, at := testServer(t, reg, []string{"n"}, addrs, 300*time.Millisecond)
			var opt []dnsmessage.Option
			if tc.edns {
				opt = cookie
			}
			q := buildQuery(t, 0x4242, "Example.COM.", dnsmessage.TypeA, opt)
			var resp []byte
			if tc.tcp {
				resp = exchangeTCP(t, dial(t, "tcp", at), q)
			} else {
				resp = exchangeUDP(t, dial(t, "udp", at), q)
			}
			r := parseReply(t, resp)
			if r.header.ID != 0x4242 || r.header.RCode != tc.rcode || len(r.addrs) != tc.addrs || r.header.Truncated != tc.truncated {
				t.Fatalf("reply %+v with %d answers", r.header, len(r.addrs))
			}
			if len(r.q) != 1 || r.q[0].Name.String() != "Example.COM." {
				t.Fatalf("question %+v", r.q)
			}
			if tc.truncated && len(resp) > 512 {
				t.Fatalf("a %d-byte reply to a UDP client without EDNS0", len(resp))
			}
			if len(ups) == 0 {
				return
			}
			var got []string
			for _, sq := range ups[0].queries() {
				got = append(got, map[bool]string{false: "udp", true: "tcp"}[sq.tcp])
				if sq.name != "Example.COM." {
					t.Errorf("upstream asked for %q", sq.name)
				}
				if tc.edns && (len(sq.opt) != 1 || sq.opt[0].Code != 10 || !bytes.Equal(sq.opt[0].Data, cookie[0].Data)) {
					t.Errorf("the EDNS0 option did not pass through: %+v", sq.opt)
				}
				if !tc.edns && sq.opt != nil {
					t.Errorf("an OPT record appeared: %+v", sq.opt)
				}
			}
			if len(got) != len(tc.upstream) || (len(got) > 0 && (got[0] != tc.upstream[0] || got[len(got)-1] != tc.upstream[len(tc.upstream)-1])) {
				t.Fatalf("the upstream saw %v, want %v", got, tc.upstream)
			}
			// Local names are not forwarded.
			before := len(ups[0].queries())
			var local []byte
			if tc.tcp {
				local = exchangeTCP(t, dial(t, "tcp", at), buildQuery(t, 1, "web.", dnsmessage.TypeA, nil))
			} else {
				local = exchangeUDP(t, dial(t, "udp", at), buildQuery(t, 1, "web.", dnsmessage.TypeA, nil))
			}
			if lr := parseReply(t, local); len(lr.addrs) != 1 || lr.addrs[0] != ip("10.0.0.2") {
				t.Fatalf("local answer %+v", lr)
			}
			if len(ups[0].queries()) != before {
				t.Fatal("a local name was forwarded")
			}
		})
	}
}

// TestServerTCPSession: one TCP connection carries several queries, and
// garbage on it ends that connection only.
func TestServerTCPSession(t *testing.T) {
	reg := OpenRegistry(t.TempDir())
	addEntries(t, reg, Entry{Network: "n", ContainerID: "c", Names: []string{"web"}, IPv4: netip.MustParseAddr("10.0.0.2")})
	_, at := testServer(t, reg, []string{"n"}, nil, time.Second)
	c := dial(t, "tcp", at)
	for i := range 3 {
		r := parseReply(t, exchangeTCP(t, c, buildQuery(t, uint16(i), "web.", dnsmessage.TypeA, nil)))
		if r.header.ID != uint16(i) || len(r.addrs) != 1 {
			t.Fatalf("query %d: %+v", i, r)
		}
	}
	// A malformed message gets FORMERR on the same connection.
	r := exchangeTCP(t, c, []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	if h := parseReply(t, r).header; h.ID != 0xabcd || h.RCode != dnsmessage.RCodeFormatError {
		t.Fatalf("reply to garbage %+v", h)
	}
	// A length prefix without its message: the server hangs up in time,
	// and still serves others.
	c.Write([]byte{0, 200, 1, 2})
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, io.EOF) {
		t.Fatalf("after a cut message: %v", err)
	}
	u := dial(t, "udp", at)
	if r := parseReply(t, exchangeUDP(t, u, buildQuery(t, 5, "web.", dnsmessage.TypeA, nil))); len(r.addrs) != 1 {
		t.Fatalf("UDP after a bad TCP client: %+v", r)
	}
	// Garbage over UDP does not stop the server either.
	u.Write([]byte{1, 2, 3})
	if r := parseReply(t, exchangeUDP(t, u, buildQuery(t, 6, "web.", dnsmessage.TypeA, nil))); r.header.ID != 6 {
		t.Fatalf("UDP after garbage: %+v", r)
	}
}

// TestServerClose: Close ends the server while a forward is in flight,
// and the address is free again.
func TestServerClose(t *testing.T) {
	u := startUpstream(t, silent)
	reg := OpenRegistry(t.TempDir())
	udp, tcp := listenPair(t, "127.0.0.1")
	at := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	s := serve(Config{Networks: []string{"n"}, Upstream: []netip.AddrPort{u.addr}}, reg, udp, tcp, time.Hour)
	c := dial(t, "udp", at)
	c.Write(buildQuery(t, 1, "example.com.", dnsmessage.TypeA, nil))
	tc := dial(t, "tcp", at)
	// Wait until the forward has reached the upstream.
	for deadline := time.Now().Add(10 * time.Second); len(u.queries()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the query never reached the upstream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("a client TCP connection survived Close")
	}
	udp2, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
	if err != nil {
		t.Fatalf("the UDP address is still taken: %v", err)
	}
	udp2.Close()
	tcp2, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(at))
	if err != nil {
		t.Fatalf("the TCP address is still taken: %v", err)
	}
	tcp2.Close()
}
