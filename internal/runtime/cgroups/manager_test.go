package cgroups

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// helperEnv makes the test binary act as the device-probing child of
// TestDeviceFilterV2 instead of running tests.
const helperEnv = "BERTH_CGROUPS_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "devices" {
		probeDevices(os.Args[1:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probeDevices tries each "op path" and prints "op path ok" or the errno:
// ops are open-r, open-w, open-rw, and mknod-c/mknod-b with "path:major:minor".
func probeDevices(probes []string) {
	for _, p := range probes {
		op, arg, _ := strings.Cut(p, " ")
		var err error
		switch op {
		case "open-r", "open-w", "open-rw":
			flags := map[string]int{"open-r": unix.O_RDONLY, "open-w": unix.O_WRONLY, "open-rw": unix.O_RDWR}[op]
			var fd int
			if fd, err = unix.Open(arg, flags|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		case "mknod-c", "mknod-b":
			parts := strings.Split(arg, ":")
			major, _ := strconv.Atoi(parts[1])
			minor, _ := strconv.Atoi(parts[2])
			mode := uint32(unix.S_IFCHR)
			if op == "mknod-b" {
				mode = unix.S_IFBLK
			}
			err = unix.Mknod(parts[0], mode|0o600, int(unix.Mkdev(uint32(major), uint32(minor))))
		default:
			err = fmt.Errorf("unknown probe %q", op)
		}
		result := "ok"
		var errno unix.Errno
		if errors.As(err, &errno) {
			result = unix.ErrnoName(errno)
		} else if err != nil {
			result = err.Error()
		}
		fmt.Printf("%s\t%s\n", p, result)
	}
}

// hostLayout reads this machine's cgroup layout.
func hostLayout(t *testing.T) layout {
	t.Helper()
	f, err := os.Open(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	l, err := detectLayout(mounts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testCgroup reserves a unique top-level cgroup name for a test and removes
// it, with everything below it, from every hierarchy when the test ends,
// after thawing it and killing the processes the test started.
type testCgroup struct {
	root     string // "/berth-test-<random>"
	children []*exec.Cmd
}

func newTestCgroup(t *testing.T, l layout) *testCgroup {
	t.Helper()
	testutil.RequiresRoot(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tc := &testCgroup{root: "/berth-test-" + hex.EncodeToString(b[:])}
	var mounts []string
	for _, h := range l.v1 {
		mounts = append(mounts, h.mountpoint)
	}
	if l.v2 != "" {
		mounts = append(mounts, l.v2)
	}
	t.Cleanup(func() {
		for _, mnt := range mounts {
			dir := filepath.Join(mnt, tc.root)
			// A frozen process cannot die: thaw the tree first.
			_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					switch d.Name() {
					case "freezer.state":
						_ = writeFile(p, v1Thawed)
					case "cgroup.freeze":
						_ = writeFile(p, "0")
					}
				}
				return nil
			})
		}
		for _, cmd := range tc.children {
			if cmd.ProcessState != nil {
				continue // reaped by the test: its pid may belong to another process now
			}
			_ = unix.Kill(cmd.Process.Pid, unix.SIGKILL)
			_ = cmd.Wait()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, mnt := range mounts {
			if err := removeTree(ctx, filepath.Join(mnt, tc.root)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return tc
}

// start runs a process the cleanup kills; it is killed by its pid.
func (tc *testCgroup) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tc.children = append(tc.children, cmd)
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// testResources are the limits the lifecycle test sets.
func testResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](128 * mib)},
		CPU:     &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000)},
		Pids:    &specs.LinuxPids{Limit: ptr[int64](20)},
		Devices: dockerDeviceRules(),
	}
}

// checkFiles compares control files (relative to the directories in paths,
// keyed by controller) with the values wanted.
func checkFiles(t *testing.T, paths map[string]string, want map[string]string) {
	t.Helper()
	for file, value := range want {
		controller := controllerOf(file)
		dir, ok := paths[controller]
		if !ok {
			dir = paths[""]
		}
		if got := readTrim(t, filepath.Join(dir, file)); got != value {
			t.Errorf("%s = %q, want %q", file, got, value)
		}
	}
}

func TestLifecycle(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	path := tc.root + "/ctr"
	m, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host cgroup mode: %v", m.Mode())
	if m.Exists() {
		t.Fatal("Exists() before Create")
	}
	if err := m.Create(testResources()); err != nil {
		t.Fatal(err)
	}
	if !m.Exists() {
		t.Fatal("Exists() = false after Create")
	}
	paths := m.Paths()
	for c, dir := range paths {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("Paths()[%q]: %v", c, err)
		}
	}

	if m.Mode() == Unified {
		want := map[string]string{
			"memory.max": "67108864", "cpu.max": "50000 100000", "cpu.weight": "20", "pids.max": "20",
		}
		if firstExisting(paths[""], "memory.swap.max") != "" {
			want["memory.swap.max"] = "67108864"
		}
		checkFiles(t, paths, want)
		checkDeviceFilterCount(t, paths[""], 1)
	} else {
		want := map[string]string{
			"memory.limit_in_bytes": "67108864", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000",
			"cpu.shares": "512", "pids.max": "20",
		}
		if firstExisting(paths["memory"], "memory.memsw.limit_in_bytes") != "" {
			want["memory.memsw.limit_in_bytes"] = "134217728"
		}
		checkFiles(t, paths, want)
		list := strings.Split(readTrim(t, filepath.Join(paths["devices"], "devices.list")), "\n")
		for _, rule := range []string{"c *:* m", "b *:* m", "c 1:3 rwm", "c 136:* rwm", "c 10:200 rwm"} {
			if !slices.Contains(list, rule) {
				t.Errorf("devices.list %q lacks %q", list, rule)
			}
		}
		if slices.Contains(list, "a *:* rwm") {
			t.Errorf("devices.list %q still allows everything", list)
		}
		// The cpuset was filled from the parents so that processes can join.
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			if got, root := readTrim(t, filepath.Join(paths["cpuset"], file)), readTrim(t, filepath.Join(filepath.Dir(filepath.Dir(paths["cpuset"])), file)); got != root {
				t.Errorf("%s = %q, want the root's %q", file, got, root)
			}
		}
	}

	// Creating again with the same limits is fine.
	if err := m.Create(testResources()); err != nil {
		t.Fatalf("second Create: %v", err)
	}

	sleep := exec.Command("sleep", "300")
	tc.start(t, sleep)
	pid := sleep.Process.Pid
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, pid) {
		t.Fatalf("Pids() = %v, want it to contain %d", pids, pid)
	}
	// The process is in the cgroup in every hierarchy.
	procCgroup := readTrim(t, fmt.Sprintf("/proc/%d/cgroup", pid))
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] != path {
			t.Errorf("/proc/%d/cgroup: %q, want the path %s", pid, line, path)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Fatalf("Frozen() = %v, %v after Freeze", frozen, err)
	}
	if m.Mode() != Unified {
		if s := readTrim(t, filepath.Join(paths["freezer"], "freezer.state")); s != "FROZEN" {
			t.Errorf("freezer.state = %q after Freeze", s)
		}
	}
	if err := m.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Fatalf("Frozen() = %v, %v after Thaw", frozen, err)
	}

	// The cgroup cannot go while the process lives.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	err = m.Destroy(short)
	cancelShort()
	if !errdefs.IsConflict(err) {
		t.Fatalf("Destroy with a live process: err = %v, want a conflict", err)
	}

	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = sleep.Wait()
	if err := m.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	for c, dir := range paths {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q cgroup %s still there after Destroy (%v)", c, dir, err)
		}
	}
	if m.Exists() {
		t.Error("Exists() after Destroy")
	}
	if err := m.Destroy(ctx); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func TestCreateChangesMemoryBothWays(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	m, err := newManager(tc.root, l)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct{ limit, swap int64 }{{64 * mib, 128 * mib}, {256 * mib, 512 * mib}, {32 * mib, 64 * mib}, {-1, -1}}
	for _, s := range steps {
		res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(s.limit), Swap: ptr(s.swap)}}
		if err := m.Create(res); err != nil {
			t.Fatalf("Create(memory %d, swap %d): %v", s.limit, s.swap, err)
		}
		paths := m.Paths()
		switch {
		case s.limit == -1:
			// Each mode has its own way of reading "unlimited".
		case m.Mode() == Unified:
			checkFiles(t, paths, map[string]string{"memory.max": strconv.FormatInt(s.limit, 10)})
		default:
			want := map[string]string{"memory.limit_in_bytes": strconv.FormatInt(s.limit, 10)}
			if firstExisting(paths["memory"], "memory.memsw.limit_in_bytes") != "" {
				want["memory.memsw.limit_in_bytes"] = strconv.FormatInt(s.swap, 10)
			}
			checkFiles(t, paths, want)
		}
	}

	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{
		Reservation: ptr[int64](16 * mib), Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true),
	}}
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	if m.Mode() == Unified {
		checkFiles(t, m.Paths(), map[string]string{"memory.low": "16777216"})
		return
	}
	checkFiles(t, m.Paths(), map[string]string{"memory.soft_limit_in_bytes": "16777216", "memory.swappiness": "10"})
	if oom := readTrim(t, filepath.Join(m.Paths()["memory"], "memory.oom_control")); !strings.Contains(oom, "oom_kill_disable 1") {
		t.Errorf("memory.oom_control = %q, want the OOM killer disabled", oom)
	}
}

