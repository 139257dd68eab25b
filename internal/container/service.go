package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// VolumeStore is what containers need of named volumes.
type VolumeStore interface {
	// Ensure returns the host path of volume name, creating it (anonymous
	// when anonymous is set) if it does not exist; created tells whether it did.
	Ensure(ctx context.Context, name string, anonymous bool) (path string, created bool, err error)
	Remove(ctx context.Context, name string, force bool) error
}

// Options configures a Service.
type Options struct {
	Root    string // --root
	RunRoot string // --runroot
	// Runtime is the container runtime (runtime.DefaultName if empty).
	Runtime string
	// Self is the berth binary that monitors are started from.
	Self string
	// Debug passes berth's --debug to monitors.
	Debug bool
	// NewRuntime returns the runtime called name (runtime.New over the
	// runroot when nil); tests give a fake.
	NewRuntime func(name string) runtime.Runtime
	// Network attaches containers to their networks (NoNetwork when nil).
	Network NetworkAttacher
	// MonitorArgs are further flags of every monitor, before its
	// container's ID (the network's configuration).
	MonitorArgs []string
}

// Service runs containers.
type Service struct {
	opts    Options
	meta    *metadata.Store
	images  *image.Store
	snaps   *snapshot.Snapshotter
	volumes VolumeStore
	network NetworkAttacher
	// swept is when this process last swept crashed transitions.
	swept *sweepMemo
	// removalStep, when set (tests), is called at the steps of rm -f's
	// handover (removal.go), to crash a party there.
	removalStep func(step string)
}

// NewService wires the container service.
func NewService(opts Options, meta *metadata.Store, images *image.Store, volumes VolumeStore) *Service {
	if opts.Runtime == "" {
		opts.Runtime = runtime.DefaultName
	}
	if opts.NewRuntime == nil {
		root, self := filepath.Join(opts.RunRoot, "runtime"), opts.Self
		opts.NewRuntime = func(name string) runtime.Runtime { return runtime.New(name, root, self) }
	}
	if opts.Network == nil {
		opts.Network = NoNetwork()
	}
	return &Service{opts: opts, meta: meta, images: images, snaps: images.Snapshots(), volumes: volumes, network: opts.Network, swept: &sweepMemo{}}
}

func (s *Service) runtimeFor(c *Container) runtime.Runtime {
	name := c.Internal.RuntimeBinary
	if name == "" {
		name = s.opts.Runtime
	}
	return s.opts.NewRuntime(name)
}

// runtimeRoot is the runtime's state directory (runc --root).
func (s *Service) runtimeRoot() string { return filepath.Join(s.opts.RunRoot, "runtime") }

// BundleDir is where a container's runtime bundle and sockets live.
func (s *Service) BundleDir(id string) string { return filepath.Join(s.opts.RunRoot, "containers", id) }

// RootfsDir is the mount point of a container's root filesystem.
func (s *Service) RootfsDir(id string) string { return filepath.Join(s.BundleDir(id), "rootfs") }

// StateDir holds a container's persistent files: log, hosts, hostname, resolv.conf.
func (s *Service) StateDir(id string) string { return s.snaps.ContainerDir(id) }

func (s *Service) attachSocket(id string) string {
	return filepath.Join(s.BundleDir(id), "attach.sock")
}

// ErrNoSuchContainer is docker's message for an unknown container.
func ErrNoSuchContainer(ref string) error {
	return errdefs.NotFound("No such container: %s", ref)
}

// resolveTx finds a container by full ID, name, or unique ID prefix.
func resolveTx(tx *metadata.Tx, ref string) (*Container, error) {
	var c Container
	if ref == "" {
		return nil, errdefs.InvalidArgument("container name or ID is empty")
	}
	if tx.Get(metadata.BucketContainers, ref, &c) == nil {
		return &c, nil
	}
	if id := tx.GetRaw(metadata.BucketNames, strings.TrimPrefix(ref, "/")); id != nil {
		if err := tx.Get(metadata.BucketContainers, string(id), &c); err == nil {
			return &c, nil
		}
	}
	var matches []string
	tx.ForEachPrefix(metadata.BucketContainers, ref, func(k string, _ []byte) error {
		matches = append(matches, k)
		return nil
	})
	switch len(matches) {
	case 0:
		return nil, ErrNoSuchContainer(ref)
	case 1:
		if err := tx.Get(metadata.BucketContainers, matches[0], &c); err != nil {
			return nil, err
		}
		return &c, nil
	}
	return nil, errdefs.InvalidArgument("multiple IDs found with provided prefix: %s", ref)
}

// Get returns a container's record as observed now. It never writes: a
// container whose monitor died is shown as its reconciliation will record
// it (see observe), and Reconcile, called by the next transition, writes
// that.
func (s *Service) Get(ctx context.Context, ref string) (*Container, error) {
	var c *Container
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		var err error
		c, err = resolveTx(tx, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.observe(c), nil
}

// List returns all containers, newest first, as observed (see Get).
func (s *Service) List(ctx context.Context) ([]*Container, error) {
	var out []*Container
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketContainers, func(k string, raw []byte) error {
			var c Container
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("container record %s: %w", k, err)
			}
			out = append(out, s.observe(&c))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// stale reports whether a record says a monitor runs the container while no
// such monitor is alive.
func (s *Service) stale(c *Container) bool {
	if c.Internal.MonitorPid == 0 {
		// A monitor that died while starting the container (before it
		// recorded itself) leaves runtime state behind and its pid file.
		if c.State.Status != "created" {
			return false
		}
		if !s.runtimeFor(c).HasState(c.ID) {
			return false
		}
		pid, start := readMonitorPid(filepath.Join(s.BundleDir(c.ID), "monitor.pid"))
		return !processAlive(pid, start)
	}
	return !processAlive(c.Internal.MonitorPid, c.Internal.MonitorStart)
}

// writeMonitorPid records the monitor's pid and start time in its bundle,
// so that a monitor that dies before it records itself in the store is
// still noticed.
func writeMonitorPid(path string) {
	start, _ := runtime.ProcessStartTime(os.Getpid())
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+" "+strconv.FormatUint(start, 10)+"\n"), 0o600)
}

func readMonitorPid(path string) (int, uint64) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return 0, 0
	}
	pid, _ := strconv.Atoi(f[0])
	start, _ := strconv.ParseUint(f[1], 10, 64)
	return pid, start
}

func waitGone(ctx context.Context, rt runtime.Runtime, id string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := rt.State(ctx, id)
		if err != nil || st == nil || st.Status == "stopped" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Service) lockedGet(ctx context.Context, id string) (*Container, error) {
	var c Container
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		if err := tx.Get(metadata.BucketContainers, id, &c); err != nil {
			return ErrNoSuchContainer(id)
		}
		return nil
	})
	return &c, err
}

// update applies fn to the stored record of id in one transaction.
func (s *Service) update(ctx context.Context, id string, fn func(*Container) error) (*Container, error) {
	var c Container
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		if err := tx.Get(metadata.BucketContainers, id, &c); err != nil {
			return ErrNoSuchContainer(id)
		}
		if err := fn(&c); err != nil {
			return err
		}
		return tx.Put(metadata.BucketContainers, id, &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// processAlive reports whether pid runs and, when start is set, was started
// at that time (so a reused pid is not mistaken for the monitor).
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if start == 0 {
		return syscall.Kill(pid, 0) == nil
	}
	st, err := runtime.ProcessStartTime(pid)
	return err == nil && st == start
}
