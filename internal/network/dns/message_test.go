package dns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// fixture is a registry with two networks; the querying container is on
// net1 only.
func fixture(t testing.TB) *Server {
	t.Helper()
	reg := OpenRegistry(t.TempDir())
	ip := netip.MustParseAddr
	addEntries(t, reg,
		Entry{Network: "net1", ContainerID: "c1abc", Names: []string{"web", "www", "c1abc"}, IPv4: ip("10.0.0.2"), IPv6: ip("fd00::2")},
		Entry{Network: "net1", ContainerID: "c2", Names: []string{"db", "database"}, IPv4: ip("10.0.0.3")},
		Entry{Network: "net1", ContainerID: "c3", Names: []string{"api-1", "api"}, IPv4: ip("10.0.0.4")},
		Entry{Network: "net1", ContainerID: "c4", Names: []string{"api-2", "api"}, IPv4: ip("10.0.0.5")},
		Entry{Network: "net1", ContainerID: "c5", Names: []string{"api-3", "api"}, IPv4: ip("10.0.0.6")},
		Entry{Network: "net1", ContainerID: "c6", Names: []string{"v6only"}, IPv6: ip("fd00::6")},
		Entry{Network: "net1", ContainerID: "c7", Names: []string{"pair-1", "pair"}, IPv4: ip("10.0.0.7"), IPv6: ip("fd00::7")},
		Entry{Network: "net1", ContainerID: "c8", Names: []string{"pair-2", "pair"}, IPv4: ip("10.0.0.8"), IPv6: ip("fd00::8")},
		Entry{Network: "net2", ContainerID: "c9", Names: []string{"secret", "web"}, IPv4: ip("10.9.0.2")},
	)
	for i := range 100 {
		addEntries(t, reg, Entry{Network: "net1", ContainerID: fmt.Sprintf("m%03d", i), Names: []string{fmt.Sprintf("m%d", i), "many"},
			IPv4: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})})
	}
	s := &Server{reg: reg}
	s.SetNetworks([]string{"net1"})
	return s
}

func TestDecide(t *testing.T) {
	s := fixture(t)
	ip := netip.MustParseAddr
	const (
		ok      = dnsmessage.RCodeSuccess
		forward = dnsmessage.RCode(0xffff) // the query goes upstream
	)
	tests := []struct {
		name  string
		qname string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		addrs []netip.Addr
		ptrs  []string
	}{
		{"A of a container name", "web.", dnsmessage.TypeA, ok, []netip.Addr{ip("10.0.0.2")}, nil},
		{"case does not matter", "WeB.", dnsmessage.TypeA, ok, []netip.Addr{ip("10.0.0.2")}, nil},
		{"network alias", "WWW.", dnsmessage.TypeA, ok, []netip.Addr{ip("10.0.0.2")}, nil},
		{"short ID", "c1abc.", dnsmessage.TypeA, ok, []netip.Addr{ip("10.0.0.2")}, nil},
		{"AAAA", "web.", dnsmessage.TypeAAAA, ok, []netip.Addr{ip("fd00::2")}, nil},
		{"AAAA of an IPv4-only name is NODATA", "db.", dnsmessage.TypeAAAA, ok, nil, nil},
		{"A of an IPv6-only name is NODATA", "v6only.", dnsmessage.TypeA, ok, nil, nil},
		{"MX of a container name is NODATA", "database.", dnsmessage.TypeMX, ok, nil, nil},
		{"a name only on another network goes upstream", "secret.", dnsmessage.TypeA, forward, nil, nil},
		{"an unknown name goes upstream", "example.com.", dnsmessage.TypeA, forward, nil, nil},
		{"a container name under a domain goes upstream", "web.example.com.", dnsmessage.TypeA, forward, nil, nil},
		{"PTR of an IPv4 address", "2.0.0.10.in-addr.arpa.", dnsmessage.TypePTR, ok, nil, []string{"web."}},
		{"PTR of an IPv6 address", "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dnsmessage.TypePTR, ok, nil, []string{"web."}},
		{"PTR in upper case", "3.0.0.10.IN-ADDR.ARPA.", dnsmessage.TypePTR, ok, nil, []string{"db."}},
		{"PTR of an address on another network goes upstream", "2.0.9.10.in-addr.arpa.", dnsmessage.TypePTR, forward, nil, nil},
		{"PTR of an unknown address goes upstream", "1.1.168.192.in-addr.arpa.", dnsmessage.TypePTR, forward, nil, nil},
		{"malformed reverse name goes upstream", "x.0.0.10.in-addr.arpa.", dnsmessage.TypePTR, forward, nil, nil},
		{"short reverse name goes upstream", "0.10.in-addr.arpa.", dnsmessage.TypePTR, forward, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := buildQuery(t, 0x1234, tc.qname, tc.typ, nil)
			d := decide(raw, false, s)
			if tc.rcode == forward {
				if !d.forward || d.resp != nil {
					t.Fatalf("not forwarded: %+v", d)
				}
				return
			}
			if d.forward {
				t.Fatal("forwarded")
			}
			r := parseReply(t, d.resp)
			if r.header.ID != 0x1234 || !r.header.Response || r.header.RCode != tc.rcode || !r.header.RecursionAvailable || !r.header.RecursionDesired || r.header.Truncated {
				t.Fatalf("header %+v", r.header)
			}
			if len(r.q) != 1 || r.q[0].Name.String() != tc.qname || r.q[0].Type != tc.typ {
				t.Fatalf("question %+v", r.q)
			}
			if !slices.Equal(r.addrs, tc.addrs) || !slices.Equal(r.ptrs, tc.ptrs) {
				t.Fatalf("answers %v %v, want %v %v", r.addrs, r.ptrs, tc.addrs, tc.ptrs)
			}
			for _, ttl := range r.ttls {
				if ttl != 600 {
					t.Fatalf("TTL %d", ttl)
				}
			}
			if r.opt != nil {
				t.Fatal("an OPT record for a query without one")
			}
		})
	}
}

