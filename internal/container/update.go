package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// UpdateOptions are the changes `update` makes, in Docker's
// ContainerUpdate shape: a zero value (nil PidsLimit, nil RestartPolicy)
// leaves the setting as it is. Ulimits and OomKillDisable are not
// updatable and ignored.
type UpdateOptions struct {
	Resources
	RestartPolicy *RestartPolicy
}

// Update changes the resource limits and restart policy of a container,
// running or not, as docker update does: the limits of a running
// container change live (through its runtime) before the record does, so
// a limit the kernel refuses (memory below what the container uses)
// leaves everything as it was; its bundle is rewritten too, so that the
// monitor's restarts keep the new limits. The monitor reads the restart
// policy from the record when the container exits.
func (s *Service) Update(ctx context.Context, ref string, u UpdateOptions) (*Container, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	next := *c
	if err := mergeUpdate(&next, u); err != nil {
		return nil, err
	}
	switch {
	case c.State.Running:
		if err := s.applyLive(ctx, &next, u); err != nil {
			return nil, fmt.Errorf("Cannot update container %s: %w", c.ID, err)
		}
	case c.State.Restarting:
		// Between two runs, as Docker: nothing to change live, but the
		// monitor's next run must have the new limits.
		if err := s.rewriteSpec(&next, specOptions(&next, s.RootfsDir(c.ID), s.opts.Root, StartOptions{})); err != nil {
			return nil, fmt.Errorf("Cannot update container %s: %w", c.ID, err)
		}
	}
	updated, err := s.update(ctx, c.ID, func(rec *Container) error {
		// Merged again into the record as it is now, under the lock.
		return mergeUpdate(rec, u)
	})
	if err != nil {
		return nil, err
	}
	s.Emit(ctx, Event{Type: "container", Action: "update", ID: c.ID, Attributes: map[string]string{"name": c.ShortName(), "image": c.Config.Image}})
	return updated, nil
}

// mergeUpdate applies u to c's HostConfig with Docker's rules and
// refusals.
func mergeUpdate(c *Container, u UpdateOptions) error {
	cannot := func(format string, args ...any) error {
		return errdefs.Conflict("Cannot update container %s: "+format, append([]any{c.ID}, args...)...)
	}
	if c.State.Status == "removing" || c.State.Dead {
		return cannot("container is marked for removal and cannot be \"update\"")
	}
	cur := &c.HostConfig.Resources
	// --cpus is an alternative to --cpu-period/--cpu-quota: neither may
	// be set over the other.
	switch {
	case u.NanoCPUs > 0 && cur.CPUPeriod > 0:
		return cannot("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
	case u.NanoCPUs > 0 && cur.CPUQuota > 0:
		return cannot("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
	case u.CPUPeriod > 0 && cur.NanoCPUs > 0:
		return cannot("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
	case u.CPUQuota > 0 && cur.NanoCPUs > 0:
		return cannot("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
	}
	if u.RestartPolicy != nil && u.RestartPolicy.Name != "" && u.RestartPolicy.Name != "no" && c.HostConfig.AutoRemove {
		return cannot("Restart policy cannot be updated because AutoRemove is enabled for the container")
	}
	// Docker records the swap limit a memory limit implies (twice the
	// memory) at create; a record without it is read as Docker would
	// have written it.
	curSwap := cur.MemorySwap
	if curSwap == 0 && cur.Memory > 0 {
		curSwap = 2 * cur.Memory
	}
	if u.Memory != 0 {
		if u.Memory > curSwap && u.MemorySwap == 0 {
			return cannot("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
		}
		cur.Memory, cur.MemorySwap = u.Memory, curSwap
	}
	setInt := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&cur.CPUShares, u.CPUShares)
	setInt(&cur.NanoCPUs, u.NanoCPUs)
	setInt(&cur.CPUPeriod, u.CPUPeriod)
	setInt(&cur.CPUQuota, u.CPUQuota)
	setInt(&cur.MemorySwap, u.MemorySwap)
	setInt(&cur.MemoryReservation, u.MemoryReservation)
	if u.BlkioWeight != 0 {
		cur.BlkioWeight = u.BlkioWeight
	}
	if u.CpusetCpus != "" {
		cur.CpusetCpus = u.CpusetCpus
	}
	if u.CpusetMems != "" {
		cur.CpusetMems = u.CpusetMems
	}
	if u.PidsLimit != nil {
		v := *u.PidsLimit
		cur.PidsLimit = &v
	}
	if u.RestartPolicy != nil && u.RestartPolicy.Name != "" {
		c.HostConfig.RestartPolicy = *u.RestartPolicy
	}
	return nil
}

// applyLive changes the cgroup limits of the running container c (its
// record already merged) and rewrites its bundle.
func (s *Service) applyLive(ctx context.Context, c *Container, u UpdateOptions) error {
	so := specOptions(c, s.RootfsDir(c.ID), s.opts.Root, StartOptions{})
	res, err := runtime.BuildResources(so.Resources)
	if err != nil {
		return err
	}
	if u.PidsLimit != nil && *u.PidsLimit <= 0 {
		// Unlimited again: written as "max", where a new container's
		// spec would leave the limit out.
		unlimited := int64(-1)
		res.Pids = &specs.LinuxPids{Limit: &unlimited}
	}
	if err := s.runtimeFor(c).Update(ctx, c.ID, res); err != nil {
		return err
	}
	return s.rewriteSpec(c, so)
}

// rewriteSpec writes the running container's bundle again from its
// record, for the monitor's next restart of it. Its rootfs is mounted
// already.
func (s *Service) rewriteSpec(c *Container, so runtime.SpecOptions) error {
	bundle := s.BundleDir(c.ID)
	if _, err := os.Stat(filepath.Join(bundle, "rootfs")); err != nil {
		return nil // no bundle: the next start writes one
	}
	if ns := s.specNetNS(c); ns != "" {
		so.NetworkMode = "ns:" + ns
	}
	spec, err := runtime.Generate(so)
	if err != nil {
		return err
	}
	return s.runtimeFor(c).WriteBundle(bundle, spec)
}
