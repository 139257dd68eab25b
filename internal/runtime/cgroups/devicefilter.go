package cgroups

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// On cgroup v2 the device controller is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. The kernel runs it on
// every open and mknod of a device node with a struct bpf_cgroup_dev_ctx:
//
//	offset 0: u32 access_type  (access << 16) | type
//	offset 4: u32 major
//	offset 8: u32 minor
//
// and allows the access when it returns 1. The program is assembled here
// by hand; it needs a dozen instruction forms, which does not justify an
// eBPF library.

// Instruction encodings (linux/bpf_common.h, linux/bpf.h): class | op | source.
const (
	opLdxMemW   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W   // dst = *(u32 *)(src + off)
	opMovImm    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K // dst = imm
	opMovReg    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X // dst = src
	opAndImm    = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K // dst &= imm
	opAndReg    = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_X // dst &= src
	opOrImm     = unix.BPF_ALU64 | unix.BPF_OR | unix.BPF_K  // dst |= imm
	opXorImm    = unix.BPF_ALU64 | unix.BPF_XOR | unix.BPF_K // dst ^= imm
	opRshImm    = unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K // dst >>= imm
	opJneImm    = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K   // if dst != imm: pc += off
	opJeqImm    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K   // if dst == imm: pc += off
	opExit      = unix.BPF_JMP | unix.BPF_EXIT               // return r0
	ctxAccess   = 0                                          // offsetof(struct bpf_cgroup_dev_ctx, access_type)
	ctxMajor    = 4                                          // offsetof(..., major)
	ctxMinor    = 8                                          // offsetof(..., minor)
	devTypeMask = 0xffff                                     // access_type's low half is the device type
	accessShift = 16                                         // its high half is the access
	regCtx      = 1                                          // r1 holds the context on entry
	regRet      = 0                                          // r0 is the return value
	regAccess   = 2                                          // requested access bits
	regType     = 3                                          // BPF_DEVCG_DEV_BLOCK or _CHAR
	regMajor    = 4
	regMinor    = 5
	regGranted  = 6 // access bits the rules grant so far
	insnSize    = 8 // sizeof(struct bpf_insn)
)

// insn is a struct bpf_insn.
type insn struct {
	code     uint8
	dst, src uint8 // registers, 4 bits each
	off      int16
	imm      int32
}

// deviceFilter assembles the program for rules. It is the eBPF form of
// allowed: r6 collects the access bits granted to the device, each
// matching rule setting (allow) or clearing (deny) its bits in list order,
// and the access is allowed when every requested bit is granted.
func deviceFilter(rules []deviceRule) []insn {
	// Rules before the last one that covers everything cannot change
	// the outcome; start from that one's verdict instead.
	var granted int32
	for i := len(rules) - 1; i >= 0; i-- {
		if rules[i].matchesAll() {
			if rules[i].allow {
				granted = accessAll
			}
			rules = rules[i+1:]
			break
		}
	}

	prog := []insn{
		{code: opLdxMemW, dst: regAccess, src: regCtx, off: ctxAccess},
		{code: opMovReg, dst: regType, src: regAccess},
		{code: opAndImm, dst: regType, imm: devTypeMask},
		{code: opRshImm, dst: regAccess, imm: accessShift},
		{code: opLdxMemW, dst: regMajor, src: regCtx, off: ctxMajor},
		{code: opLdxMemW, dst: regMinor, src: regCtx, off: ctxMinor},
		{code: opMovImm, dst: regGranted, imm: granted},
	}
	for _, r := range rules {
		// Each test jumps past the rest of this rule's block when the
		// device does not match; the offsets are filled in once the
		// block's length is known.
		var block []insn
		if r.kind != 'a' {
			typ := int32(unix.BPF_DEVCG_DEV_CHAR)
			if r.kind == 'b' {
				typ = unix.BPF_DEVCG_DEV_BLOCK
			}
			block = append(block, insn{code: opJneImm, dst: regType, imm: typ})
		}
		if r.major != anyNumber {
			block = append(block, insn{code: opJneImm, dst: regMajor, imm: int32(r.major)})
		}
		if r.minor != anyNumber {
			block = append(block, insn{code: opJneImm, dst: regMinor, imm: int32(r.minor)})
		}
		if r.allow {
			block = append(block, insn{code: opOrImm, dst: regGranted, imm: int32(r.access)})
		} else {
			block = append(block, insn{code: opAndImm, dst: regGranted, imm: int32(accessAll &^ r.access)})
		}
		for i := range block {
			if block[i].code == opJneImm {
				block[i].off = int16(len(block) - 1 - i)
			}
		}
		prog = append(prog, block...)
	}
	return append(prog,
		// requested &^ granted == 0 ? 1 : 0
		insn{code: opXorImm, dst: regGranted, imm: -1},
		insn{code: opAndReg, dst: regAccess, src: regGranted},
		insn{code: opMovImm, dst: regRet, imm: 1},
		insn{code: opJeqImm, dst: regAccess, imm: 0, off: 1},
		insn{code: opMovImm, dst: regRet, imm: 0},
		insn{code: opExit},
	)
}

// encodeProgram lays the instructions out as the kernel reads them.
func encodeProgram(prog []insn) []byte {
	out := make([]byte, 0, len(prog)*insnSize)
	for _, in := range prog {
		// dst_reg:4 and src_reg:4 are C bit-fields, allocated from the
		// low bits on little-endian machines and from the high bits on
		// big-endian ones.
		regs := in.dst&0xf | in.src<<4
		if bigEndian() {
			regs = in.dst<<4 | in.src&0xf
		}
		out = append(out, in.code, regs)
		out = binary.NativeEndian.AppendUint16(out, uint16(in.off))
		out = binary.NativeEndian.AppendUint32(out, uint32(in.imm))
	}
	return out
}

func bigEndian() bool { return binary.NativeEndian.Uint16([]byte{0, 1}) == 1 }