// TestDecideFirstNetwork: a name on two of the container's networks is
// answered from the first, as Docker does.
func TestDecideFirstNetwork(t *testing.T) {
	s := fixture(t)
	s.SetNetworks([]string{"net2", "net1"})
	r := parseReply(t, decide(buildQuery(t, 1, "web.", dnsmessage.TypeA, nil), false, s).resp)
	if !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("10.9.0.2")}) {
		t.Fatalf("web on net2 first: %v", r.addrs)
	}
	// ... but an AAAA comes from the network that has one.
	r = parseReply(t, decide(buildQuery(t, 1, "web.", dnsmessage.TypeAAAA, nil), false, s).resp)
	if !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("fd00::2")}) {
		t.Fatalf("AAAA web: %v", r.addrs)
	}
	s.SetNetworks(nil)
	if d := decide(buildQuery(t, 1, "web.", dnsmessage.TypeA, nil), false, s); !d.forward {
		t.Fatal("a container on no network resolved a name")
	}
}

func TestDecideRoundRobin(t *testing.T) {
	s := fixture(t)
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		typ  dnsmessage.Type
		all  []netip.Addr
	}{
		{"api.", dnsmessage.TypeA, []netip.Addr{ip("10.0.0.4"), ip("10.0.0.5"), ip("10.0.0.6")}},
		{"pair.", dnsmessage.TypeA, []netip.Addr{ip("10.0.0.7"), ip("10.0.0.8")}},
		{"pair.", dnsmessage.TypeAAAA, []netip.Addr{ip("fd00::7"), ip("fd00::8")}},
	}
	for _, tc := range tests {
		t.Run(tc.name+tc.typ.String(), func(t *testing.T) {
			firsts := map[netip.Addr]bool{}
			for i := range len(tc.all) {
				// Each lookup asks for A and AAAA, as resolvers do;
				// the answers of each family still rotate through
				// every address.
				var r parsed
				for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
					d := decide(buildQuery(t, 7, tc.name, typ, nil), false, s)
					if typ == tc.typ {
						r = parseReply(t, d.resp)
					}
				}
				sorted := slices.Clone(r.addrs)
				slices.SortFunc(sorted, netip.Addr.Compare)
				if !slices.Equal(sorted, tc.all) {
					t.Fatalf("lookup %d: %v, want the addresses %v", i, r.addrs, tc.all)
				}
				firsts[r.addrs[0]] = true
			}
			if len(firsts) != len(tc.all) {
				t.Fatalf("%d lookups began with %d distinct addresses", len(tc.all), len(firsts))
			}
		})
	}
}

