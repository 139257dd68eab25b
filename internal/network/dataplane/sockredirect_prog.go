package dataplane

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The redirect programs, one per hook. Stack layout (offsets from r10):
//
//	-24..-1   redirect map key:  proto, family, port(2), pad(4), addr(16)
//	-56..-25  reverse map key:   cookie(8), family, pad, port(2), pad(4), addr(16)
//	-80..-57  reverse map value: family, pad, port(2), pad(4), addr(16)
//
// Ports and addresses stay in network byte order throughout: a port is
// read from ctx->user_port as a 32-bit word whose low half is the port's
// two bytes in memory order, and stored back the same way.
const (
	stKey    = -24
	stRevKey = -56
	stRevVal = -80
)

// loopback6Word3 is the last 32-bit word of ::1 as a little-endian load
// sees it (bytes 00 00 00 01). The programs are built for little-endian
// hosts only (see redirectProgram).
const loopback6Word3 = 0x01000000

func redirectProgram(h redirectHook, cookie uint64, mapFD, revFD int) ([]byte, error) {
	if !hostLittleEndian() {
		// The byte tests below (127/8, ::1) assume it.
		return nil, errNoRedirect
	}
	a := &bpfAsm{}
	a.movReg(r6, r1)
	// Only the host's sockets: containers' loopbacks are their own.
	a.movReg(r1, r6)
	a.call(fnGetNetnsCookie)
	a.ldImm64(r2, cookie)
	a.jneReg(r0, r2, "out")
	if h.rev {
		reverseBody(a, h, revFD)
	} else {
		forwardBody(a, h, mapFD, revFD)
	}
	a.label("out")
	a.movImm(r0, 1)
	a.exit()
	return a.bytes()
}

func zero(a *bpfAsm, off int16, n int) {
	for i := 0; i < n; i += 8 {
		a.st(bpfSizeDW, r10, off+int16(i), 0)
	}
}

// forwardBody: connect and sendmsg. r7 = destination (v4), r8 =
// protocol, then the map value; r9 = destination port.
func forwardBody(a *bpfAsm, h redirectHook, mapFD, revFD int) {
	fam := int32(4)
	if h.v6 {
		fam = 6
		// Destination ::1 only.
		for i := int16(0); i < 3; i++ {
			a.ldx(bpfSizeW, r2, r6, ctxUserIP6+4*i)
			a.jneImm(r2, 0, "out")
		}
		a.ldx(bpfSizeW, r2, r6, ctxUserIP6+12)
		a.jneImm(r2, loopback6Word3, "out")
	} else {
		// Destination 127/8: its first byte is the word's low byte.
		a.ldx(bpfSizeW, r7, r6, ctxUserIP4)
		a.movReg(r2, r7)
		a.andImm(r2, 0xff)
		a.jneImm(r2, 127, "out")
	}
	// connect: TCP only. A connected UDP socket would keep a redirected
	// destination for its life, to a container that may since have
	// given the port to another; through DNAT its flow follows the
	// port (forgetFlows). Unconnected UDP is looked up per datagram
	// (sendmsg), so it follows the port too.
	a.ldx(bpfSizeW, r8, r6, ctxProtocol)
	if h.send {
		a.jneImm(r8, unix.IPPROTO_UDP, "out")
	} else {
		a.jneImm(r8, unix.IPPROTO_TCP, "out")
	}
	// A socket bound to a loopback address (or a datagram sent from
	// one) keeps the DNAT path: the container could not answer it, and
	// only the DNAT path masquerades.
	a.ldx(bpfSizeDW, r2, r6, ctxSk)
	if h.v6 {
		loopback6Check(a, r2, skSrcIP6, "srcok")
		if h.send {
			loopback6Check(a, r6, ctxMsgSrcIP6, "msgsrcok")
		}
	} else {
		a.ldx(bpfSizeW, r3, r2, skSrcIP4)
		a.andImm(r3, 0xff)
		a.jeqImm(r3, 127, "out")
		if h.send {
			a.ldx(bpfSizeW, r3, r6, ctxMsgSrcIP4)
			a.andImm(r3, 0xff)
			a.jeqImm(r3, 127, "out")
		}
	}
	a.ldx(bpfSizeW, r9, r6, ctxUserPort)
	zero(a, stKey, redirectKeySize)
	a.stx(bpfSizeB, r10, stKey, r8)
	a.st(bpfSizeB, r10, stKey+1, fam)
	a.stx(bpfSizeH, r10, stKey+2, r9)
	if !h.v6 {
		// The exact address first (-p 127.0.0.1:P:...), then every
		// address (-p P:...): key address 0.
		a.stx(bpfSizeW, r10, stKey+8, r7)
		a.ldMapFD(r1, mapFD)
		a.movReg(r2, r10)
		a.addImm(r2, stKey)
		a.call(fnMapLookupElem)
		a.jneImm(r0, 0, "found")
		a.st(bpfSizeW, r10, stKey+8, 0)
	}
	// IPv6: ::1 cannot be published on; only ports published on every
	// address (key address ::) are reached through it.
	a.ldMapFD(r1, mapFD)
	a.movReg(r2, r10)
	a.addImm(r2, stKey)
	a.call(fnMapLookupElem)
	a.jeqImm(r0, 0, "out")
	a.label("found")
	a.ldx(bpfSizeB, r2, r0, 0)
	a.jneImm(r2, fam, "out")
	a.movReg(r8, r0)

	// Remember the original for getpeername and recvmsg.
	zero(a, stRevVal, redirectValSize)
	a.st(bpfSizeB, r10, stRevVal, fam)
	a.stx(bpfSizeH, r10, stRevVal+2, r9)
	if h.v6 {
		a.st(bpfSizeW, r10, stRevVal+8+12, loopback6Word3)
	} else {
		a.stx(bpfSizeW, r10, stRevVal+8, r7)
	}
	a.movReg(r1, r6)
	a.call(fnGetSocketCookie)
	a.stx(bpfSizeDW, r10, stRevKey, r0)
	zero(a, stRevKey+8, redirectRevKeySize-8)
	a.st(bpfSizeB, r10, stRevKey+8, fam)
	a.ldx(bpfSizeH, r2, r8, 2)
	a.stx(bpfSizeH, r10, stRevKey+10, r2)
	words := int16(1)
	if h.v6 {
		words = 4
	}
	for i := int16(0); i < words; i++ {
		a.ldx(bpfSizeW, r2, r8, 8+4*i)
		a.stx(bpfSizeW, r10, stRevKey+16+4*i, r2)
	}
	a.ldMapFD(r1, revFD)
	a.movReg(r2, r10)
	a.addImm(r2, stRevKey)
	a.movReg(r3, r10)
	a.addImm(r3, stRevVal)
	a.movImm(r4, unix.BPF_ANY)
	a.call(fnMapUpdateElem)
	// A full or failing reverse map only costs getpeername its
	// disguise: the connection is redirected all the same.

	// Rewrite the destination.
	for i := int16(0); i < words; i++ {
		a.ldx(bpfSizeW, r2, r8, 8+4*i)
		if h.v6 {
			a.stx(bpfSizeW, r6, ctxUserIP6+4*i, r2)
		} else {
			a.stx(bpfSizeW, r6, ctxUserIP4, r2)
		}
	}
	a.ldx(bpfSizeH, r2, r8, 2)
	a.stx(bpfSizeW, r6, ctxUserPort, r2)
}

