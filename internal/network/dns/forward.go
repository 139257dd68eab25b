package dns

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var errMismatch = errors.New("the upstream reply does not answer the query")

// forward asks the upstream resolvers in turn, from the server's own
// (the host's) network namespace, and returns the reply for the client.
// The query goes as it came (EDNS0 options included) under an ID of our
// own. A reply that came truncated over UDP is asked again over TCP.
// SERVFAIL and REFUSED move on to the next resolver; when none answers in
// time the client gets SERVFAIL, as it does when there is no upstream at
// all (an internal network), as from Docker's server.
func (s *Server) forward(raw []byte, q query, tcp bool) []byte {
	var last []byte
	for _, up := range s.upstream {
		resp, err := s.exchange(raw, q, up, false)
		if err != nil {
			continue
		}
		if resp[2]&0x02 != 0 { // TC
			if full, err := s.exchange(raw, q, up, true); err == nil {
				resp = full
			}
		}
		last = resp
		if rc := dnsmessage.RCode(resp[3] & 0xf); rc != dnsmessage.RCodeServerFailure && rc != dnsmessage.RCodeRefused {
			break
		}
	}
	if last == nil {
		return reply(q, true, dnsmessage.RCodeServerFailure)
	}
	setID(last, q.header.ID)
	if !tcp && len(last) > q.udpLimit {
		return truncatedReply(q, dnsmessage.RCode(last[3]&0xf))
	}
	return last
}

// exchange sends raw to up over UDP or TCP and waits for its reply.
func (s *Server) exchange(raw []byte, q query, up netip.AddrPort, tcp bool) ([]byte, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	d := net.Dialer{Timeout: s.timeout}
	c, err := d.Dial(network, up.String())
	if err != nil {
		return nil, err
	}
	if !s.track(c) {
		return nil, net.ErrClosed
	}
	defer s.untrack(c)
	c.SetDeadline(time.Now().Add(s.timeout))
	id := uint16(rand.Uint32())
	msg := slices.Clone(raw)
	setID(msg, id)
	if tcp {
		if _, err := c.Write(lengthPrefixed(msg)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		resp := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			return nil, err
		}
		if !answers(resp, id, q) {
			return nil, errMismatch
		}
		return resp, nil
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, maxMsgSize)
	for {
		// A connected socket takes datagrams from up alone; anything not
		// answering our ID and question is ignored until the deadline.
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if answers(buf[:n], id, q) {
			return slices.Clone(buf[:n]), nil
		}
	}
}

// answers tells whether resp is the reply to our query: our ID, QR set,
// and the same question (names compared without case: a resolver may
// answer in another case).
func answers(resp []byte, id uint16, q query) bool {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != id || !h.Response {
		return false
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return false
	}
	if len(qs) == 0 {
		return h.RCode != dnsmessage.RCodeSuccess // some errors carry no question
	}
	return len(qs) == 1 && qs[0].Type == q.question.Type && qs[0].Class == q.question.Class &&
		canonicalName(qs[0].Name.String()) == canonicalName(q.question.Name.String())
}
