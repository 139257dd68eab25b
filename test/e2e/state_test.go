package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stateOf is what berth and the host hold for one test root: container
// records by status, files and processes per container ID.
type stateOf struct {
	status   map[string]string // ID -> State.Status
	autoRm   map[string]bool
	monitors map[string]int // ID -> monitor processes
	mounts   map[string]bool
	dirs     map[string]bool // IDs with a directory under root or runroot
	cgroups  map[string]bool
}

func (e *env) state(t *testing.T) stateOf {
	t.Helper()
	s := stateOf{status: map[string]string{}, autoRm: map[string]bool{}, monitors: map[string]int{},
		mounts: map[string]bool{}, dirs: map[string]bool{}, cgroups: map[string]bool{}}
	for _, line := range strings.Split(strings.TrimSpace(e.must("ps", "-a", "--no-trunc", "--format",
		"{{.ID}} {{.State}}")), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			s.status[f[0]] = f[1]
		}
	}
	for id := range s.status {
		if r := e.run("inspect", "-f", "{{.HostConfig.AutoRemove}}", id); r.code == 0 {
			s.autoRm[id] = strings.TrimSpace(r.stdout) == "true"
		}
	}
	s.monitors = e.monitors()
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], filepath.Join(e.runroot, "containers")+"/") {
			s.mounts[strings.Split(strings.TrimPrefix(f[4], filepath.Join(e.runroot, "containers")+"/"), "/")[0]] = true
		}
	}
	for _, dir := range []string{filepath.Join(e.root, "containers"), filepath.Join(e.runroot, "containers")} {
		ents, _ := os.ReadDir(dir)
		for _, d := range ents {
			s.dirs[d.Name()] = true
		}
	}
	for id := range s.dirs {
		if cg, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id); len(cg) > 0 {
			s.cgroups[id] = true
		}
	}
	return s
}

// monitors counts the monitor processes of this test's root by container
// ID, from /proc (no berth command runs).
func (e *env) monitors() map[string]int {
	n := map[string]int{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 2 && args[1] == "_monitor" && bytes.Contains(raw, []byte(e.runroot+"\x00")) {
			n[args[len(args)-1]]++
		}
	}
	return n
}

// live tells the states whose container has its process: a paused one
// keeps its monitor, mount and cgroup as a running one does.
func live(status string) bool { return status == "running" || status == "paused" }

// check reports every container file, mount, monitor or cgroup that no
// container explains: a running (or paused) container has one monitor, its
// mount and cgroup; any other container has none of them and is not a
// --rm one.
func (s stateOf) check() []string {
	var bad []string
	for id := range s.dirs {
		if _, ok := s.status[id]; !ok {
			bad = append(bad, "directory without a container: "+id)
		}
	}
	for id, n := range s.monitors {
		if !live(s.status[id]) {
			bad = append(bad, fmt.Sprintf("%d monitors of a %q container %s", n, s.status[id], id))
		}
	}
	for id, st := range s.status {
		switch {
		case live(st):
			if s.monitors[id] != 1 {
				bad = append(bad, fmt.Sprintf("%s container %s has %d monitors", st, id, s.monitors[id]))
			}
		case s.autoRm[id]:
			bad = append(bad, fmt.Sprintf("--rm container %s left %s", id, st))
		case s.mounts[id]:
			bad = append(bad, fmt.Sprintf("%s container %s has its rootfs mounted", st, id))
		case s.cgroups[id]:
			bad = append(bad, fmt.Sprintf("%s container %s has a cgroup", st, id))
		}
	}
	return bad
}

