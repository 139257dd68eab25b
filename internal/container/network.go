package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// NetworkAttacher connects containers to their networks. It is the seam
// the network drivers plug into (the bridge comes with its own package);
// the container service calls it at every point of a container's life
// where its connections change:
//
//   - Attach before each run of the container's process (the first start
//     and every restart the monitor makes), once the network namespace
//     exists and before /etc/hosts is written, so that the addresses it
//     returns go there;
//   - Detach after each run (stop, exit before a restart), on removal and
//     when reconciling a container whose monitor died. Detach must be
//     idempotent: it may be called for a container that is not attached.
type NetworkAttacher interface {
	Attach(ctx context.Context, ep *Endpoint) (*NetworkAttachment, error)
	Detach(ctx context.Context, ep *Endpoint) error
}

// Endpoint is what a network driver is told about the container.
type Endpoint struct {
	ID       string
	Name     string
	Hostname string
	// NetworkMode is the container's HostConfig.NetworkMode.
	NetworkMode string
	// NetNSPath is the container's network namespace (a bind-mounted nsfs
	// file under the runroot), "" when it shares the host's.
	NetNSPath string
	// Container is the container's record as the caller read it (its
	// networks, ports, aliases and addresses asked for); read-only.
	Container *Container
	// Final, on Detach: the container stopped for good and its network
	// namespace is released next (its interfaces go with it).
	Final bool
	// HeldEvents, when set on Detach, collects the events it would emit,
	// for the caller to emit later (the monitor emits die first, as
	// Docker orders them).
	HeldEvents *[]Event
}

// NetworkAttachment is what an attachment gave the container.
type NetworkAttachment struct {
	// Addresses are the container's own IP addresses, for /etc/hosts.
	Addresses []string
	// Aliases are further names of the container on its networks.
	Aliases []string
	// EmbeddedDNS: the container resolves through the embedded server at
	// 127.0.0.11 (it is on a user-defined network).
	EmbeddedDNS bool
	// HostGateway is the address --add-host's "host-gateway" stands for.
	HostGateway string
	// Hosts are further /etc/hosts lines ("ip\tname alias..."): the
	// legacy links of the default bridge.
	Hosts []string
	// Settings, when set, are recorded as the container's NetworkSettings.
	Settings *NetworkSettings
}

// noNetwork is the attacher of the modes that need no driver: "none" (the
// namespace has its loopback only) and "host".
type noNetwork struct{}

func (noNetwork) Attach(context.Context, *Endpoint) (*NetworkAttachment, error) {
	return &NetworkAttachment{}, nil
}
func (noNetwork) Detach(context.Context, *Endpoint) error { return nil }

// NoNetwork returns the attacher for --network none and host.
func NoNetwork() NetworkAttacher { return noNetwork{} }

// netnsPath is where the container's network namespace is kept: under the
// runroot, like ip-netns's /run/netns, so that it outlives any one
// process of the container (restarts keep their namespace and addresses)
// and exists before the runtime starts the container, whose spec names it.
func (s *Service) netnsPath(id string) string {
	return filepath.Join(s.opts.RunRoot, "netns", id)
}

// ownNetNS reports whether the container gets a network namespace of its
// own (every mode but host and container:<id>).
func ownNetNS(c *Container) bool {
	_, joined := ContainerNetNS(c.HostConfig.NetworkMode)
	return c.HostConfig.NetworkMode != "host" && !joined
}

// specNetNS is the network namespace the container's spec names: its own,
// or that of the container its mode joins; "" for the host's.
func (s *Service) specNetNS(c *Container) string {
	if other, joined := ContainerNetNS(c.HostConfig.NetworkMode); joined {
		return s.netnsPath(other)
	}
	if ownNetNS(c) {
		return s.netnsPath(c.ID)
	}
	return ""
}

func (s *Service) endpoint(c *Container) *Endpoint {
	return &Endpoint{ID: c.ID, Name: c.ShortName(), Hostname: c.Config.Hostname, NetworkMode: c.HostConfig.NetworkMode, Container: c, NetNSPath: s.netnsPathOf(c)}
}

// netnsPathOf is the container's own network namespace, "" when it has
// none of its own (host, container:<id>).
func (s *Service) netnsPathOf(c *Container) string {
	if ownNetNS(c) {
		return s.netnsPath(c.ID)
	}
	return ""
}

// attachNetwork makes sure the container's network namespace exists,
// attaches it to its networks and writes /etc/hosts, /etc/hostname and
// /etc/resolv.conf with what the attachment gave. It runs before each run
// of the container's process; c.NetworkSettings then holds what the
// monitor records with the run.
func (s *Service) attachNetwork(ctx context.Context, c *Container) error {
	if err := s.prepareNetwork(ctx, c); err != nil {
		return err
	}
	return s.connectNetwork(ctx, c)
}

