package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is one reading of a container's resource usage: cumulative counters
// (CPU time, I/O bytes) and current values (memory, pids). Percentages need
// two readings; see CPUPercent.
//
// A container that does not run yields a Stats with only ID and Name set and
// a zero Read time, as docker reports zeros for stopped containers.
type Stats struct {
	ID   string
	Name string // without docker's leading "/"
	// Read is when the reading was taken.
	Read time.Time

	// CPUUsage is the CPU time used by the container's processes, in ns.
	CPUUsage uint64
	// SystemCPUUsage is the host's CPU time over all CPUs since boot, in ns
	// (from /proc/stat, counted as docker does); with OnlineCPUs it is the
	// denominator of CPUPercent.
	SystemCPUUsage uint64
	OnlineCPUs     uint32

	// MemoryUsage is the memory in use, without the inactive page cache the
	// kernel can drop at once (docker's MEM USAGE).
	MemoryUsage uint64
	// MemoryRaw is the cgroup's raw counter (memory.usage_in_bytes or
	// memory.current), page cache included.
	MemoryRaw uint64
	// MemoryLimit is the cgroup's limit, or the host's memory when that is
	// smaller or there is no limit.
	MemoryLimit uint64
	// MemoryStat is the cgroup's memory.stat, as the kernel names its keys.
	MemoryStat map[string]uint64

	PIDs      uint64
	PIDsLimit uint64 // 0 when unlimited

	BlockRead  uint64
	BlockWrite uint64

	// Networks holds the counters of each interface of the container's
	// network namespace but the loopback one; nil for --network host, whose
	// traffic is the host's (docker reports none either).
	Networks map[string]NetworkStats
}

