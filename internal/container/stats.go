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

	"github.com/berth-dev/berth/internal/runtime"
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

// Stats takes one reading of a container's resource usage: its cgroup's
// counters from the runtime, the host's CPU time and memory, and, for its
// network counters, its init's /proc entry.
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
	cg, err := s.runtimeFor(c).Stats(ctx, c.ID)
	var st *Stats
	if err == nil {
		st, err = hostProc.sample(cg, c.State.Pid, c.HostConfig.NetworkMode != "host")
	}
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

// procRoot is where the host-wide part of a reading comes from: the proc
// file system. Tests point it at a fixture tree.
type procRoot string

const hostProc procRoot = "/proc"

// sample completes the cgroup reading cg of a container whose init is pid
// with the host's CPU time and memory, and the counters of the init's
// network namespace when withNet.
func (p procRoot) sample(cg *runtime.CgroupStats, pid int, withNet bool) (*Stats, error) {
	st := &Stats{
		CPUUsage: cg.CPUUsage, MemoryRaw: cg.MemoryRaw, MemoryLimit: cg.MemoryLimit, MemoryStat: cg.MemoryStat,
		PIDs: cg.PIDs, PIDsLimit: cg.PIDsLimit, BlockRead: cg.BlockRead, BlockWrite: cg.BlockWrite,
	}
	// Read /proc/stat right after the cgroup's CPU counter so that both
	// deltas of CPUPercent cover the same interval.
	raw, err := os.ReadFile(filepath.Join(string(p), "stat"))
	if err != nil {
		return nil, err
	}
	if st.SystemCPUUsage, st.OnlineCPUs, err = parseProcStat(raw); err != nil {
		return nil, err
	}
	st.Read = time.Now()

	raw, err = os.ReadFile(filepath.Join(string(p), "meminfo"))
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
		raw, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "net", "dev"))
		if err != nil {
			return nil, err
		}
		if st.Networks, err = parseNetDev(raw); err != nil {
			return nil, err
		}
	}
	return st, nil
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