// loopback6Check jumps to "out" when the 16 bytes at base+off are ::1.
func loopback6Check(a *bpfAsm, base bpfReg, off int16, ok string) {
	a.ldx(bpfSizeW, r3, base, off)
	a.ldx(bpfSizeW, r4, base, off+4)
	a.orReg(r3, r4)
	a.ldx(bpfSizeW, r4, base, off+8)
	a.orReg(r3, r4)
	a.jneImm(r3, 0, ok)
	a.ldx(bpfSizeW, r3, base, off+12)
	a.jeqImm(r3, loopback6Word3, "out")
	a.label(ok)
}

// reverseBody: getpeername and recvmsg put back the address the socket
// was connected or sent to.
func reverseBody(a *bpfAsm, h redirectHook, revFD int) {
	fam, words := int32(4), int16(1)
	if h.v6 {
		fam, words = 6, 4
	}
	a.movReg(r1, r6)
	a.call(fnGetSocketCookie)
	a.stx(bpfSizeDW, r10, stRevKey, r0)
	zero(a, stRevKey+8, redirectRevKeySize-8)
	a.st(bpfSizeB, r10, stRevKey+8, fam)
	a.ldx(bpfSizeW, r2, r6, ctxUserPort)
	a.stx(bpfSizeH, r10, stRevKey+10, r2)
	for i := int16(0); i < words; i++ {
		if h.v6 {
			a.ldx(bpfSizeW, r2, r6, ctxUserIP6+4*i)
		} else {
			a.ldx(bpfSizeW, r2, r6, ctxUserIP4)
		}
		a.stx(bpfSizeW, r10, stRevKey+16+4*i, r2)
	}
	a.ldMapFD(r1, revFD)
	a.movReg(r2, r10)
	a.addImm(r2, stRevKey)
	a.call(fnMapLookupElem)
	a.jeqImm(r0, 0, "out")
	a.ldx(bpfSizeB, r2, r0, 0)
	a.jneImm(r2, fam, "out")
	for i := int16(0); i < words; i++ {
		a.ldx(bpfSizeW, r2, r0, 8+4*i)
		if h.v6 {
			a.stx(bpfSizeW, r6, ctxUserIP6+4*i, r2)
		} else {
			a.stx(bpfSizeW, r6, ctxUserIP4, r2)
		}
	}
	a.ldx(bpfSizeH, r2, r0, 2)
	a.stx(bpfSizeW, r6, ctxUserPort, r2)
}

func hostLittleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }
