package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The few bpf(2) commands the socket redirect needs, spoken directly:
// cilium/ebpf would do it, but it brings 36 packages (debug/elf, go/parser,
// BTF...) into the container start path, whose binary has a budget of
// 215 (cmd/berth-shim/budget_test.go; it links 199). The attribute
// layouts are the kernel's union bpf_attr (include/uapi/linux/bpf.h);
// every field used exists since Linux 5.8 (getpeername hooks).

const bpfObjNameLen = 16

func bpfCall(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	var errno unix.Errno
	for range 10 {
		var r uintptr
		r, _, errno = unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return r, nil
	}
	return 0, errno
}

type bpfMapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	flags      uint32
	innerFD    uint32
	numaNode   uint32
	name       [bpfObjNameLen]byte
}

type bpfElemAttr struct {
	mapFD uint32
	_     uint32
	key   uint64
	value uint64 // or next_key
	flags uint64
}

type bpfProgLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	name               [bpfObjNameLen]byte
	ifindex            uint32
	expectedAttachType uint32
}

type bpfAttachAttr struct {
	targetFD    uint32
	attachFD    uint32
	attachType  uint32
	attachFlags uint32
	replaceFD   uint32
}

type bpfQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type bpfGetIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

type bpfInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    uint64
}

// bpfProgInfo is the head of struct bpf_prog_info, up to its name.
type bpfProgInfo struct {
	typ             uint32
	id              uint32
	tag             [8]byte
	jitedProgLen    uint32
	xlatedProgLen   uint32
	jitedProgInsns  uint64
	xlatedProgInsns uint64
	loadTime        uint64
	createdByUID    uint32
	nrMapIDs        uint32
	mapIDs          uint64
	name            [bpfObjNameLen]byte
}

// bpfMapInfo is the head of struct bpf_map_info, up to its name.
type bpfMapInfo struct {
	typ        uint32
	id         uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	flags      uint32
	name       [bpfObjNameLen]byte
}

func objName(s string) (n [bpfObjNameLen]byte) {
	copy(n[:bpfObjNameLen-1], s)
	return n
}

func nameString(n [bpfObjNameLen]byte) string {
	if i := bytes.IndexByte(n[:], 0); i >= 0 {
		return string(n[:i])
	}
	return string(n[:])
}

func bpfMapCreate(typ, keySize, valueSize, maxEntries, flags uint32, name string) (int, error) {
	a := bpfMapCreateAttr{mapType: typ, keySize: keySize, valueSize: valueSize, maxEntries: maxEntries, flags: flags, name: objName(name)}
	fd, err := bpfCall(unix.BPF_MAP_CREATE, unsafe.Pointer(&a), unsafe.Sizeof(a))
	if err != nil {
		return -1, fmt.Errorf("bpf map %s: %w", name, err)
	}
	return int(fd), nil
}

func bpfMapUpdate(fd int, key, value []byte) error {
	a := bpfElemAttr{mapFD: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key[0]))), value: uint64(uintptr(unsafe.Pointer(&value[0])))}
	_, err := bpfCall(unix.BPF_MAP_UPDATE_ELEM, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}

// bpfMapLookup fills value; ENOENT when key is absent.
func bpfMapLookup(fd int, key, value []byte) error {
	a := bpfElemAttr{mapFD: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key[0]))), value: uint64(uintptr(unsafe.Pointer(&value[0])))}
	_, err := bpfCall(unix.BPF_MAP_LOOKUP_ELEM, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}

func bpfMapDelete(fd int, key []byte) error {
	a := bpfElemAttr{mapFD: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key[0])))}
	_, err := bpfCall(unix.BPF_MAP_DELETE_ELEM, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(key)
	return err
}

// bpfMapKeys lists a map's keys. A key deleted meanwhile makes
// GET_NEXT_KEY start over from the first; the caller's set semantics
// absorb the repeats.
func bpfMapKeys(fd int, keySize int) ([][]byte, error) {
	var keys [][]byte
	seen := map[string]bool{}
	var prev []byte
	for range 1 << 20 {
		next := make([]byte, keySize)
		a := bpfElemAttr{mapFD: uint32(fd), value: uint64(uintptr(unsafe.Pointer(&next[0])))}
		if prev != nil {
			a.key = uint64(uintptr(unsafe.Pointer(&prev[0])))
		}
		_, err := bpfCall(unix.BPF_MAP_GET_NEXT_KEY, unsafe.Pointer(&a), unsafe.Sizeof(a))
		runtime.KeepAlive(prev)
		runtime.KeepAlive(next)
		if errors.Is(err, unix.ENOENT) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		if seen[string(next)] {
			return keys, nil
		}
		seen[string(next)] = true
		keys = append(keys, next)
		prev = next
	}
	return keys, nil
}

