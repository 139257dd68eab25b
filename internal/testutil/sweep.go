package testutil

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A test suite that runs containers keeps all of its berth roots under one
// suite directory named PREFIX-PID-*, so that what a failed, timed-out or
// killed run leaves behind (monitors, containers, cgroups, mounts, files)
// can be found and removed: by the suite itself when it ends or is about to
// hit -timeout or gets a signal, and by the next run when the process died
// outright (kill -9).

// NewSuiteDir sweeps what dead runs of the suite left under the temporary
// directory, then makes this run's suite directory.
func NewSuiteDir(prefix string) (string, error) {
	SweepStale(prefix)
	return os.MkdirTemp("", fmt.Sprintf("%s-%d-", prefix, os.Getpid()))
}

var suiteName = regexp.MustCompile(`^(.*)-(\d+)-\d+$`)

// SweepStale sweeps the suite directories PREFIX-PID-* whose process is
// gone. A live process's directory is never touched: another run of the
// suite may be going on.
func SweepStale(prefix string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"-*"))
	for _, d := range dirs {
		m := suiteName.FindStringSubmatch(filepath.Base(d))
		if m == nil || m[1] != prefix {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		if pid <= 0 || unix.Kill(pid, 0) == nil || !isTestProcessGone(pid) {
			continue
		}
		fmt.Fprintf(os.Stderr, "sweeping %s, left by an earlier run (pid %d) that did not clean up\n", d, pid)
		SweepDir(d)
	}
}

// isTestProcessGone double-checks through /proc: kill(0) may fail with
// EPERM for a live process of another user.
func isTestProcessGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

// SweepDir removes everything berth made below dir, whether or not the
// berth commands that made it still work: the monitors of roots below it
// are killed (with their containers' processes, by cgroup), the cgroups of
// its containers removed, its roots' bridges and nftables tables deleted,
// its mounts detached deepest first, then the directory deleted.
func SweepDir(dir string) {
	dir = filepath.Clean(dir)
	KillBelow(dir)
	// The kernel side of its roots (bridges, nftables table), which no
	// berth command removes once its processes are gone.
	for pat := "*/metadata.db"; strings.Count(pat, "/") <= 6; pat = "*/" + pat {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			RemoveDataplane(RootTable(filepath.Dir(p)))
		}
	}
	UnmountBelow(dir)
	os.RemoveAll(dir)
}

// KillBelow kills what runs of the berth roots below dir, as a crash or a
// power cut would: every process of a binary below dir or naming a path
// below it (monitors; a private dockerd, its containerd and shims), then
// what is left in the cgroups of its containers, which are removed.
func KillBelow(dir string) {
	dir = filepath.Clean(dir)
	var ids []string
	// Roots sit a few levels down: dir/env-*/root, dir/TestX*/001/root...
	for pat := "*/containers/*"; strings.Count(pat, "/") <= 6; pat = "*/" + pat {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			if id := filepath.Base(p); len(id) == 64 {
				ids = append(ids, id)
			}
		}
	}
	// Monitors first, so that none restarts a container being killed.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if pid <= 1 || pid == os.Getpid() {
			continue
		}
		exe, _ := os.Readlink(filepath.Join(p, "exe"))
		raw, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if strings.HasPrefix(exe, dir+"/") || strings.Contains(string(raw), dir+"/") {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, id := range ids {
		killCgroup(id)
	}
}

// UnmountBelow detaches every mount below dir, deepest first.
func UnmountBelow(dir string) {
	dir = filepath.Clean(dir)
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), dir+"/") {
			mounts = append(mounts, unescapeMount(f[4]))
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// killCgroup kills what is left in a container's cgroups (berth puts them
// at /berth/<id> in every hierarchy, dockerd at /docker/<id>) and removes
// them.
func killCgroup(id string) {
	var cgs []string
	for _, pat := range []string{"/sys/fs/cgroup/*/berth/" + id, "/sys/fs/cgroup/berth/" + id,
		"/sys/fs/cgroup/*/docker/" + id, "/sys/fs/cgroup/docker/" + id} {
		m, _ := filepath.Glob(pat)
		cgs = append(cgs, m...)
	}
	for attempt := 0; attempt < 50; attempt++ {
		left := 0
		for _, cg := range cgs {
			raw, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
			for _, f := range strings.Fields(string(raw)) {
				if pid, _ := strconv.Atoi(f); pid > 1 {
					unix.Kill(pid, unix.SIGKILL)
					left++
				}
			}
			// A frozen (paused) container cannot die until thawed.
			os.WriteFile(filepath.Join(cg, "freezer.state"), []byte("THAWED"), 0)
			os.WriteFile(filepath.Join(cg, "cgroup.freeze"), []byte("0"), 0)
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, cg := range cgs {
		os.Remove(cg)
	}
}

// OnTimeoutOrSignal runs sweep if the test binary gets SIGINT, SIGTERM or
// SIGHUP (then exits 2), or shortly before the -test.timeout alarm would
// kill it without running any cleanup (then panics as that alarm would,
// with every goroutine's stack). Call it from TestMain after flag.Parse;
// the returned stop disarms it.
func OnTimeoutOrSignal(sweep func()) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var timer <-chan time.Time
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			// Leave the sweep some time, but not more than a tenth.
			margin := min(d/10, 30*time.Second)
			timer = time.After(d - margin)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "got %v: sweeping the test roots\n", s)
			sweep()
			sweep()
			os.Exit(2)
		case <-timer:
			fmt.Fprintln(os.Stderr, "about to hit -timeout: sweeping the test roots first")
			sweep()
			// The tests still run: once more for what they made meanwhile.
			sweep()
			debug.SetTraceback("all")
			panic("test timed out (swept the test roots)")
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
