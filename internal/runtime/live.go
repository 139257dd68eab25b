package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
)

// CgroupStats is one reading of a container's cgroup counters (see
// Runtime.Stats).
type CgroupStats = cgroups.Stats

// Stats reads the counters of the container's cgroup.
func (b *Builtin) Stats(ctx context.Context, id string) (*CgroupStats, error) {
	cg, err := b.cgroupOf(id)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// OOMKilled reports whether the OOM killer killed a process of the
// container; the state (and so the cgroup) lasts until Delete.
func (b *Builtin) OOMKilled(ctx context.Context, id string) (bool, error) {
	cg, err := b.cgroupOf(id)
	if err != nil {
		return false, err
	}
	return cg.OOMKilled(), nil
}

func (b *Builtin) cgroupOf(id string) (*cgroups.Manager, error) {
	st, err := b.loadState(id)
	if err != nil {
		return nil, err
	}
	return b.cgroupManager(st.CgroupsPath)
}

// Stats reads the counters of the container's cgroup. runc's own
// `events --stats` would cost a process per reading and refuses a stopped
// container, which OOMKilled must still read: the adapter reads the cgroup
// the bundle names, with the reader the built-in runtime uses. This holds
// for the cgroupfs driver, the one berth asks runc for (no
// --systemd-cgroup).
func (r *Binary) Stats(ctx context.Context, id string) (*CgroupStats, error) {
	cg, err := r.cgroupOf(ctx, id)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// OOMKilled reports whether the OOM killer killed a process of the
// container; runc keeps the cgroup until Delete.
func (r *Binary) OOMKilled(ctx context.Context, id string) (bool, error) {
	cg, err := r.cgroupOf(ctx, id)
	if err != nil {
		return false, err
	}
	return cg.OOMKilled(), nil
}

// Update changes the container's limits with `runc update -r -`.
func (r *Binary) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	cmd := r.command(ctx, "", "update", "--resources", "-", id)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return r.failure(ctx, "update", id, stderr.Bytes(), err)
	}
	return nil
}

func (r *Binary) cgroupOf(ctx context.Context, id string) (*cgroups.Manager, error) {
	st, err := r.State(ctx, id)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(st.Bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("%s: read the bundle of %s: %w", r.name(), id, err)
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: bundle of %s: %w", r.name(), id, err)
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return nil, errdefs.NotImplemented("%s: container %s has no cgroupsPath in its bundle", r.name(), id)
	}
	return cgroups.New(spec.Linux.CgroupsPath)
}