func bpfProgLoad(progType, attachType uint32, name string, insns []byte) (int, error) {
	license := []byte("Apache-2.0\x00")
	a := bpfProgLoadAttr{
		progType: progType, insnCnt: uint32(len(insns) / 8),
		insns:   uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		name:    objName(name), expectedAttachType: attachType,
	}
	fd, err := bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	if err == nil {
		runtime.KeepAlive(insns)
		runtime.KeepAlive(license)
		return int(fd), nil
	}
	// Again with the verifier's log, to say why.
	log := make([]byte, 64<<10)
	a.logLevel, a.logSize, a.logBuf = 1, uint32(len(log)), uint64(uintptr(unsafe.Pointer(&log[0])))
	if fd, err2 := bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&a), unsafe.Sizeof(a)); err2 == nil {
		return int(fd), nil
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return -1, fmt.Errorf("loading bpf program %s: %w: %s", name, err, bytes.TrimSpace(log))
}

func bpfProgAttach(cgroupFD, progFD int, attachType, flags uint32) error {
	a := bpfAttachAttr{targetFD: uint32(cgroupFD), attachFD: uint32(progFD), attachType: attachType, attachFlags: flags}
	_, err := bpfCall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}

func bpfProgDetach(cgroupFD, progFD int, attachType uint32) error {
	a := bpfAttachAttr{targetFD: uint32(cgroupFD), attachFD: uint32(progFD), attachType: attachType}
	_, err := bpfCall(unix.BPF_PROG_DETACH, unsafe.Pointer(&a), unsafe.Sizeof(a))
	return err
}

// bpfProgQuery lists the IDs of the programs attached to the cgroup
// itself (not inherited) for attachType.
func bpfProgQuery(cgroupFD int, attachType uint32) ([]uint32, error) {
	for range 5 {
		a := bpfQueryAttr{targetFD: uint32(cgroupFD), attachType: attachType}
		if _, err := bpfCall(unix.BPF_PROG_QUERY, unsafe.Pointer(&a), unsafe.Sizeof(a)); err != nil {
			return nil, err
		}
		if a.progCnt == 0 {
			return nil, nil
		}
		ids := make([]uint32, a.progCnt)
		a.progIDs = uint64(uintptr(unsafe.Pointer(&ids[0])))
		_, err := bpfCall(unix.BPF_PROG_QUERY, unsafe.Pointer(&a), unsafe.Sizeof(a))
		runtime.KeepAlive(ids)
		if errors.Is(err, unix.ENOSPC) {
			continue // more were attached meanwhile
		}
		if err != nil {
			return nil, err
		}
		return ids[:a.progCnt], nil
	}
	return nil, fmt.Errorf("bpf prog query: the attached programs keep changing")
}

func bpfGetFDByID(cmd int, id uint32) (int, error) {
	a := bpfGetIDAttr{id: id}
	fd, err := bpfCall(cmd, unsafe.Pointer(&a), unsafe.Sizeof(a))
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// bpfProgInfoOf returns a program's name and the IDs of its maps.
func bpfProgInfoOf(fd int) (string, []uint32, error) {
	ids := make([]uint32, 8)
	info := bpfProgInfo{nrMapIDs: uint32(len(ids)), mapIDs: uint64(uintptr(unsafe.Pointer(&ids[0])))}
	a := bpfInfoAttr{fd: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: uint64(uintptr(unsafe.Pointer(&info)))}
	_, err := bpfCall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(ids)
	runtime.KeepAlive(&info)
	if err != nil {
		return "", nil, err
	}
	return nameString(info.name), ids[:min(int(info.nrMapIDs), len(ids))], nil
}

func bpfMapNameOf(fd int) (string, error) {
	var info bpfMapInfo
	a := bpfInfoAttr{fd: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: uint64(uintptr(unsafe.Pointer(&info)))}
	_, err := bpfCall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&a), unsafe.Sizeof(a))
	runtime.KeepAlive(&info)
	if err != nil {
		return "", err
	}
	return nameString(info.name), nil
}

// A small eBPF assembler: just what the redirect programs use, with
// labels for forward jumps.

type bpfReg uint8

const (
	r0 bpfReg = iota
	r1
	r2
	r3
	r4
	r5
	r6
	r7
	r8
	r9
	r10 // frame pointer, read only
)

const (
	bpfSizeW  = 0x00
	bpfSizeH  = 0x08
	bpfSizeB  = 0x10
	bpfSizeDW = 0x18
)