// TestReadsNeverWrite: ps and inspect show a container whose monitor died
// as exited without writing anything; the next transition records it.
func TestReadsNeverWrite(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "lost", "busybox", "sleep", "1000")
	mon := monitorPid(t, e, "lost")
	syscall.Kill(mon, syscall.SIGKILL)
	db := filepath.Join(e.root, "metadata.db")
	// Gone means dead, not only without its command line: a process in
	// the middle of exiting has dropped that already.
	eventually(t, 10*time.Second, "the monitor gone", func() bool {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", mon))
		if err != nil {
			return true
		}
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
	})
	before := fileHash(t, db)
	if st := e.inspect("lost", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}"); st != "exited false 137" {
		t.Errorf("inspect of a container whose monitor died: %s", st)
	}
	e.must("ps", "-a")
	e.must("container", "ls", "-a", "--filter", "status=exited")
	if after := fileHash(t, db); after != before {
		t.Fatal("ps/inspect wrote to the metadata store")
	}
	// A transition reconciles: the container is recorded as exited and
	// can be started again.
	e.must("start", "lost")
	if st := e.inspect("lost", "{{.State.Status}}"); st != "running" {
		t.Fatalf("after start: %s", st)
	}
	e.must("rm", "-f", "lost")
	assertNoLeftovers(t, e)
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// TestConcurrentStarts: of several starts of one container from different
// processes exactly one starts it; the others succeed as docker's start
// of a running container does. One monitor runs it.
func TestConcurrentStarts(t *testing.T) {
	e := newEnv(t)
	for round := range 4 {
		name := fmt.Sprintf("twice%d", round)
		id := strings.TrimSpace(e.must("create", "--name", name, "busybox", "sleep", "1000"))
		var wg sync.WaitGroup
		results := make([]result, 3)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.run("start", name)
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 || strings.TrimSpace(r.stdout) != name {
				t.Errorf("round %d: start %d: %s", round, i, r)
			}
		}
		s := e.state(t)
		if s.status[id] != "running" || s.monitors[id] != 1 {
			t.Fatalf("round %d: %s with %d monitors", round, s.status[id], s.monitors[id])
		}
		if n := e.inspect(name, "{{.RestartCount}}"); n != "0" {
			t.Errorf("round %d: RestartCount %s", round, n)
		}
		e.must("rm", "-f", name)
	}
	assertNoLeftovers(t, e)
}

// TestConcurrentRemoveAndStart: rm -f racing start never leaves a running
// container without a record.
func TestConcurrentRemoveAndStart(t *testing.T) {
	e := newEnv(t)
	for round := range 6 {
		name := fmt.Sprintf("race%d", round)
		e.must("create", "--name", name, "busybox", "sleep", "1000")
		var wg sync.WaitGroup
		var start, rm result
		wg.Add(2)
		go func() { defer wg.Done(); start = e.run("start", name) }()
		go func() {
			defer wg.Done()
			if round%2 == 1 {
				time.Sleep(time.Duration(round) * 3 * time.Millisecond) // vary the interleaving
			}
			rm = e.run("rm", "-f", name)
		}()
		wg.Wait()
		if rm.code != 0 {
			t.Errorf("round %d: rm -f: %s", round, rm)
		}
		if start.code != 0 && !strings.Contains(start.stderr, "No such container") &&
			!strings.Contains(start.stderr, "marked for removal") {
			t.Errorf("round %d: start: %s", round, start)
		}
		// A monitor that removed its container exits just after it says so.
		var s stateOf
		eventually(t, 10*time.Second, "nothing left", func() bool {
			s = e.state(t)
			return len(s.status)+len(s.monitors)+len(s.mounts)+len(s.dirs) == 0
		})
	}
	assertNoLeftovers(t, e)
}

