package container

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseIdleMemory hands back what a monitor no longer needs once its
// container runs: the heap left over from start-up, and the pages of the
// berth binary it touched while starting (clean, file-backed pages that the
// page cache keeps and that all monitors share). An idle monitor then holds
// only its working set; pages it needs again fault back in from the page
// cache when the container exits or a client attaches.
func releaseIdleMemory() {
	enableMonitorGC()
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// MADV_PAGEOUT (Linux 5.4+); older kernels refuse it harmlessly.
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
	}
}

// enableMonitorGC gives a monitor whose container has started its
// steady-state collector: a small heap target, no memory limit (see
// monitorEnv for how it starts).
func enableMonitorGC() {
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(math.MaxInt64)
}