// NetworkStats are one interface's counters from /proc/net/dev.
type NetworkStats struct {
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// NetIO sums received and transmitted bytes over all interfaces.
func (s *Stats) NetIO() (rx, tx uint64) {
	for _, n := range s.Networks {
		rx += n.RxBytes
		tx += n.TxBytes
	}
	return rx, tx
}

// MemoryPercent is MemoryUsage as a percentage of MemoryLimit.
func (s *Stats) MemoryPercent() float64 {
	if s.MemoryLimit == 0 {
		return 0
	}
	return float64(s.MemoryUsage) / float64(s.MemoryLimit) * 100
}

// CPUPercent is docker's CPU %: the container's share of the host's CPU time
// between two readings, scaled by the number of online CPUs (so a container
// that keeps two CPUs busy shows 200%). It is 0 when either reading is
// missing or either counter did not advance (or went back, as after a
// restart).
func CPUPercent(prev, cur *Stats) float64 {
	if prev == nil || cur == nil || cur.CPUUsage <= prev.CPUUsage || cur.SystemCPUUsage <= prev.SystemCPUUsage {
		return 0
	}
	cpus := cur.OnlineCPUs
	if cpus == 0 {
		cpus = 1
	}
	cpuDelta := float64(cur.CPUUsage - prev.CPUUsage)
	sysDelta := float64(cur.SystemCPUUsage - prev.SystemCPUUsage)
	return cpuDelta / sysDelta * float64(cpus) * 100
}

// Stats takes one reading of a container's resource usage from its cgroup
// (v1 or v2) and, for its network counters, from its init's /proc entry.
func (s *Service) Stats(ctx context.Context, ref string) (*Stats, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running || c.State.Pid == 0 {
		return &Stats{ID: c.ID, Name: c.ShortName()}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := hostStatPaths().sample(CgroupsPath(c.ID), c.State.Pid, c.HostConfig.NetworkMode != "host")
	if err != nil {
		// The container may have stopped (and its cgroup been removed)
		// since it was looked up.
		if now, gerr := s.Get(ctx, c.ID); gerr == nil && !now.State.Running {
			return &Stats{ID: c.ID, Name: c.ShortName()}, nil
		}
		return nil, fmt.Errorf("reading stats of container %s: %w", c.ID[:12], err)
	}
	st.ID, st.Name = c.ID, c.ShortName()
	return st, nil
}

// statPaths are where a reading comes from: the cgroup mount root and the
// proc file system. Tests point them at fixture trees.
//
// The counters are read by hand rather than through containerd/cgroups: a
// reading is a dozen small files in two well-documented layouts, and the
// library would add its protobuf metrics types to every CLI call's binary.
type statPaths struct {
	cgroupRoot string
	procRoot   string
}

func hostStatPaths() statPaths { return statPaths{cgroupRoot: "/sys/fs/cgroup", procRoot: "/proc"} }

// sample reads the counters of the cgroup cgPath (e.g. "/berth/<id>"); pid
// is the container's init, whose network namespace is read when withNet.
func (p statPaths) sample(cgPath string, pid int, withNet bool) (*Stats, error) {
	st := &Stats{}
	var err error
	if cgroup2Root(p.cgroupRoot) {
		err = readCgroup2(filepath.Join(p.cgroupRoot, cgPath), st)
	} else {
		err = readCgroup1(p.cgroupRoot, cgPath, st)
	}
	if err != nil {
		return nil, err
	}
	// Read /proc/stat right after the cgroup's CPU counter so that both
	// deltas of CPUPercent cover the same interval.
	raw, err := os.ReadFile(filepath.Join(p.procRoot, "stat"))
	if err != nil {
		return nil, err
	}
	if st.SystemCPUUsage, st.OnlineCPUs, err = parseProcStat(raw); err != nil {
		return nil, err
	}
	st.Read = time.Now()

	raw, err = os.ReadFile(filepath.Join(p.procRoot, "meminfo"))
	if err != nil {
		return nil, err
	}
	hostMem, err := parseMemTotal(raw)
	if err != nil {
		return nil, err
	}
	st.MemoryLimit = effectiveMemoryLimit(st.MemoryLimit, hostMem)
	st.MemoryUsage = memoryUsageNoCache(st.MemoryRaw, st.MemoryStat)

	if withNet && pid > 0 {
		raw, err := os.ReadFile(filepath.Join(p.procRoot, strconv.Itoa(pid), "net", "dev"))
		if err != nil {
			return nil, err
		}
		if st.Networks, err = parseNetDev(raw); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// cgroup2Root reports whether root is a cgroup v2 (unified) mount: only the
// root of a v2 hierarchy carries cgroup.controllers, while a v1 or hybrid
// /sys/fs/cgroup is a tmpfs holding one directory per controller.
func cgroup2Root(root string) bool {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return err == nil
}

// readCgroup1 reads the v1 controllers mounted under root, each at
// root/<controller>.
func readCgroup1(root, cgPath string, st *Stats) error {
	cpuDir := filepath.Join(v1ControllerDir(root, "cpuacct"), cgPath)
	var err error
	if st.CPUUsage, err = readUint(filepath.Join(cpuDir, "cpuacct.usage")); err != nil {
		return err
	}

	memDir := filepath.Join(root, "memory", cgPath)
	if st.MemoryRaw, err = readUint(filepath.Join(memDir, "memory.usage_in_bytes")); err != nil {
		return err
	}
	if st.MemoryLimit, err = readLimit(filepath.Join(memDir, "memory.limit_in_bytes")); err != nil {
		return err
	}
	if st.MemoryStat, err = readFlatKeyed(filepath.Join(memDir, "memory.stat")); err != nil {
		return err
	}

	// A kernel may lack the pids or blkio controller: report zeros.
	pidsDir := filepath.Join(root, "pids", cgPath)
	st.PIDs, _ = readUint(filepath.Join(pidsDir, "pids.current"))
	st.PIDsLimit, _ = readLimit(filepath.Join(pidsDir, "pids.max"))

	// The throttle layer counts every request; the CFQ/BFQ files only those
	// of devices using that scheduler. Take the first file that lists a
	// device.
	blkDir := filepath.Join(root, "blkio", cgPath)
	for _, name := range []string{
		"blkio.throttle.io_service_bytes",
		"blkio.throttle.io_service_bytes_recursive",
		"blkio.io_service_bytes_recursive",
		"blkio.bfq.io_service_bytes_recursive",
	} {
		raw, err := os.ReadFile(filepath.Join(blkDir, name))
		if err != nil {
			continue
		}
		r, w, found := parseBlkioV1(raw)
		if found {
			st.BlockRead, st.BlockWrite = r, w
			break
		}
	}
	return nil
}

// v1ControllerDir finds a v1 controller's mount: distributions mount cpuacct
// on its own or together with cpu ("cpu,cpuacct", with symlinks by either
// name, usually).
func v1ControllerDir(root, controller string) string {
	dir := filepath.Join(root, controller)
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	for _, alt := range []string{"cpu,cpuacct", "cpuacct,cpu"} {
		if strings.Contains(alt, controller) {
			if _, err := os.Stat(filepath.Join(root, alt)); err == nil {
				return filepath.Join(root, alt)
			}
		}
	}
	return dir
}

// readCgroup2 reads the v2 cgroup directory dir.
func readCgroup2(dir string, st *Stats) error {
	cpu, err := readFlatKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	usec, ok := cpu["usage_usec"]
	if !ok {
		return fmt.Errorf("%s: no usage_usec", filepath.Join(dir, "cpu.stat"))
	}
	st.CPUUsage = usec * 1000

	if st.MemoryRaw, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	if st.MemoryLimit, err = readLimit(filepath.Join(dir, "memory.max")); err != nil {
		return err
	}
	if st.MemoryStat, err = readFlatKeyed(filepath.Join(dir, "memory.stat")); err != nil {
		return err
	}

	// pids and io are absent when the controllers are not enabled for the
	// subtree: report zeros.
	st.PIDs, _ = readUint(filepath.Join(dir, "pids.current"))
	st.PIDsLimit, _ = readLimit(filepath.Join(dir, "pids.max"))
	if raw, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil {
		st.BlockRead, st.BlockWrite = parseIOStat(raw)
	}
	return nil
}

// memoryUsageNoCache applies docker's rule for MEM USAGE: the raw usage minus
// the inactive file cache, which the kernel reclaims first and which would
// otherwise make a container that merely read files look full. v1 names the
// hierarchical counter total_inactive_file, v2 inactive_file (v1's own
// inactive_file excludes child cgroups and is used only when the total is
// missing). Nothing is subtracted when the cache is not below the usage.
func memoryUsageNoCache(usage uint64, stat map[string]uint64) uint64 {
	cache, ok := stat["total_inactive_file"]
	if !ok {
		cache, ok = stat["inactive_file"]
	}
	if ok && cache < usage {
		return usage - cache
	}
	return usage
}

// effectiveMemoryLimit is the limit to show: an unlimited cgroup (0, v2
// "max", or v1's page-aligned maximum) or one above the host's memory is
// bounded by the host's memory.
func effectiveMemoryLimit(limit, hostMem uint64) uint64 {
	if hostMem > 0 && (limit == 0 || limit > hostMem) {
		return hostMem
	}
	return limit
}

func readUint(path string) (uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readLimit reads a limit file; "max" (v2) means unlimited and yields 0.
func readLimit(path string) (uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readFlatKeyed(path string) (map[string]uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseFlatKeyed(raw), nil
}

// parseFlatKeyed parses "key value" lines (memory.stat, cpu.stat); lines
// that do not fit are skipped.
func parseFlatKeyed(raw []byte) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// parseBlkioV1 sums the Read and Write lines ("8:0 Read 4096") of a v1
// blkio io_service_bytes file over all devices; found tells whether any
// device line was present (a cgroup without I/O lists only "Total 0").
func parseBlkioV1(raw []byte) (read, write uint64, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || !strings.Contains(f[0], ":") {
			continue
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			continue
		}
		found = true
		switch strings.ToLower(f[1]) {
		case "read":
			read += v
		case "write":
			write += v
		}
	}
	return read, write, found
}

// parseIOStat sums rbytes and wbytes of a v2 io.stat
// ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0") over all
// devices.
func parseIOStat(raw []byte) (read, write uint64) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				read += n
			case "wbytes":
				write += n
			}
		}
	}
	return read, write
}

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture Go supports.
const userHZ = 100

// parseProcStat reads the host's CPU time from /proc/stat: the sum of the
// user, nice, system, idle, iowait, irq and softirq columns of the "cpu"
// line (the fields docker adds up, so CPU % compares with docker's), in ns,
// and the number of online CPUs (one "cpuN" line each).
func parseProcStat(raw []byte) (ns uint64, cpus uint32, err error) {
	found := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cpu") {
			continue
		}
		f := strings.Fields(line)
		if f[0] != "cpu" {
			cpus++
			continue
		}
		if len(f) < 8 {
			return 0, 0, errors.New("/proc/stat: too few cpu fields")
		}
		var ticks uint64
		for _, s := range f[1:8] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: %w", err)
			}
			ticks += v
		}
		ns = ticks * (uint64(time.Second) / userHZ)
		found = true
	}
	if !found {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	return ns, cpus, nil
}

// parseMemTotal returns MemTotal of /proc/meminfo in bytes.
func parseMemTotal(raw []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			if len(f) >= 3 && f[2] == "kB" {
				v *= 1024
			}
			return v, nil
		}
	}
	return 0, errors.New("/proc/meminfo: no MemTotal")
}

// parseNetDev parses /proc/<pid>/net/dev: two header lines, then
// "iface: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
// multicast tx_bytes tx_packets tx_errs tx_drop ...". The loopback
// interface is left out.
func parseNetDev(raw []byte) (map[string]NetworkStats, error) {
	nets := map[string]NetworkStats{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue // a header line
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 12 {
			return nil, fmt.Errorf("net/dev: short line for %s", name)
		}
		var v [12]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("net/dev: %s: %w", name, err)
			}
			v[i] = n
		}
		nets[name] = NetworkStats{
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		}
	}
	return nets, nil
}