// TestDecideTruncation: 100 addresses do not fit 512 bytes: over UDP as
// many as fit, with TC; with EDNS0 up to its size; over TCP all.
func TestDecideTruncation(t *testing.T) {
	s := fixture(t)
	plain := buildQuery(t, 9, "many.", dnsmessage.TypeA, nil)
	withEDNS := buildQuery(t, 9, "many.", dnsmessage.TypeA, []dnsmessage.Option{})
	tests := []struct {
		name      string
		raw       []byte
		tcp       bool
		limit     int
		truncated bool
	}{
		{"UDP", plain, false, 512, true},
		{"UDP with EDNS0 1232", withEDNS, false, 1232, true},
		{"TCP", plain, true, maxMsgSize, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := decide(tc.raw, tc.tcp, s).resp
			r := parseReply(t, resp)
			if len(resp) > tc.limit || r.header.Truncated != tc.truncated || len(r.addrs) == 0 {
				t.Fatalf("%d bytes, TC %v, %d answers", len(resp), r.header.Truncated, len(r.addrs))
			}
			if !tc.truncated && len(r.addrs) != 100 {
				t.Fatalf("%d answers over TCP", len(r.addrs))
			}
			if (r.opt != nil) != (len(tc.raw) != len(plain)) {
				t.Fatalf("OPT %v", r.opt)
			}
		})
	}
}

func TestDecideMalformed(t *testing.T) {
	s := fixture(t)
	good := buildQuery(t, 0xbeef, "web.", dnsmessage.TypeA, nil)
	withCount := func(qd uint16) []byte {
		b := slices.Clone(good[:12])
		binary.BigEndian.PutUint16(b[4:], qd)
		return b
	}
	twoQuestions := func() []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0xbeef})
		b.StartQuestions()
		q := dnsmessage.Question{Name: dnsmessage.MustNewName("web."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
		b.Question(q)
		b.Question(q)
		out, _ := b.Finish()
		return out
	}()
	response := slices.Clone(good)
	response[2] |= 0x80
	status := slices.Clone(good)
	status[2] |= 2 << 3
	loop := slices.Clone(good[:12])
	loop = append(loop, 0xc0, 12, 0, 1, 0, 1) // a name pointing at itself
	tests := []struct {
		name  string
		raw   []byte
		drop  bool
		rcode dnsmessage.RCode
	}{
		{"empty", nil, true, 0},
		{"shorter than a header", good[:5], true, 0},
		{"a reply", response, true, 0},
		{"no question", withCount(0), false, dnsmessage.RCodeFormatError},
		{"question missing", withCount(1), false, dnsmessage.RCodeFormatError},
		{"two questions", twoQuestions, false, dnsmessage.RCodeFormatError},
		{"question cut short", good[:len(good)-2], false, dnsmessage.RCodeFormatError},
		{"compression loop", loop, false, dnsmessage.RCodeFormatError},
		{"opcode STATUS", status, false, dnsmessage.RCodeNotImplemented},
		{"additional count without records", func() []byte { b := slices.Clone(good); b[11] = 3; return b }(), false, dnsmessage.RCodeFormatError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.decide(tc.raw, false)
			if d.forward {
				t.Fatal("forwarded")
			}
			if tc.drop {
				if d.resp != nil {
					t.Fatalf("answered %x", d.resp)
				}
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(d.resp)
			if err != nil || h.ID != 0xbeef || !h.Response || h.RCode != tc.rcode {
				t.Fatalf("reply %x: %+v %v", d.resp, h, err)
			}
		})
	}
}

func TestParseArpa(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"4.3.2.1.in-addr.arpa", "1.2.3.4"},
		{"255.0.0.10.in-addr.arpa", "10.0.0.255"},
		{"256.0.0.10.in-addr.arpa", ""},
		{"01.0.0.10.in-addr.arpa", ""},
		{"-1.0.0.10.in-addr.arpa", ""},
		{".0.0.10.in-addr.arpa", ""},
		{"1.0.0.0.10.in-addr.arpa", ""},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa", "4321:0:1:2:3:4:567:89ab"},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.ip6.arpa", ""},
		{"g.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa", ""},
		{"ba.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4..ip6.arpa", ""},
		{"example.com", ""},
	}
	for _, tc := range tests {
		a, ok := parseArpa(tc.in)
		if got := map[bool]string{true: a.String(), false: ""}[ok]; got != tc.want {
			t.Errorf("parseArpa(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDecide: no input crashes the server; every reply it sends parses.
func FuzzDecide(f *testing.F) {
	f.Add(buildQuery(f, 1, "web.", dnsmessage.TypeA, nil))
	f.Add(buildQuery(f, 2, "2.0.0.10.in-addr.arpa.", dnsmessage.TypePTR, []dnsmessage.Option{{Code: 10, Data: []byte("12345678")}}))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0xc0, 12, 0, 1})
	f.Add([]byte{})
	s := fixture(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, tcp := range []bool{false, true} {
			d := s.decide(raw, tcp)
			if d.resp != nil {
				var m dnsmessage.Message
				if err := m.Unpack(d.resp); err != nil {
					t.Fatalf("unreadable reply %x to %x: %v", d.resp, raw, err)
				}
			}
		}
	})
}