// TestCrashedRunsAreReconciled kills -9 the CLI at varied moments of
// `run -d`, `run --rm -d` and an attached `run --rm`; one later mutating
// command leaves no half-made container, directory, mount, monitor or
// cgroup, and prune removes what is left but running containers.
func TestCrashedRunsAreReconciled(t *testing.T) {
	e := newEnv(t)
	modes := [][]string{
		{"run", "-d", "busybox", "sleep", "1000"},
		{"run", "--rm", "-d", "busybox", "sleep", "1000"},
		{"run", "--rm", "busybox", "sleep", "1000"},
	}
	for i := range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cli := e.command(ctx, modes[i%len(modes)]...)
		if err := cli.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		// The moment of the crash is what varies: i ms after the
		// command started, or (every other run) i/2 % 8 ms after its
		// container's directory appeared, which lands in create and start.
		if i%2 == 1 {
			dirs := filepath.Join(e.root, "containers")
			known := map[string]bool{}
			ents, _ := os.ReadDir(dirs)
			for _, d := range ents {
				known[d.Name()] = true
			}
		poll:
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				now, _ := os.ReadDir(dirs)
				for _, d := range now {
					if !known[d.Name()] {
						break poll
					}
				}
				time.Sleep(200 * time.Microsecond)
			}
			time.Sleep(time.Duration(i/2%8) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
		cli.Process.Kill()
		cli.Wait()
		cancel()
	}
	// Monitors that were handed their container before the crash go on
	// starting it: let them settle.
	eventually(t, 30*time.Second, "monitors settled", func() bool {
		s := e.state(t)
		for id := range s.monitors {
			if s.status[id] != "running" {
				return false
			}
		}
		return true
	})
	before := e.state(t)
	locks, _ := os.ReadDir(filepath.Join(e.runroot, "locks"))
	t.Logf("after the crashes: %d containers %v, %d abandoned transitions, %d mounted, problems:\n%s",
		len(before.status), countValues(before.status), len(locks), len(before.mounts), strings.Join(before.check(), "\n"))
	e.must("run", "--rm", "busybox", "true") // the next mutating command
	settled(t, e, "after the next command")
	e.must("container", "prune", "-f")
	s := settled(t, e, "after prune")
	for id, st := range s.status {
		if st != "running" {
			t.Errorf("prune left %s %s", st, id)
		}
	}
	if ids := strings.Fields(e.must("ps", "-aq")); len(ids) > 0 {
		e.must(append([]string{"rm", "-f"}, ids...)...)
	}
	eventually(t, 10*time.Second, "nothing left after rm -f of everything", func() bool {
		s := e.state(t)
		return len(s.dirs)+len(s.monitors)+len(s.mounts) == 0
	})
	if ents, _ := os.ReadDir(filepath.Join(e.runroot, "locks")); len(ents) > 0 {
		t.Errorf("lock files left: %v", ents)
	}
	assertNoLeftovers(t, e)
}

// settled waits until the state passes check (a monitor that has just
// removed its container exits only after its command returned) and
// reports what is still wrong at the deadline.
func settled(t *testing.T, e *env, when string) stateOf {
	t.Helper()
	var s stateOf
	var bad []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		s = e.state(t)
		if bad = s.check(); len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(bad) > 0 {
		t.Errorf("%s:\n%s", when, strings.Join(bad, "\n"))
	}
	return s
}

func countValues(m map[string]string) map[string]int {
	n := map[string]int{}
	for _, v := range m {
		n[v]++
	}
	return n
}

// TestKillDuringStop: a stop waiting out its grace period does not hold
// the container: kill goes through at once (as with docker), and the stop
// then returns.
func TestKillDuringStop(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("run", "-d", "--name", "stubborn", "busybox", "sh", "-c", "trap 'touch /got-term' TERM; touch /ready; while true; do sleep 1; done"))
	upper := filepath.Join(e.root, "containers", id, "upper")
	eventually(t, 10*time.Second, "the container's trap set", func() bool {
		_, err := os.Stat(filepath.Join(upper, "ready"))
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := e.command(ctx, "stop", "-t", "100", "stubborn")
	if err := stop.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop.Wait() }()
	eventually(t, 10*time.Second, "the container got the stop's SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(upper, "got-term"))
		return err == nil
	})
	// Far less than the stop's grace period: a kill that waited for the
	// stop would miss it.
	kctx, kcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer kcancel()
	if out, err := e.command(kctx, "kill", "stubborn").CombinedOutput(); err != nil {
		t.Fatalf("kill during stop: %v\n%s", err, out)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := e.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 137" {
		t.Fatalf("after kill: %s", st)
	}
}
