package seccompbpf

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// label names a position in a program under assembly. Conditional jumps of
// classic BPF reach at most 255 instructions ahead; the assembler turns the
// ones that must go further into a short conditional jump to a BPF_JA,
// whose offset has 32 bits.
type label int32

// next, as a jump target, is the instruction that follows the jump.
const next label = -1

// instruction is a BPF instruction whose jump targets are labels.
type instruction struct {
	code   uint16
	k      uint32
	jt, jf label // conditional jumps; a BPF_JA jumps to jt
	// farT and farF are set when jt or jf is out of reach of an 8-bit
	// offset and goes through a BPF_JA placed right after the instruction.
	farT, farF bool
}

// The parts of an instruction code (BPF_CLASS and BPF_OP in C).
const (
	classMask = 0x07
	opMask    = 0xf0
)

func (in *instruction) isCond() bool {
	return in.code&classMask == unix.BPF_JMP && in.code&opMask != unix.BPF_JA
}

func (in *instruction) isJA() bool {
	return in.code == unix.BPF_JMP|unix.BPF_JA
}

// targets lists the labels the instruction may jump to.
func (in *instruction) targets() []label {
	switch {
	case in.isJA():
		return []label{in.jt}
	case in.isCond():
		return []label{in.jt, in.jf}
	}
	return nil
}

// size is the number of instructions the instruction becomes.
func (in *instruction) size() int {
	n := 1
	if in.farT {
		n++
	}
	if in.farF {
		n++
	}
	return n
}

// assembler collects a program. Only forward jumps are possible in classic
// BPF, and the code generator only ever jumps to labels bound later.
type assembler struct {
	insns  []instruction
	labels []int // label -> index in insns where it is bound, -1 if not yet
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// bind places l at the next instruction to be emitted.
func (a *assembler) bind(l label) {
	a.labels[l] = len(a.insns)
}

// loadWord emits A = seccomp_data[offset:offset+4].
func (a *assembler) loadWord(offset uint32) {
	a.insns = append(a.insns, instruction{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: offset})
}

// and emits A &= k.
func (a *assembler) and(k uint32) {
	a.insns = append(a.insns, instruction{code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k})
}

// ret emits a return of k.
func (a *assembler) ret(k uint32) {
	a.insns = append(a.insns, instruction{code: unix.BPF_RET | unix.BPF_K, k: k})
}

// jump emits a conditional jump (op is unix.BPF_JEQ, BPF_JGT, BPF_JGE or
// BPF_JSET) comparing A with k.
func (a *assembler) jump(op uint16, k uint32, jt, jf label) {
	a.insns = append(a.insns, instruction{code: unix.BPF_JMP | op | unix.BPF_K, k: k, jt: jt, jf: jf})
}

// jumpAlways emits an unconditional jump.
func (a *assembler) jumpAlways(target label) {
	a.insns = append(a.insns, instruction{code: unix.BPF_JMP | unix.BPF_JA, jt: target, jf: next})
}

// assemble resolves the labels and returns the program.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	for i, in := range a.insns {
		for _, l := range in.targets() {
			if l == next {
				continue
			}
			if a.labels[l] < 0 {
				return nil, fmt.Errorf("seccompbpf: instruction %d jumps to an unbound label", i)
			}
			if a.labels[l] <= i || a.labels[l] >= len(a.insns) {
				return nil, fmt.Errorf("seccompbpf: instruction %d jumps backwards or past the end", i)
			}
		}
	}

	// Lay the program out, widening jumps until every short one reaches
	// its target. Jumps only ever widen, so this ends.
	pos := make([]int, len(a.insns)+1) // pos[len] is the end
	for {
		at := 0
		for i := range a.insns {
			pos[i] = at
			at += a.insns[i].size()
		}
		pos[len(a.insns)] = at
		widened := false
		for i := range a.insns {
			in := &a.insns[i]
			if !in.isCond() {
				continue
			}
			if !in.farT && a.target(pos, i, in.jt)-(pos[i]+1) > 255 {
				in.farT, widened = true, true
			}
			if !in.farF && a.target(pos, i, in.jf)-(pos[i]+1) > 255 {
				in.farF, widened = true, true
			}
		}
		if !widened {
			break
		}
	}

	prog := make([]unix.SockFilter, 0, pos[len(a.insns)])
	for i, in := range a.insns {
		switch {
		case in.isJA():
			prog = append(prog, unix.SockFilter{Code: in.code, K: uint32(a.target(pos, i, in.jt) - (pos[i] + 1))})
		case in.isCond():
			// The BPF_JA slots follow the jump: first the one for jt.
			slot := pos[i] + 1
			jt, jf := a.target(pos, i, in.jt), a.target(pos, i, in.jf)
			var tail []unix.SockFilter
			if in.farT {
				tail = append(tail, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(jt - (slot + 1))})
				jt, slot = slot, slot+1
			}
			if in.farF {
				tail = append(tail, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(jf - (slot + 1))})
				jf = slot
			}
			prog = append(prog, unix.SockFilter{Code: in.code, K: in.k, Jt: uint8(jt - (pos[i] + 1)), Jf: uint8(jf - (pos[i] + 1))})
			prog = append(prog, tail...)
		default:
			prog = append(prog, unix.SockFilter{Code: in.code, K: in.k})
		}
	}
	return prog, nil
}

// target is the final position of the instruction that label l of
// instruction i designates.
func (a *assembler) target(pos []int, i int, l label) int {
	if l == next {
		return pos[i+1]
	}
	return pos[a.labels[l]]
}
