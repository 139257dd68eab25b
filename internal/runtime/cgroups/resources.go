package cgroups

import (
	"fmt"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// fileWrite is one value for one control file. Create turns the resources
// into a list of these first (a pure step, tested on its own) and then
// writes them in order.
type fileWrite struct {
	file  string // e.g. "memory.limit_in_bytes"; its prefix names the controller
	value string
	// optional writes are skipped when the control file does not exist
	// (a kernel without swap accounting).
	optional bool
	// swapOnEINVAL marks the first of two writes the kernel may only
	// accept the other way round; when it fails with EINVAL the next write
	// is done first and this one retried.
	swapOnEINVAL bool
}

// unlimited is how the runtime spec (and cgroup v1) writes "no limit".
const unlimited = -1

// v1State is what the v1 plan needs to know about the existing cgroup.
type v1State struct {
	// memswLimit is the current memory.memsw.limit_in_bytes, nil when the
	// kernel has no swap accounting.
	memswLimit *int64
	// blkioWeightFile is the weight file the block I/O scheduler offers:
	// "blkio.weight" (CFQ), "blkio.bfq.weight" (BFQ), or "" for neither.
	blkioWeightFile string
}

// v2State is what the v2 plan needs to know about the existing cgroup.
type v2State struct {
	// ioWeightFile is "io.weight" (blk-iocost) or "io.bfq.weight", ""
	// for neither.
	ioWeightFile string
}

// checkSupported rejects limits this package does not apply, so that a
// container never runs without a limit it asked for.
func checkSupported(res *specs.LinuxResources) error {
	var fields []string
	if c := res.CPU; c != nil {
		if c.Burst != nil {
			fields = append(fields, "cpu.burst")
		}
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			fields = append(fields, "cpu.realtimeRuntime/realtimePeriod")
		}
		if c.Idle != nil {
			fields = append(fields, "cpu.idle")
		}
	}
	if b := res.BlockIO; b != nil && (b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0) {
		fields = append(fields, "blockIO (only weight is supported)")
	}
	if len(res.HugepageLimits) > 0 {
		fields = append(fields, "hugepageLimits")
	}
	if res.Network != nil {
		fields = append(fields, "network")
	}
	if len(res.Rdma) > 0 {
		fields = append(fields, "rdma")
	}
	if len(res.Unified) > 0 {
		fields = append(fields, "unified")
	}
	if len(fields) > 0 {
		return errdefs.NotImplemented("cgroups: linux.resources %v are not supported by berth's runtime", fields)
	}
	return nil
}

