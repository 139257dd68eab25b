package runtime

import (
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Limits Docker enforces on resource flags.
const (
	minMemory    = 6 << 20 // Docker's smallest --memory
	cfsPeriod    = 100000  // µs; the period --cpus is expressed in
	minCPUPeriod = 1000    // µs
	maxCPUPeriod = 1000000 // µs
	minCPUQuota  = 1000    // µs
)

// buildResources turns the cgroup limits into linux.resources with Docker's
// semantics and checks. Limits the host cannot enforce (swap without swap
// accounting, blkio weight without a weight-aware I/O scheduler) are left
// out, as Docker does (it warns).
func buildResources(r Resources, h hostInfo) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}

	if r.Memory < 0 || r.MemoryReservation < 0 || r.MemorySwap < -1 {
		return nil, errdefs.InvalidArgument("invalid memory limits: --memory and --memory-reservation must be positive, --memory-swap positive or -1")
	}
	if r.Memory > 0 && r.Memory < minMemory {
		return nil, errdefs.InvalidArgument("invalid --memory %d: the minimum memory limit is 6MB", r.Memory)
	}
	if r.Memory == 0 && r.MemorySwap > 0 {
		return nil, errdefs.InvalidArgument("--memory-swap needs --memory: set the memory limit too (the swap limit is memory plus swap)")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return nil, errdefs.InvalidArgument("invalid --memory-swap %d: it is memory plus swap, so it must be at least --memory (%d), or -1 for unlimited swap", r.MemorySwap, r.Memory)
	}
	if r.Memory > 0 && r.MemoryReservation > r.Memory {
		return nil, errdefs.InvalidArgument("invalid --memory-reservation %d: it cannot exceed --memory (%d)", r.MemoryReservation, r.Memory)
	}
	if r.Memory > 0 || r.MemoryReservation > 0 || r.OOMKillDisable {
		mem := &specs.LinuxMemory{}
		if r.Memory > 0 {
			mem.Limit = ptr(r.Memory)
			if h.swapLimitSupported() {
				switch {
				case r.MemorySwap == 0: // Docker: as much swap as memory
					mem.Swap = ptr(2 * r.Memory)
				default: // -1 (unlimited) or memory+swap as given
					mem.Swap = ptr(r.MemorySwap)
				}
			}
		}
		if r.MemoryReservation > 0 {
			mem.Reservation = ptr(r.MemoryReservation)
		}
		if r.OOMKillDisable {
			mem.DisableOOMKiller = ptr(true)
		}
		out.Memory = mem
	}

	cpu := &specs.LinuxCPU{}
	if r.NanoCPUs != 0 {
		if r.CPUQuota != 0 || r.CPUPeriod != 0 {
			return nil, errdefs.InvalidArgument("--cpus cannot be combined with --cpu-quota or --cpu-period: use one or the other")
		}
		n := h.numCPU()
		if r.NanoCPUs < 0 || r.NanoCPUs > int64(n)*1e9 {
			return nil, errdefs.InvalidArgument("invalid --cpus: the range is 0.01 to %d.00, as there are only %d CPUs available", n, n)
		}
		quota := r.NanoCPUs * cfsPeriod / 1e9
		if quota < minCPUQuota {
			return nil, errdefs.InvalidArgument("invalid --cpus: the smallest value is 0.01")
		}
		cpu.Period, cpu.Quota = ptr(uint64(cfsPeriod)), ptr(quota)
	}
	if r.CPUPeriod != 0 {
		if r.CPUPeriod < minCPUPeriod || r.CPUPeriod > maxCPUPeriod {
			return nil, errdefs.InvalidArgument("invalid --cpu-period %d: it must be between 1000 and 1000000 microseconds", r.CPUPeriod)
		}
		cpu.Period = ptr(uint64(r.CPUPeriod))
	}
	if r.CPUQuota != 0 {
		if r.CPUQuota > 0 && r.CPUQuota < minCPUQuota {
			return nil, errdefs.InvalidArgument("invalid --cpu-quota %d: it must be at least 1000 microseconds (or -1 for none)", r.CPUQuota)
		}
		cpu.Quota = ptr(r.CPUQuota)
	}
	if r.CPUShares < 0 {
		return nil, errdefs.InvalidArgument("invalid --cpu-shares %d: it must be positive", r.CPUShares)
	}
	if r.CPUShares > 0 {
		cpu.Shares = ptr(uint64(r.CPUShares))
	}
	if r.CpusetCpus != "" {
		want, err := parseCPUList(r.CpusetCpus)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid --cpuset-cpus %q: %v; use a list such as 0-2,4", r.CpusetCpus, err)
		}
		online, err := h.onlineCPUs()
		if err == nil {
			have, _ := parseCPUList(online)
			for _, c := range want {
				if !slices.Contains(have, c) {
					return nil, errdefs.InvalidArgument("invalid --cpuset-cpus %q: CPU %d is not available (online CPUs: %s)", r.CpusetCpus, c, online)
				}
			}
		}
		cpu.Cpus = r.CpusetCpus
	}
	if r.CpusetMems != "" {
		if _, err := parseCPUList(r.CpusetMems); err != nil {
			return nil, errdefs.InvalidArgument("invalid --cpuset-mems %q: %v; use a list such as 0-1", r.CpusetMems, err)
		}
		cpu.Mems = r.CpusetMems
	}
	if *cpu != (specs.LinuxCPU{}) {
		out.CPU = cpu
	}

	if r.PidsLimit > 0 {
		out.Pids = &specs.LinuxPids{Limit: ptr(r.PidsLimit)}
	}
	if r.BlkioWeight != 0 {
		if r.BlkioWeight < 10 || r.BlkioWeight > 1000 {
			return nil, errdefs.InvalidArgument("invalid --blkio-weight %s: it must be between 10 and 1000", strconv.Itoa(int(r.BlkioWeight)))
		}
		if h.blkioWeightSupported() {
			out.BlockIO = &specs.LinuxBlockIO{Weight: ptr(r.BlkioWeight)}
		}
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// BuildResources is the linux.resources of r on this host, checked as for
// a new container (see Runtime.Update).
func BuildResources(r Resources) (*specs.LinuxResources, error) {
	return buildResources(r, liveHost{})
}

// HostResources is what the host offers that resource flags are checked
// against.
type HostResources struct {
	NumCPU int
	// CPUs and Mems are the online CPUs and memory nodes, e.g. "0-3".
	CPUs, Mems string
	// BlkioWeight tells whether a weight-aware I/O scheduler is there.
	BlkioWeight bool
}

// ReadHostResources describes this host.
func ReadHostResources() HostResources {
	h := liveHost{}
	out := HostResources{NumCPU: h.numCPU(), BlkioWeight: h.blkioWeightSupported()}
	out.CPUs, _ = h.onlineCPUs()
	if b, err := os.ReadFile("/sys/devices/system/node/online"); err == nil {
		out.Mems = strings.TrimSpace(string(b))
	} else {
		out.Mems = "0" // a kernel without NUMA has node 0 only
	}
	return out
}

// ListContains reports whether every number of the kernel list want
// ("0-2,4") is in the list have; ok is false when want is not a list.
func ListContains(have, want string) (contains, ok bool) {
	w, err := parseCPUList(want)
	if err != nil || len(w) == 0 {
		return false, false
	}
	h, _ := parseCPUList(have)
	for _, c := range w {
		if !slices.Contains(h, c) {
			return false, true
		}
	}
	return true, true
}
