package cgroups

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bpf(2) attributes used here, laid out as union bpf_attr's members in
// linux/bpf.h. Passing a shorter attribute than the kernel's own is part of
// the ABI: the kernel treats the missing tail as zero.

// progLoadAttr is the BPF_PROG_LOAD member.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              userPtr
	license            userPtr
	logLevel           uint32
	logSize            uint32
	logBuf             userPtr
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// progAttachAttr is the BPF_PROG_ATTACH and BPF_PROG_DETACH member.
type progAttachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
}

// progQueryAttr is the BPF_PROG_QUERY member.
type progQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     userPtr
	progCnt     uint32
	_           uint32
}

// getFDByIDAttr is the BPF_PROG_GET_FD_BY_ID member.
type getFDByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// verifierLogSize bounds the verifier's report on a rejected program; the
// device programs are short, and the log of a failure ends with its cause.
const verifierLogSize = 256 << 10

// loadDeviceFilter loads prog as a cgroup device program and returns its fd.
func loadDeviceFilter(prog []insn) (int, error) {
	code := encodeProgram(prog)
	// The license only matters to programs calling GPL-only helpers;
	// this one calls none.
	license := []byte("Apache-2.0\x00")
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    userPtr{p: unsafe.Pointer(&code[0])},
		license:  userPtr{p: unsafe.Pointer(&license[0])},
	}
	copy(attr.progName[:], "berth_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		return fd, nil
	}
	// Load again with the verifier's log to say why it refused; asking
	// for the log up front would slow every successful load.
	log := make([]byte, verifierLogSize)
	attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), userPtr{p: unsafe.Pointer(&log[0])}
	if fd, retryErr := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); retryErr == nil {
		return fd, nil // a transient failure (EAGAIN from the verifier)
	}
	msg := unix.ByteSliceToString(log)
	if msg == "" {
		return -1, fmt.Errorf("cgroups: load device filter program: %w", err)
	}
	return -1, fmt.Errorf("cgroups: load device filter program: %w: verifier: %s", err, msg)
}

// attachedDeviceFilters lists the ids of the device programs attached to
// the cgroup dirfd itself (not those inherited from its ancestors).
func attachedDeviceFilters(dirfd int) ([]uint32, error) {
	ids := make([]uint32, 16)
	for {
		attr := progQueryAttr{
			targetFD:   uint32(dirfd),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    userPtr{p: unsafe.Pointer(&ids[0])},
			progCnt:    uint32(len(ids)),
		}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		switch {
		case errors.Is(err, unix.ENOSPC): // the kernel set progCnt to what it has
			ids = make([]uint32, attr.progCnt)
			continue
		case err != nil:
			return nil, fmt.Errorf("cgroups: query device filter programs: %w", err)
		}
		return ids[:attr.progCnt], nil
	}
}

// attachDeviceFilter makes rules the device policy of the v2 cgroup open
// at dirfd, replacing the programs an earlier call attached. The new
// program is attached before the old ones go, so there is no moment
// without a filter; in between both must allow an access, which is never
// more permissive than either.
func attachDeviceFilter(dirfd int, rules []deviceRule) error {
	old, err := attachedDeviceFilters(dirfd)
	if err != nil {
		return classify(err)
	}
	progFD, err := loadDeviceFilter(deviceFilter(rules))
	if err != nil {
		return classify(err)
	}
	defer unix.Close(progFD)
	attach := progAttachAttr{
		targetFD:    uint32(dirfd),
		attachBPFFD: uint32(progFD),
		attachType:  unix.BPF_CGROUP_DEVICE,
		// Several programs may sit on one cgroup (systemd attaches its
		// own to the units it manages); every one of them must allow.
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return classify(fmt.Errorf("cgroups: attach device filter program: %w", err))
	}
	for _, id := range old {
		if err := detachDeviceFilter(dirfd, id); err != nil {
			return err
		}
	}
	return nil
}

// detachDeviceFilter detaches the program with the given id from dirfd; a
// program already gone is fine.
func detachDeviceFilter(dirfd int, id uint32) error {
	get := getFDByIDAttr{id: id}
	progFD, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("cgroups: open device filter program %d: %w", id, err))
	}
	defer unix.Close(progFD)
	detach := progAttachAttr{targetFD: uint32(dirfd), attachBPFFD: uint32(progFD), attachType: unix.BPF_CGROUP_DEVICE}
	_, err = bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return classify(fmt.Errorf("cgroups: detach device filter program %d: %w", id, err))
	}
	return nil
}

// setDeviceFilter opens the v2 cgroup dir and attaches the rules' program.
func setDeviceFilter(dir string, rules []deviceRule) error {
	dirfd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(&FileError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(dirfd)
	if err := attachDeviceFilter(dirfd, rules); err != nil {
		return fmt.Errorf("%w (cgroup %s)", err, dir)
	}
	return nil
}
