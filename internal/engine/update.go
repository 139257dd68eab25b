package engine

import (
	"context"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// UpdateRequest is docker's ContainerUpdate body: the resources to change
// (zero leaves one as it is) and the restart policy ("" leaves it).
type UpdateRequest struct {
	BlkioWeight       uint16
	CPUShares         int64
	NanoCPUs          int64
	CPUPeriod         int64
	CPUQuota          int64
	CpusetCpus        string
	CpusetMems        string
	Memory            int64
	MemorySwap        int64
	MemoryReservation int64
	// KernelMemory is accepted and ignored, as Docker does since cgroup
	// v2 (kernel memory is accounted with the rest).
	KernelMemory  int64
	PidsLimit     *int64
	RestartPolicy container.RestartPolicy
}

// UpdateResult is docker's ContainerUpdate response.
type UpdateResult struct {
	Warnings []string
}

// ContainerUpdate changes the resources and restart policy of container
// ref, running or not (docker update).
func (e *Engine) ContainerUpdate(ctx context.Context, ref string, req UpdateRequest) (*UpdateResult, error) {
	res := &UpdateResult{}
	if err := checkUpdate(&req, runtime.ReadHostResources(), res); err != nil {
		return nil, err
	}
	u := container.UpdateOptions{Resources: container.Resources{
		BlkioWeight: req.BlkioWeight, CPUShares: req.CPUShares, NanoCPUs: req.NanoCPUs,
		CPUPeriod: req.CPUPeriod, CPUQuota: req.CPUQuota, CpusetCpus: req.CpusetCpus, CpusetMems: req.CpusetMems,
		Memory: req.Memory, MemorySwap: req.MemorySwap, MemoryReservation: req.MemoryReservation,
		PidsLimit: req.PidsLimit,
	}}
	if req.RestartPolicy.Name != "" {
		rp := req.RestartPolicy
		u.RestartPolicy = &rp
	}
	if _, err := e.Containers.Update(ctx, ref, u); err != nil {
		return nil, err
	}
	return res, nil
}

// checkUpdate applies the checks Docker makes of an update's own values
// (those against the container's present settings are the container
// service's), with Docker's messages; what the host cannot do is dropped
// with a warning, as Docker does.
func checkUpdate(r *UpdateRequest, h runtime.HostResources, res *UpdateResult) error {
	bad := func(format string, args ...any) error { return errdefs.InvalidArgument(format, args...) }
	if r.Memory != 0 && r.Memory < minMemory {
		return bad("Minimum memory limit allowed is 6MB")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return bad("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.MemoryReservation != 0 && r.MemoryReservation < minMemory {
		return bad("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return bad("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.KernelMemory != 0 {
		res.Warnings = append(res.Warnings, "Specifying a kernel memory limit is deprecated and will be removed in a future release.")
		r.KernelMemory = 0
	}
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return bad("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if r.NanoCPUs < 0 || r.NanoCPUs > int64(h.NumCPU)*1e9 {
		return bad("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", h.NumCPU, h.NumCPU)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUShares < 0 {
		return bad("invalid CPU shares (%d): value must be a positive integer", r.CPUShares)
	}
	if r.CpusetCpus != "" {
		in, ok := runtime.ListContains(h.CPUs, r.CpusetCpus)
		if !ok {
			return bad("Invalid value %s for cpuset cpus", r.CpusetCpus)
		}
		if !in {
			return bad("Requested CPUs are not available - requested %s, available: %s", r.CpusetCpus, h.CPUs)
		}
	}
	if r.CpusetMems != "" {
		in, ok := runtime.ListContains(h.Mems, r.CpusetMems)
		if !ok {
			return bad("Invalid value %s for cpuset mems", r.CpusetMems)
		}
		if !in {
			return bad("Requested memory nodes are not available - requested %s, available: %s", r.CpusetMems, h.Mems)
		}
	}
	if r.BlkioWeight > 0 {
		if !h.BlkioWeight {
			res.Warnings = append(res.Warnings, "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
			r.BlkioWeight = 0
		} else if r.BlkioWeight < 10 || r.BlkioWeight > 1000 {
			return bad("Range of blkio weight is from 10 to 1000")
		}
	}
	if p := r.RestartPolicy; p.Name != "" {
		switch p.Name {
		case "no", "always", "unless-stopped", "on-failure":
		default:
			return bad("invalid restart policy '%s'", p.Name)
		}
		if p.MaximumRetryCount < 0 {
			return bad("maximum retry count cannot be negative")
		}
		if p.MaximumRetryCount > 0 && p.Name != "on-failure" {
			return bad("maximum retry count can only be used with 'on-failure'")
		}
	}
	return nil
}
