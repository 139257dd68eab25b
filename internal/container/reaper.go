package container

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// reapAdopted reaps, until ctx ends, the children the monitor adopted as
// a child subreaper from another pid namespace: processes exec'd into the
// container (a health check, say) whose parent on the host, the exec
// helper, died first. Nothing else ever waits for them, and a zombie in
// the container's pid namespace keeps its init from finishing its exit:
// the monitor would wait for that init forever.
//
// It never races the monitor's own waits: those are for processes of
// the host's pid namespace (exec helpers, runtime commands) and for the
// container's init, which is pid 1 of its namespace; an adopted process
// is in a nested namespace and is never its pid 1.
func reapAdopted(ctx context.Context, g *reapGuard) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	// The kernel sends SIGCHLD on a child's exit and on the adoption
	// of a zombie; signals that merge are covered by scanning every
	// child on each, so an idle monitor stays asleep.
	for {
		reapAdoptedOnce(g)
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		}
	}
}

// reapAdoptedOnce reaps every exited adopted child there is now, but
// those the monitor waits for itself (exec sessions, see reapGuard).
func reapAdoptedOnce(g *reapGuard) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, pid := range ownChildren() {
		if g.own[pid] || !adoptedFromContainer(pid) {
			continue
		}
		var info unix.Siginfo
		// A child can only be reaped by its parent, us: pid cannot have
		// been reused since it was listed.
		unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
	}
}

// ownChildren lists the children of all of the monitor's threads.
func ownChildren() []int {
	tasks, _ := os.ReadDir("/proc/self/task")
	var pids []int
	for _, t := range tasks {
		raw, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// adoptedFromContainer tells whether pid lives in a pid namespace nested
// in ours without being its init. /proc/<pid>/status lists its pid in
// every namespace from ours inwards, for a zombie too.
func adoptedFromContainer(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			return len(f) > 1 && f[len(f)-1] != "1"
		}
	}
	return false
}

// reapGuard keeps reapAdopted off the adopted processes the monitor waits
// for itself: the processes of exec sessions, which the exec helper leaves
// to the monitor once they run. The monitor holds mu from the start of
// such a process until its pid is in own, so the process cannot be reaped
// (its exit code lost) in between.
type reapGuard struct {
	mu  sync.Mutex
	own map[int]bool
}

func newReapGuard() *reapGuard { return &reapGuard{own: map[int]bool{}} }