func TestCreateFailureRemovesWhatItMade(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	badCpuset := &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "999"}}

	t.Run("all levels new", func(t *testing.T) {
		m, err := newManager(tc.root+"/a/ctr", l)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Create(badCpuset)
		checkNamesFile(t, err, "cpuset.cpus")
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("err = %v, want an invalid argument", err)
		}
		for _, dir := range m.dirs() {
			top := filepath.Join(strings.TrimSuffix(dir, m.path), tc.root)
			if _, err := os.Stat(top); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind (%v)", top, err)
			}
		}
	})

	t.Run("existing parent stays", func(t *testing.T) {
		parent, err := newManager(tc.root+"/b", l)
		if err != nil {
			t.Fatal(err)
		}
		if err := parent.Create(nil); err != nil {
			t.Fatal(err)
		}
		m, err := newManager(tc.root+"/b/ctr", l)
		if err != nil {
			t.Fatal(err)
		}
		checkNamesFile(t, m.Create(badCpuset), "cpuset.cpus")
		if m.Exists() {
			t.Error("the failed cgroup is still there")
		}
		for _, dir := range parent.dirs() {
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("the parent was removed: %v", err)
			}
		}
	})
}

// checkNamesFile checks that err is a rejected write naming file.
func checkNamesFile(t *testing.T, err error, file string) {
	t.Helper()
	var fe *FileError
	switch {
	case err == nil:
		t.Fatal("Create succeeded, want an error")
	case !errors.As(err, &fe) || filepath.Base(fe.Path) != file:
		t.Fatalf("err = %v, want a FileError for %s", err, file)
	case !strings.Contains(err.Error(), file):
		t.Errorf("error %q does not name %s", err, file)
	}
	t.Logf("error as reported: %v", err)
}