type bpfInsn struct {
	code   uint8
	dst    bpfReg
	src    bpfReg
	off    int16
	imm    int32
	label  string // a jump's target
	wide   bool   // ld_imm64: two slots, imm64 in imm + next imm
	imm64  uint64
	target string // this instruction's own label
}

type bpfAsm struct {
	insns []bpfInsn
	err   error
}

func (a *bpfAsm) emit(i bpfInsn) { a.insns = append(a.insns, i) }

// label names the next instruction.
func (a *bpfAsm) label(name string) { a.emit(bpfInsn{target: name, code: 0xff}) }

func (a *bpfAsm) movReg(dst, src bpfReg)     { a.emit(bpfInsn{code: 0xbf, dst: dst, src: src}) }
func (a *bpfAsm) movImm(dst bpfReg, v int32) { a.emit(bpfInsn{code: 0xb7, dst: dst, imm: v}) }
func (a *bpfAsm) addImm(dst bpfReg, v int32) { a.emit(bpfInsn{code: 0x07, dst: dst, imm: v}) }
func (a *bpfAsm) andImm(dst bpfReg, v int32) { a.emit(bpfInsn{code: 0x57, dst: dst, imm: v}) }
func (a *bpfAsm) orReg(dst, src bpfReg)      { a.emit(bpfInsn{code: 0x4f, dst: dst, src: src}) }
func (a *bpfAsm) call(helper int32)          { a.emit(bpfInsn{code: 0x85, imm: helper}) }
func (a *bpfAsm) exit()                      { a.emit(bpfInsn{code: 0x95}) }
func (a *bpfAsm) ja(label string)            { a.emit(bpfInsn{code: 0x05, label: label}) }
func (a *bpfAsm) ldImm64(dst bpfReg, v uint64) {
	a.emit(bpfInsn{code: 0x18, dst: dst, wide: true, imm64: v})
}

// ldMapFD loads a map's address (the kernel resolves the fd at load).
func (a *bpfAsm) ldMapFD(dst bpfReg, fd int) {
	a.emit(bpfInsn{code: 0x18, dst: dst, src: unix.BPF_PSEUDO_MAP_FD, wide: true, imm64: uint64(uint32(fd))})
}

// ldx: dst = *(size *)(src + off)
func (a *bpfAsm) ldx(size uint8, dst, src bpfReg, off int16) {
	a.emit(bpfInsn{code: 0x61 | size, dst: dst, src: src, off: off})
}

// stx: *(size *)(dst + off) = src
func (a *bpfAsm) stx(size uint8, dst bpfReg, off int16, src bpfReg) {
	a.emit(bpfInsn{code: 0x63 | size, dst: dst, src: src, off: off})
}

// st: *(size *)(dst + off) = imm
func (a *bpfAsm) st(size uint8, dst bpfReg, off int16, v int32) {
	a.emit(bpfInsn{code: 0x62 | size, dst: dst, off: off, imm: v})
}

func (a *bpfAsm) jeqImm(dst bpfReg, v int32, label string) {
	a.emit(bpfInsn{code: 0x15, dst: dst, imm: v, label: label})
}
func (a *bpfAsm) jneImm(dst bpfReg, v int32, label string) {
	a.emit(bpfInsn{code: 0x55, dst: dst, imm: v, label: label})
}
func (a *bpfAsm) jneReg(dst, src bpfReg, label string) {
	a.emit(bpfInsn{code: 0x5d, dst: dst, src: src, label: label})
}

// bytes encodes the program, resolving labels.
func (a *bpfAsm) bytes() ([]byte, error) {
	pos := map[string]int{}
	n := 0
	for _, i := range a.insns {
		if i.code == 0xff {
			pos[i.target] = n
			continue
		}
		n++
		if i.wide {
			n++
		}
	}
	var out []byte
	put := func(code uint8, dst, src bpfReg, off int16, imm int32) {
		var b [8]byte
		b[0] = code
		b[1] = uint8(dst)&0xf | uint8(src)<<4
		binary.LittleEndian.PutUint16(b[2:], uint16(off))
		binary.LittleEndian.PutUint32(b[4:], uint32(imm))
		out = append(out, b[:]...)
	}
	n = 0
	for _, i := range a.insns {
		if i.code == 0xff {
			continue
		}
		off := i.off
		if i.label != "" {
			p, ok := pos[i.label]
			if !ok {
				return nil, fmt.Errorf("bpf asm: no label %q", i.label)
			}
			off = int16(p - n - 1)
		}
		if i.wide {
			put(i.code, i.dst, i.src, 0, int32(uint32(i.imm64)))
			put(0, 0, 0, 0, int32(uint32(i.imm64>>32)))
			n += 2
			continue
		}
		put(i.code, i.dst, i.src, off, i.imm)
		n++
	}
	return out, nil
}
