// Command ptracefork is the attacker of TestExecChildMemoryIsPrivate:
// run in a container with CAP_SYS_PTRACE, it spins PTRACE_SEIZE on the
// next pids of its pid namespace, so as to stop every process exec'd
// into the container as early as it can. A process caught before its
// execve (its exe is not the container's busybox) whose exe names
// argv[1] gets a breakpoint written over the instruction it would run
// next: if its memory is shared with a process on the host, that
// process traps too. Its descriptors above stderr are listed, an epoll
// instance with the number of files it watches. Every catch is printed
// as one line:
//
//	CAUGHT pid=N exe=... pre-exec=true|false [fds=LINK,... poked=ADDR ...]
package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	// ptrace requests come from the thread that attached.
	runtime.LockOSThread()
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ptracefork EXE-SUBSTRING")
		os.Exit(2)
	}
	target := os.Args[1]
	fd, err := unix.Open("/proc/sys/kernel/ns_last_pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	self := os.Getpid()
	fmt.Println("READY")
	buf := make([]byte, 32)
	for {
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			continue
		}
		last, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n])))
		if err != nil {
			continue
		}
		// Every exec forks one process here (runc's init a few).
		for pid := last + 1; pid <= last+3; pid++ {
			if pid != self && unix.PtraceSeize(pid) == nil {
				fmt.Println(catch(pid, target))
			}
		}
	}
}

// catch stops the seized pid, looks at it, pokes it if it is a target
// caught before its execve, and lets it go.
func catch(pid int, target string) string {
	defer unix.PtraceDetach(pid)
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Sprintf("CAUGHT pid=%d interrupt: %v", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		return fmt.Sprintf("CAUGHT pid=%d gone: %v %v", pid, ws, err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	pre := !strings.HasSuffix(exe, "/busybox")
	line := fmt.Sprintf("CAUGHT pid=%d exe=%q pre-exec=%t", pid, exe, pre)
	if !pre || !strings.Contains(exe, target) {
		return line
	}
	line += " fds=" + strings.Join(descriptors(pid), ",")
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(pid, &regs); err != nil {
		return line + fmt.Sprintf(" getregs: %v", err)
	}
	pc := uintptr(regs.PC())
	if _, err := unix.PtracePokeText(pid, pc, trap); err != nil {
		return line + fmt.Sprintf(" poke %#x: %v", pc, err)
	}
	back := make([]byte, len(trap))
	unix.PtracePeekText(pid, pc, back)
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	first, _, _ := strings.Cut(string(maps), "\n")
	return line + fmt.Sprintf(" poked=%#x written=%t maps=%q", pc, bytes.Equal(back, trap), first)
}

// descriptors lists what pid's fds lead to; an epoll instance is
// followed by "+N", the number of files it watches.
func descriptors(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		l, _ := os.Readlink(dir + "/" + e.Name())
		if l == "anon_inode:[eventpoll]" {
			info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			l += "+" + strconv.Itoa(strings.Count(string(info), "tfd:"))
		}
		out = append(out, e.Name()+":"+l)
	}
	return out
}
