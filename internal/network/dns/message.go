package dns

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	// ttl of local answers, as Docker's embedded server gives them.
	ttl = 600
	// minUDPSize is what a client without EDNS0 takes over UDP.
	minUDPSize = 512
	// maxMsgSize is what a TCP message can carry.
	maxMsgSize = 65535
	// ourUDPSize is the payload size our local answers announce in their
	// OPT record.
	ourUDPSize = 1232
)

// query is a parsed client query: what the server needs to decide.
type query struct {
	header   dnsmessage.Header
	question dnsmessage.Question
	// udpLimit is the largest reply the client takes over UDP (512, or
	// its EDNS0 payload size).
	udpLimit int
	edns     bool
}

// decision is what to do with one query: send resp, or forward it.
type decision struct {
	resp    []byte
	forward bool
	q       query
}

// resolver answers from the name table; the server implements it over
// its registry and networks, tests over a fixed table.
type resolver interface {
	// addrs returns the addresses (IPv6 when v6) of name on the first of
	// the querier's networks where it has any, and whether the name is
	// known at all.
	addrs(name string, v6 bool) (addrs []netip.Addr, known bool, err error)
	// ptr returns the name of the container with address a.
	ptr(a netip.Addr) (name string, ok bool, err error)
	// rotation is the round-robin offset of the next answer of a family.
	// A and AAAA count apart: resolvers ask both for each lookup, and one
	// shared count would give A answers every other offset only.
	rotation(v6 bool) uint32
}

// decide parses raw and answers it from r, or says it must be forwarded.
// A nil resp without forward means the packet is dropped (it is not a
// query).
func decide(raw []byte, tcp bool, r resolver) decision {
	var p dnsmessage.Parser
	h, err := p.Start(raw)
	if err != nil {
		return decision{resp: rawError(raw, dnsmessage.RCodeFormatError)}
	}
	if h.Response {
		return decision{} // never answer an answer: no loops between servers
	}
	q := query{header: h, udpLimit: minUDPSize}
	if h.OpCode != 0 {
		return decision{resp: reply(q, false, dnsmessage.RCodeNotImplemented)}
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return decision{resp: reply(q, false, dnsmessage.RCodeFormatError)}
	}
	q.question = qs[0]
	if err := p.SkipAllAnswers(); err != nil {
		return decision{resp: reply(q, true, dnsmessage.RCodeFormatError)}
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return decision{resp: reply(q, true, dnsmessage.RCodeFormatError)}
	}
	for {
		rh, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return decision{resp: reply(q, true, dnsmessage.RCodeFormatError)}
		}
		if rh.Type == dnsmessage.TypeOPT {
			q.edns = true
			q.udpLimit = max(minUDPSize, int(rh.Class))
		}
		if err := p.SkipAdditional(); err != nil {
			return decision{resp: reply(q, true, dnsmessage.RCodeFormatError)}
		}
	}
	if tcp {
		q.udpLimit = maxMsgSize
	}
	if q.question.Class != dnsmessage.ClassINET {
		return decision{forward: true, q: q}
	}
	name := canonicalName(q.question.Name.String())
	switch q.question.Type {
	case dnsmessage.TypePTR:
		a, ok := parseArpa(name)
		if !ok {
			return decision{forward: true, q: q}
		}
		target, ok, err := r.ptr(a)
		if err != nil {
			return decision{resp: reply(q, true, dnsmessage.RCodeServerFailure)}
		}
		if !ok {
			return decision{forward: true, q: q}
		}
		return decision{resp: answerPTR(q, target)}
	default:
		v6 := q.question.Type == dnsmessage.TypeAAAA
		addrs, known, err := r.addrs(name, v6)
		if err != nil {
			return decision{resp: reply(q, true, dnsmessage.RCodeServerFailure)}
		}
		if !known {
			return decision{forward: true, q: q}
		}
		if q.question.Type != dnsmessage.TypeA && !v6 {
			addrs = nil // a container name has addresses only: NODATA
		}
		var rotate uint32
		if len(addrs) > 1 {
			rotate = r.rotation(v6)
		}
		return decision{resp: answerAddrs(q, addrs, rotate)}
	}
}

func responseHeader(q query, rcode dnsmessage.RCode) dnsmessage.Header {
	return dnsmessage.Header{
		ID:                 q.header.ID,
		Response:           true,
		OpCode:             q.header.OpCode,
		RecursionDesired:   q.header.RecursionDesired,
		RecursionAvailable: true,
		CheckingDisabled:   q.header.CheckingDisabled,
		RCode:              rcode,
	}
}

// reply is an answer without records: an error, or NODATA. It repeats the
// question when the query had a readable one, and an OPT record when the
// query had one.
func reply(q query, withQuestion bool, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 128), responseHeader(q, rcode))
	b.EnableCompression()
	if withQuestion {
		if b.StartQuestions() != nil || b.Question(q.question) != nil {
			return headerOnly(q, rcode)
		}
	}
	if !addOPT(&b, q) {
		return headerOnly(q, rcode)
	}
	out, err := b.Finish()
	if err != nil {
		return headerOnly(q, rcode)
	}
	return out
}