// prepareNetwork is the part of attachNetwork the runtime needs before it
// creates the container: the network namespace it joins, and the files
// it bind-mounts (their content is connectNetwork's).
func (s *Service) prepareNetwork(ctx context.Context, c *Container) error {
	// The networks as recorded now: `network connect` and `disconnect`
	// change them between runs.
	if r, err := s.lockedGet(ctx, c.ID); err == nil {
		c.NetworkSettings = r.NetworkSettings
	}
	if p := s.netnsPathOf(c); p != "" {
		if err := ensureNetNS(p); err != nil {
			return fmt.Errorf("network namespace of %s: %w", c.ShortName(), err)
		}
	}
	if other, joined := ContainerNetNS(c.HostConfig.NetworkMode); joined {
		var st unix.Statfs_t
		if unix.Statfs(s.netnsPath(other), &st) != nil || st.Type != unix.NSFS_MAGIC {
			return errdefs.Conflict("cannot join network of a non running container: %s", other)
		}
	}
	for _, p := range []string{c.HostsPath, c.HostnamePath, c.ResolvConfPath} {
		if p == "" {
			continue
		}
		// Created if missing (the runtime bind-mounts them); left as
		// they are otherwise: connectNetwork writes them in place, so
		// that the mounts show what it writes.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// connectNetwork attaches the container, in its prepared namespace, to
// its networks and writes /etc/hosts, /etc/hostname and /etc/resolv.conf
// with what the attachment gave.
func (s *Service) connectNetwork(ctx context.Context, c *Container) error {
	ep := s.endpoint(c)
	att, err := s.network.Attach(ctx, ep)
	if err != nil {
		return err
	}
	if att.Settings != nil {
		// Recorded with the running state, in the same transaction
		// (the monitor's record of the run).
		c.NetworkSettings = *att.Settings
	}
	if err := writeEtcFiles(c, att); err != nil {
		s.network.Detach(context.WithoutCancel(ctx), ep)
		return err
	}
	if other, joined := ContainerNetNS(c.HostConfig.NetworkMode); joined {
		// As Docker: the container sees the /etc/hosts, hostname and
		// resolv.conf of the one whose network it shares (as they are now).
		for _, f := range []struct{ own, name string }{{c.HostsPath, "hosts"}, {c.HostnamePath, "hostname"}, {c.ResolvConfPath, "resolv.conf"}} {
			if b, err := os.ReadFile(filepath.Join(s.StateDir(other), f.name)); err == nil {
				if err := os.WriteFile(f.own, b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// detachNetwork undoes attachNetwork's attachment; with release it also
// gives up the network namespace (the container stopped for good or is
// removed).
func (s *Service) detachNetwork(ctx context.Context, c *Container, release bool) error {
	return s.detachNetworkHolding(ctx, c, release, nil)
}

// detachNetworkHolding is detachNetwork that collects its events into
// held (when not nil) instead of emitting them.
func (s *Service) detachNetworkHolding(ctx context.Context, c *Container, release bool, held *[]Event) error {
	ep := s.endpoint(c)
	ep.Final, ep.HeldEvents = release, held
	err := s.network.Detach(ctx, ep)
	if release {
		err = errors.Join(err, releaseNetNS(s.netnsPath(c.ID)))
	}
	return err
}

// ensureNetNS creates a network namespace and bind-mounts it on path,
// unless path holds one already. Its loopback interface is brought up, as
// Docker's is for --network none.
func ensureNetNS(path string) error {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC {
		return nil
	}
	if err := sharedMountDir(filepath.Dir(path)); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o400)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	// A thread of our own enters a new namespace, is bind-mounted and
	// goes back; should it fail to go back, it stays locked and Go ends
	// it with the goroutine instead of reusing it.
	go func() {
		goruntime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(back)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if err == nil {
			err = runtime.LoopbackUp()
		}
		if serr := unix.Setns(back, unix.CLONE_NEWNET); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the host's network namespace: %w", serr))
			return // the thread stays locked and dies
		}
		goruntime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		releaseNetNS(path)
		return err
	}
	return nil
}

// releaseNetNS unmounts and removes the namespace file; the kernel frees
// the namespace once no process is left in it.
func releaseNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// validateExtraHosts checks --add-host entries (host:ip) at create, so
// that a bad one fails there rather than at start.
func validateExtraHosts(hosts []string) error {
	for _, h := range hosts {
		if _, _, ok := strings.Cut(h, ":"); !ok {
			return errdefs.InvalidArgument("invalid --add-host %q: use host:ip", h)
		}
	}
	return nil
}

// sharedMountDir makes dir a mount point of its own with shared
// propagation, once, as ip-netns does for /run/netns: a mount namespace
// made while a container runs (any host service with a private /tmp, any
// other container before its pivot_root) copies the namespace files
// mounted there, and only a shared mount carries their unmount to those
// copies, so that a removed container's namespace is freed.
func sharedMountDir(dir string) error {
	if isMountRoot(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if isMountRoot(dir) { // made by another process meanwhile
		return nil
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// isMountRoot reports whether dir is the root of a mount.
func isMountRoot(dir string) bool {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx)
	return err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}