// v1Writes plans the v1 control file writes for res (devices excluded).
func v1Writes(res *specs.LinuxResources, st v1State) ([]fileWrite, error) {
	if err := checkSupported(res); err != nil {
		return nil, err
	}
	var out []fileWrite
	add := func(file, value string) { out = append(out, fileWrite{file: file, value: value}) }

	if m := res.Memory; m != nil {
		// The kernel keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes
		// at every moment, so a raise must move memsw first and a cut
		// must move the limit first.
		limit := fileWrite{file: "memory.limit_in_bytes"}
		if m.Limit != nil {
			limit.value = strconv.FormatInt(*m.Limit, 10)
		}
		var memsw fileWrite
		if m.Swap != nil && st.memswLimit != nil {
			memsw = fileWrite{file: "memory.memsw.limit_in_bytes", value: strconv.FormatInt(*m.Swap, 10)}
		}
		switch {
		case limit.value != "" && memsw.value != "" && raisesAbove(*m.Limit, *st.memswLimit):
			out = append(out, memsw, limit)
		default:
			for _, w := range []fileWrite{limit, memsw} {
				if w.value != "" {
					out = append(out, w)
				}
			}
		}
		if m.Reservation != nil {
			add("memory.soft_limit_in_bytes", strconv.FormatInt(*m.Reservation, 10))
		}
		if m.Swappiness != nil {
			if *m.Swappiness > 100 {
				return nil, errdefs.InvalidArgument("cgroups: invalid memory swappiness %d: the range is 0 to 100", *m.Swappiness)
			}
			add("memory.swappiness", strconv.FormatUint(*m.Swappiness, 10))
		}
		if m.DisableOOMKiller != nil {
			add("memory.oom_control", boolDigit(*m.DisableOOMKiller))
		}
		if m.KernelTCP != nil {
			add("memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*m.KernelTCP, 10))
		}
	}

	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			add("cpu.shares", strconv.FormatUint(*c.Shares, 10))
		}
		// The period goes first so that the quota is checked against
		// the new period; if the kernel refuses that order (the old
		// quota does not fit the new period) the other one works.
		switch {
		case c.Period != nil && *c.Period != 0 && c.Quota != nil && *c.Quota != 0:
			out = append(out,
				fileWrite{file: "cpu.cfs_period_us", value: strconv.FormatUint(*c.Period, 10), swapOnEINVAL: true},
				fileWrite{file: "cpu.cfs_quota_us", value: strconv.FormatInt(*c.Quota, 10)})
		case c.Period != nil && *c.Period != 0:
			add("cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10))
		case c.Quota != nil && *c.Quota != 0:
			add("cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10))
		}
		if c.Cpus != "" {
			add("cpuset.cpus", c.Cpus)
		}
		if c.Mems != "" {
			add("cpuset.mems", c.Mems)
		}
	}

	if p := res.Pids; p != nil && p.Limit != nil {
		add("pids.max", pidsMax(*p.Limit))
	}

	if b := res.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 { // 0: unset, as runc reads it (dockerd sends it)
		file := st.blkioWeightFile
		if file == "" {
			// Neither scheduler offers a weight: let the write fail and
			// name the file.
			file = "blkio.weight"
		}
		add(file, strconv.FormatUint(uint64(*b.Weight), 10))
	}
	return out, nil
}

// raisesAbove reports whether a new memory limit exceeds the current
// memory+swap limit, -1 being unlimited.
func raisesAbove(newLimit, currentMemsw int64) bool {
	switch {
	case currentMemsw == unlimited:
		return false
	case newLimit == unlimited:
		return true
	}
	return newLimit > currentMemsw
}

// v2Writes plans the v2 control file writes for res (devices excluded).
//
// Two v1 settings have no v2 file and are ignored, as runc does: memory
// swappiness, and disabling the OOM killer (Docker drops both with a
// warning before they reach the runtime).
func v2Writes(res *specs.LinuxResources, st v2State) ([]fileWrite, error) {
	if err := checkSupported(res); err != nil {
		return nil, err
	}
	if m := res.Memory; m != nil && m.KernelTCP != nil {
		// v2 has no separate TCP buffer limit (it is part of memory.max).
		return nil, errdefs.NotImplemented("cgroups: linux.resources memory.kernelTCP has no cgroup v2 equivalent")
	}
	var out []fileWrite
	add := func(file, value string) { out = append(out, fileWrite{file: file, value: value}) }

	if m := res.Memory; m != nil {
		if m.Limit != nil {
			add("memory.max", maxOrNumber(*m.Limit))
		}
		if m.Swap != nil && *m.Swap != 0 {
			swap, err := swapMax(m.Limit, *m.Swap)
			if err != nil {
				return nil, err
			}
			// Optional like memsw on v1: without swap accounting
			// (swapaccount=0) there is no memory.swap.max.
			out = append(out, fileWrite{file: "memory.swap.max", value: swap, optional: true})
		}
		if m.Reservation != nil {
			add("memory.low", maxOrNumber(*m.Reservation))
		}
	}

	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			add("cpu.weight", strconv.FormatUint(sharesToWeight(*c.Shares), 10))
		}
		if v, ok := cpuMax(c.Quota, c.Period); ok {
			add("cpu.max", v)
		}
		if c.Cpus != "" {
			add("cpuset.cpus", c.Cpus)
		}
		if c.Mems != "" {
			add("cpuset.mems", c.Mems)
		}
	}

	if p := res.Pids; p != nil && p.Limit != nil {
		add("pids.max", pidsMax(*p.Limit))
	}

	if b := res.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 { // 0: unset, as runc reads it (dockerd sends it)
		switch st.ioWeightFile {
		case "io.bfq.weight":
			// BFQ takes the v1 range (1-1000) as it is.
			add("io.bfq.weight", "default "+strconv.FormatUint(uint64(*b.Weight), 10))
		default:
			add("io.weight", "default "+strconv.FormatUint(blkioToIOWeight(*b.Weight), 10))
		}
	}
	return out, nil
}

// sharesToWeight maps cpu.shares (2-262144, default 1024) onto cpu.weight
// (1-10000, default 100) linearly, the conversion every OCI runtime uses
// so that a container gets the same weight whichever runtime starts it.
func sharesToWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// blkioToIOWeight maps blkio.weight (10-1000) onto io.weight (1-10000)
// linearly, as the other OCI runtimes do.
func blkioToIOWeight(weight uint16) uint64 {
	w := min(max(uint64(weight), 10), 1000)
	return 1 + (w-10)*9999/990
}

// swapMax converts the spec's memory+swap limit into memory.swap.max, which
// limits swap alone.
func swapMax(limit *int64, swap int64) (string, error) {
	switch {
	case swap == unlimited:
		return "max", nil
	case limit == nil || *limit == 0:
		return "", errdefs.InvalidArgument("cgroups: a memory+swap limit (%d) needs a memory limit", swap)
	case *limit == unlimited:
		return "", errdefs.InvalidArgument("cgroups: a memory+swap limit (%d) needs a finite memory limit", swap)
	case swap < *limit:
		return "", errdefs.InvalidArgument("cgroups: the memory+swap limit %d is below the memory limit %d", swap, *limit)
	}
	return strconv.FormatInt(swap-*limit, 10), nil
}

// cpuMax is cpu.max, "QUOTA PERIOD" or "max PERIOD"; ok is false when
// neither is set. A period left out is the kernel's default, 100ms.
func cpuMax(quota *int64, period *uint64) (string, bool) {
	q := int64(0)
	if quota != nil {
		q = *quota
	}
	p := uint64(0)
	if period != nil {
		p = *period
	}
	if q == 0 && p == 0 {
		return "", false
	}
	if p == 0 {
		p = 100000
	}
	qs := "max"
	if q > 0 {
		qs = strconv.FormatInt(q, 10)
	}
	return fmt.Sprintf("%s %d", qs, p), true
}

// pidsMax is pids.max for the spec's limit, where 0 or less means none.
func pidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

// maxOrNumber writes v2's "max" for the spec's -1.
func maxOrNumber(v int64) string {
	if v == unlimited {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