func addOPT(b *dnsmessage.Builder, q query) bool {
	if !q.edns {
		return true
	}
	var rh dnsmessage.ResourceHeader
	if rh.SetEDNS0(ourUDPSize, dnsmessage.RCodeSuccess, false) != nil {
		return false
	}
	return b.StartAdditionals() == nil && b.OPTResource(rh, dnsmessage.OPTResource{}) == nil
}

// answerAddrs answers with addrs, rotated by rotate for round robin,
// keeping as many as fit the client's limit (and setting TC over UDP when
// some did not, so that the client asks again over TCP).
func answerAddrs(q query, addrs []netip.Addr, rotate uint32) []byte {
	n := len(addrs)
	rotated := make([]netip.Addr, 0, n)
	for i := range n {
		rotated = append(rotated, addrs[(int(rotate%uint32(n))+i)%n])
	}
	for keep := n; ; keep-- {
		out, ok := buildAddrs(q, rotated[:keep], keep < n)
		if !ok || len(out) <= q.udpLimit || keep == 0 {
			return out
		}
	}
}

func buildAddrs(q query, addrs []netip.Addr, truncated bool) ([]byte, bool) {
	h := responseHeader(q, dnsmessage.RCodeSuccess)
	h.Truncated = truncated
	b := dnsmessage.NewBuilder(make([]byte, 0, 64+len(addrs)*28), h)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q.question) != nil || b.StartAnswers() != nil {
		return headerOnly(q, dnsmessage.RCodeServerFailure), false
	}
	rh := dnsmessage.ResourceHeader{Name: q.question.Name, Class: dnsmessage.ClassINET, TTL: ttl}
	for _, a := range addrs {
		var err error
		if a.Is4() {
			rh.Type = dnsmessage.TypeA
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		} else {
			rh.Type = dnsmessage.TypeAAAA
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return headerOnly(q, dnsmessage.RCodeServerFailure), false
		}
	}
	if !addOPT(&b, q) {
		return headerOnly(q, dnsmessage.RCodeServerFailure), false
	}
	out, err := b.Finish()
	if err != nil {
		return headerOnly(q, dnsmessage.RCodeServerFailure), false
	}
	return out, true
}

func answerPTR(q query, target string) []byte {
	name, err := dnsmessage.NewName(target + ".")
	if err != nil {
		return reply(q, true, dnsmessage.RCodeServerFailure)
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 256), responseHeader(q, dnsmessage.RCodeSuccess))
	b.EnableCompression()
	rh := dnsmessage.ResourceHeader{Name: q.question.Name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: ttl}
	if b.StartQuestions() != nil || b.Question(q.question) != nil || b.StartAnswers() != nil ||
		b.PTRResource(rh, dnsmessage.PTRResource{PTR: name}) != nil || !addOPT(&b, q) {
		return reply(q, true, dnsmessage.RCodeServerFailure)
	}
	out, err := b.Finish()
	if err != nil {
		return reply(q, true, dnsmessage.RCodeServerFailure)
	}
	return out
}

// rawError answers a query whose header alone could be read: no
// sections, only the ID, opcode and RD of the query. It is nil when raw
// has no header (nothing to answer to).
func rawError(raw []byte, rcode dnsmessage.RCode) []byte {
	if len(raw) < 12 {
		return nil
	}
	out := make([]byte, 12)
	copy(out[:2], raw[:2])
	out[2] = raw[2]&0x79 | 0x80     // opcode and RD, QR set
	out[3] = 0x80 | byte(rcode&0xf) // RA
	return out
}

// headerOnly is the reply of last resort, should building a fuller one
// fail: the header alone.
func headerOnly(q query, rcode dnsmessage.RCode) []byte {
	out := make([]byte, 12)
	setID(out, q.header.ID)
	out[2] = 0x80 | byte(q.header.OpCode&0xf)<<3
	if q.header.RecursionDesired {
		out[2] |= 1
	}
	out[3] = 0x80 | byte(rcode&0xf)
	return out
}

// truncatedReply stands in for an upstream answer too large for the
// client's UDP limit: the question with TC set, so that it asks again
// over TCP.
func truncatedReply(q query, rcode dnsmessage.RCode) []byte {
	h := responseHeader(q, rcode)
	h.Truncated = true
	b := dnsmessage.NewBuilder(make([]byte, 0, 128), h)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q.question) != nil || !addOPT(&b, q) {
		return headerOnly(q, dnsmessage.RCodeServerFailure)
	}
	out, err := b.Finish()
	if err != nil {
		return headerOnly(q, dnsmessage.RCodeServerFailure)
	}
	return out
}

// parseArpa reads the address of a reverse name (canonical form, no
// final dot): d.c.b.a.in-addr.arpa or 32 nibbles followed by ip6.arpa.
func parseArpa(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var a [4]byte
		for i, l := range labels {
			if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(l, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			a[3-i] = byte(v)
		}
		return netip.AddrFrom4(a), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var a [16]byte
		for i := range 32 {
			c := rest[2*i]
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// the first label is the lowest nibble of the last byte
			pos := 31 - i
			if pos%2 == 0 {
				a[pos/2] |= v << 4
			} else {
				a[pos/2] |= v
			}
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// setID writes id into a message's header.
func setID(msg []byte, id uint16) { binary.BigEndian.PutUint16(msg[:2], id) }