// TestCreateBlockIOWeight sets the weight through whichever file the
// host's I/O scheduler offers, or fails naming the file when there is none.
func TestCreateBlockIOWeight(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	m, err := newManager(tc.root, l)
	if err != nil {
		t.Fatal(err)
	}
	// Make the cgroup first: the weight files exist only below the root.
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	dir, files, value := m.Paths()["blkio"], []string{"blkio.weight", "blkio.bfq.weight"}, "500"
	if m.Mode() == Unified {
		dir, files, value = m.Paths()[""], []string{"io.weight", "io.bfq.weight"}, "default 4950"
	}
	file := firstExisting(dir, files...)
	err = m.Create(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}})
	switch {
	case file == "":
		checkNamesFile(t, err, files[0])
	case err != nil:
		t.Fatal(err)
	case file == "io.bfq.weight":
		value = "default 500"
		fallthrough
	default:
		got := readTrim(t, filepath.Join(dir, file))
		if !strings.Contains(got, strings.TrimPrefix(value, "default ")) {
			t.Errorf("%s = %q, want %q", file, got, value)
		}
		t.Logf("%s = %q", file, got)
	}
}

func TestDestroyMissing(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	m, err := newManager(tc.root+"/never-created", l)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exists() {
		t.Fatal("Exists() on a cgroup never created")
	}
	if err := m.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pids(); !errdefs.IsNotFound(err) {
		t.Errorf("Pids() of a missing cgroup: err = %v, want not found", err)
	}
}

// checkDeviceFilterCount checks how many device programs sit on dir.
func checkDeviceFilterCount(t *testing.T, dir string, want int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ids, err := attachedDeviceFilters(fd)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != want {
		t.Errorf("%d device programs attached to %s, want %d", len(ids), dir, want)
	}
}

