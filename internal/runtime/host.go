package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostInfo is what spec generation needs to know about the machine. It is a
// seam for tests, which describe other machines; liveHost asks the real one,
// and only for what a given container needs (this runs on every `run`).
type hostInfo interface {
	// rlimitHard is the calling process's hard limit of a resource named
	// as --ulimit names it ("nofile").
	rlimitHard(name string) (uint64, error)
	// nrOpen is the kernel's ceiling of RLIMIT_NOFILE (fs.nr_open).
	nrOpen() (uint64, error)
	// ownCapabilities are the bounding and effective capability sets of
	// the calling process: berth cannot give a container more than its
	// bounding set, nor raise limits without CAP_SYS_RESOURCE.
	ownCapabilities() (bounding, effective []string, err error)
	kernel() (kernelVersion, error)
	numCPU() int
	// onlineCPUs is the kernel's list of online CPUs, e.g. "0-3,6".
	onlineCPUs() (string, error)
	swapLimitSupported() bool
	blkioWeightSupported() bool
	// thermalThrottlePaths are the per-CPU thermal_throttle directories of
	// sysfs that exist; Docker masks them.
	thermalThrottlePaths() []string
	// devices are the host's device nodes, given to privileged containers.
	devices() ([]specs.LinuxDevice, error)
}

type liveHost struct{}

var rlimitResources = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU,
	"data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS,
	"memlock": unix.RLIMIT_MEMLOCK, "msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE,
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS,
	"rtprio": unix.RLIMIT_RTPRIO, "rttime": unix.RLIMIT_RTTIME,
	"sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

func (liveHost) rlimitHard(name string) (uint64, error) {
	res, ok := rlimitResources[name]
	if !ok {
		return 0, fmt.Errorf("unknown resource %q", name)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(res, &rl); err != nil {
		return 0, err
	}
	return rl.Max, nil
}

func (liveHost) nrOpen() (uint64, error) {
	raw, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
}

// ownCapabilities asks the kernel directly (prctl and capget are much
// cheaper than reading /proc/self/status).
func (liveHost) ownCapabilities() (bounding, effective []string, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, nil, fmt.Errorf("capget: %w", err)
	}
	for _, c := range capability.ListKnown() {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err == nil && in == 1 {
			bounding = append(bounding, capName(c))
		}
		if data[c/32].Effective&(1<<(uint(c)%32)) != 0 {
			effective = append(effective, capName(c))
		}
	}
	return bounding, effective, nil
}

func (liveHost) kernel() (kernelVersion, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelVersion{}, err
	}
	return parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
}

func (liveHost) numCPU() int { return goruntime.NumCPU() }

func (liveHost) onlineCPUs() (string, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	return strings.TrimSpace(string(b)), err
}

const cgroupRoot = "/sys/fs/cgroup"

func cgroup2Only() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// swapLimitSupported reports whether memory+swap can be limited. On cgroup
// v1 that needs swap accounting (memory.memsw.*); on v2 it is assumed, since
// only non-root cgroups carry memory.swap.max.
func (liveHost) swapLimitSupported() bool {
	if cgroup2Only() {
		return true
	}
	return exists(filepath.Join(cgroupRoot, "memory", "memory.memsw.limit_in_bytes"))
}

// blkioWeightSupported reports whether --blkio-weight can take effect: on
// cgroup v1 it needs the CFQ or BFQ weight files; on v2 it is assumed.
func (liveHost) blkioWeightSupported() bool {
	if cgroup2Only() {
		return true
	}
	return exists(filepath.Join(cgroupRoot, "blkio", "blkio.weight")) ||
		exists(filepath.Join(cgroupRoot, "blkio", "blkio.bfq.weight"))
}

func (liveHost) thermalThrottlePaths() []string {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return nil
	}
	cpus, err := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil || len(cpus) == 0 {
		return nil
	}
	path := func(cpu int) string {
		return "/sys/devices/system/cpu/cpu" + strconv.Itoa(cpu) + "/thermal_throttle"
	}
	// The directory exists on all CPUs or on none (it is an x86 feature);
	// look at the first before stat-ing them all.
	if !exists(path(cpus[0])) {
		return nil
	}
	var out []string
	for _, c := range cpus {
		if p := path(c); exists(p) {
			out = append(out, p)
		}
	}
	return out
}

// devices lists the device nodes under /dev, as `docker run --privileged`
// gives them to the container. Directories that are per-container (pts, shm,
// mqueue) and the console are left out.
func (liveHost) devices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				switch e.Name() {
				case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
					continue
				}
				if err := walk(p); err != nil && !os.IsNotExist(err) {
					return err
				}
				continue
			}
			if e.Type()&os.ModeDevice == 0 || p == "/dev/console" {
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				continue // vanished meanwhile
			}
			d := specs.LinuxDevice{
				Path:  p,
				Major: int64(unix.Major(st.Rdev)),
				Minor: int64(unix.Minor(st.Rdev)),
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				d.Type = "c"
			case unix.S_IFBLK:
				d.Type = "b"
			default:
				continue
			}
			mode := os.FileMode(st.Mode & 0o777)
			uid, gid := st.Uid, st.Gid
			d.FileMode, d.UID, d.GID = &mode, &uid, &gid
			out = append(out, d)
		}
		return nil
	}
	if err := walk("/dev"); err != nil {
		return nil, fmt.Errorf("listing host devices for a privileged container: %w", err)
	}
	return out, nil
}

// parseCPUList parses the kernel's CPU list format ("0-3,8,10-11").
func parseCPUList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a CPU number or range", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a CPU number or range", part)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("%q is not a plausible CPU range", part)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}