// TestDeviceFilterV2 proves the eBPF device program in the kernel: a
// process in a v2 cgroup carrying it can use exactly the devices the rules
// allow. On a hybrid host the v2 hierarchy has no controllers but runs
// device programs all the same.
func TestDeviceFilterV2(t *testing.T) {
	l := hostLayout(t)
	if l.v2 == "" {
		testutil.Skip(t, "no cgroup2 hierarchy mounted")
	}
	tc := newTestCgroup(t, l)
	dir := filepath.Join(l.v2, tc.root)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dirfd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	nodes := t.TempDir()

	run := func(t *testing.T, probes ...string) map[string]string {
		t.Helper()
		cmd := exec.Command(os.Args[0], probes...)
		cmd.Env = append(os.Environ(), helperEnv+"=devices")
		// Born in the cgroup, so that nothing runs unfiltered.
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: dirfd}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("probe process: %v", err)
		}
		results := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			probe, result, _ := strings.Cut(sc.Text(), "\t")
			results[probe] = result
		}
		return results
	}
	check := func(t *testing.T, want map[string]string) {
		t.Helper()
		var probes []string
		for p := range want {
			probes = append(probes, p)
		}
		slices.Sort(probes)
		got := run(t, probes...)
		for _, p := range probes {
			if got[p] != want[p] {
				t.Errorf("%s: %q, want %q", p, got[p], want[p])
			}
		}
	}

	rules := mustParseRules(t, []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](5), Access: "rw"},
		{Allow: false, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](5), Access: "w"},
	})
	if err := attachDeviceFilter(dirfd, rules); err != nil {
		t.Fatal(err)
	}
	checkDeviceFilterCount(t, dir, 1)
	t.Run("first rules", func(t *testing.T) {
		check(t, map[string]string{
			"open-rw /dev/null":                       "ok",
			"open-r /dev/full":                        "EPERM",
			"open-r /dev/zero":                        "ok",
			"open-w /dev/zero":                        "EPERM",
			"mknod-c " + nodes + "/full:1:7":          "ok",
			"mknod-b " + nodes + "/loop:7:0":          "EPERM",
			"open-r " + nodes + "/full":               "EPERM", // the node exists now; using it is still denied
			"open-rw " + filepath.Join(nodes, "none"): "ENOENT",
		})
	})

	// Attaching again replaces the program rather than adding one.
	rules = mustParseRules(t, []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](7), Access: "rw"},
	})
	if err := attachDeviceFilter(dirfd, rules); err != nil {
		t.Fatal(err)
	}
	checkDeviceFilterCount(t, dir, 1)
	t.Run("replaced rules", func(t *testing.T) {
		check(t, map[string]string{
			"open-rw /dev/full": "ok",
			"open-r /dev/null":  "EPERM",
		})
	})
}

// TestUnifiedModeOnV2Mount drives the unified code paths (controller
// enabling, device program, cgroup.freeze) on a hybrid host's cgroup2
// mount, which has no controllers but works otherwise. On a unified host
// TestLifecycle covers them.
func TestUnifiedModeOnV2Mount(t *testing.T) {
	host := hostLayout(t)
	if host.mode != Hybrid {
		t.Skipf("host mode %v: TestLifecycle covers unified hosts", host.mode)
	}
	l := layout{mode: Unified, v2: host.v2}
	tc := newTestCgroup(t, l)
	m, err := newManager(tc.root+"/ctr", l)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(&specs.LinuxResources{Devices: dockerDeviceRules()}); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	checkDeviceFilterCount(t, dir, 1)
	if err := m.Create(&specs.LinuxResources{Devices: dockerDeviceRules()}); err != nil {
		t.Fatal(err)
	}
	checkDeviceFilterCount(t, dir, 1)

	sleep := exec.Command("sleep", "300")
	tc.start(t, sleep)
	if err := m.Apply(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, err := m.Pids(); err != nil || !slices.Contains(pids, sleep.Process.Pid) {
		t.Fatalf("Pids() = %v, %v; want %d in it", pids, err, sleep.Process.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Fatalf("Frozen() = %v, %v after Freeze", frozen, err)
	}
	status := readTrim(t, fmt.Sprintf("/proc/%d/status", sleep.Process.Pid))
	t.Logf("frozen process: %s", strings.Split(status, "\n")[2])
	if err := m.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Fatalf("Frozen() = %v, %v after Thaw", frozen, err)
	}

	// A limit whose controller the parent does not offer fails, naming
	// the file, and takes the new cgroup away again.
	other, err := newManager(tc.root+"/limited", l)
	if err != nil {
		t.Fatal(err)
	}
	err = other.Create(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib)}})
	checkNamesFile(t, err, "memory.max")
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("err = %v, want not implemented", err)
	}
	if other.Exists() {
		t.Error("the failed cgroup is still there")
	}

	if err := unix.Kill(sleep.Process.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = sleep.Wait()
	if err := m.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Exists() {
		t.Error("Exists() after Destroy")
	}
}

// TestDestroyRemovesNestedCgroups: cgroups the container made inside its
// own (a nested engine, systemd) go with it, children first.
func TestDestroyRemovesNestedCgroups(t *testing.T) {
	l := hostLayout(t)
	tc := newTestCgroup(t, l)
	m, err := newManager(tc.root, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range m.dirs() {
		for _, sub := range []string{"a/b", "c"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := m.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range m.dirs() {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Destroy (%v)", dir, err)
		}
	}
}
