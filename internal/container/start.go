package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// StartOptions tune Start.
type StartOptions struct {
	// Attach returns a stream of the container's output (and takes stdin)
	// from the moment it starts, so nothing is missed.
	Attach bool
	// ConsoleWidth/Height size the PTY of a -t container.
	ConsoleWidth, ConsoleHeight uint
	// Monitor, when set, is a monitor started ahead for this container
	// (see PrestartMonitor); Start hands the container to it rather than
	// starting one.
	Monitor *PendingMonitor
}

// Start starts a created or stopped container: mounts its rootfs, writes its
// runtime bundle, and hands it to a new monitor process. With opts.Attach it
// returns the attached stream.
func (s *Service) Start(ctx context.Context, ref string, opts StartOptions) (*Attachment, error) {
	tr := newTracer("start")
	c, l, err := s.lockRef(ctx, ref)
	tr.mark("get record")
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	att, err := s.startLocked(ctx, c, opts)
	if err == nil {
		s.sweepCrashed(ctx, c.ID)
	}
	return att, err
}

// startLocked starts c; the caller holds its lock, which it keeps until
// the monitor reports the container running (or why not), so that of two
// concurrent starts exactly one starts it and the other sees it running.
func (s *Service) startLocked(ctx context.Context, c *Container, opts StartOptions) (*Attachment, error) {
	var err error
	tr := newTracer("start locked")
	if c.State.Paused {
		return nil, errdefs.Conflict("cannot start a paused container, try unpause instead")
	}
	if c.State.Running || c.State.Restarting || c.State.Status == "created" && s.monitorAlive(c) {
		// Running, or a monitor is starting it (its starter died after
		// handing it over).
		if opts.Attach {
			return s.Attach(ctx, c.ID, AttachOptions{Stdin: c.Config.OpenStdin, Stdout: true, Stderr: true})
		}
		return nil, nil // docker: starting a running container is a no-op
	}
	if c.State.Status == "removing" || c.State.Dead {
		return nil, errdefs.Conflict("container %s is marked for removal and cannot be started", c.ShortName())
	}
	// The monitor of the previous run may still be finishing (runtime
	// delete): a new run of the same ID must not overlap with it.
	if err := s.waitMonitorGone(ctx, c); err != nil {
		return nil, err
	}
	// A previous manual stop no longer applies once the user starts it again.
	if c.Internal.ManualStop {
		if c, err = s.update(ctx, c.ID, func(c *Container) error { c.Internal.ManualStop = false; return nil }); err != nil {
			return nil, err
		}
	}
	if c, err = s.adoptJoinedHostname(ctx, c); err != nil {
		return nil, err
	}
	if err := s.prepareBundle(c, opts); err != nil {
		s.abortStart(ctx, c)
		s.recordStartFailure(ctx, c, err)
		return nil, err
	}
	tr.mark("mount + bundle")
	var att *Attachment
	if pm := opts.Monitor; pm != nil && pm.id == c.ID && pm.conn != nil {
		att, err = s.handOver(ctx, c, pm)
	} else {
		att, err = s.spawnMonitor(ctx, c)
	}
	tr.mark("monitor started container")
	if err != nil {
		return nil, err
	}
	if !opts.Attach {
		att.Close()
		return nil, nil
	}
	return att, nil
}

// prepareBundle mounts the container's rootfs and writes the runtime's
// bundle.
func (s *Service) prepareBundle(c *Container, opts StartOptions) error {
	bundle := s.BundleDir(c.ID)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	chains := make([]digest.Digest, len(c.Internal.ChainIDs))
	for i, ch := range c.Internal.ChainIDs {
		chains[i] = digest.Digest(ch)
	}
	rootfs := s.RootfsDir(c.ID)
	if err := s.snaps.Mount(c.ID, chains, rootfs, snapshot.MountOptions{Volatile: c.HostConfig.AutoRemove}); err != nil {
		return err
	}
	if err := copyImageDataToVolumes(c, rootfs); err != nil {
		return err
	}
	if c.Config.WorkingDir != "" {
		// docker creates a missing WORKDIR, inside the container's root:
		// its symlinks are followed as the container would see them.
		if err := mkdirInRoot(rootfs, c.Config.WorkingDir); err != nil {
			return errdefs.InvalidArgument("create working directory %s: %v", c.Config.WorkingDir, err)
		}
	}
	so := specOptions(c, rootfs, s.opts.Root, opts)
	if ns := s.specNetNS(c); ns != "" {
		// The namespace is made before the runtime starts the container
		// and kept across its restarts (attachNetwork).
		so.NetworkMode = "ns:" + ns
	}
	if c.HostConfig.Init != nil && *c.HostConfig.Init && so.InitPath == "" {
		return errNoInit
	}
	spec, err := runtime.Generate(so)
	if err != nil {
		return err
	}
	return s.runtimeFor(c).WriteBundle(bundle, spec)
}

// mkdirInRoot creates dir and its missing parents inside root, resolving
// every component relative to a descriptor of root.
func mkdirInRoot(root, dir string) error {
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer rootDir.Close()
	d, err := pathrs.MkdirAllHandle(rootDir, dir, 0o755)
	if err != nil {
		return err
	}
	return d.Close()
}

// abortStart undoes a start that failed before a monitor took the
// container: its rootfs is unmounted and its bundle removed, and a --rm
// container is removed with its anonymous volumes, as docker does, so
// that nothing of it is left behind.
func (s *Service) abortStart(ctx context.Context, c *Container) {
	s.teardownBundle(c)
	if c.HostConfig.AutoRemove {
		s.removeStopped(context.WithoutCancel(ctx), c, true)
	}
}

// teardownBundle undoes prepareBundle.
func (s *Service) teardownBundle(c *Container) {
	snapshot.Unmount(s.RootfsDir(c.ID))
	runtime.RemoveBundleFiles(s.BundleDir(c.ID))
}

// specOptions maps a container record to runtime spec options.
func specOptions(c *Container, rootfs, root string, so StartOptions) runtime.SpecOptions {
	hc := c.HostConfig
	o := runtime.SpecOptions{
		ID:             c.ID,
		Hostname:       c.Config.Hostname,
		Rootfs:         rootfs,
		ReadOnlyRootfs: hc.ReadonlyRootfs,
		Args:           append([]string{c.Path}, c.Args...),
		Env:            c.Config.Env,
		Cwd:            c.Config.WorkingDir,
		User:           c.Config.User,
		GroupAdd:       hc.GroupAdd,
		Terminal:       c.Config.Tty,
		ConsoleWidth:   so.ConsoleWidth,
		ConsoleHeight:  so.ConsoleHeight,
		CapAdd:         hc.CapAdd,
		CapDrop:        hc.CapDrop,
		Privileged:     hc.Privileged,
		Mounts:         specMounts(c),
		ShmSize:        hc.ShmSize,
		HostsPath:      c.HostsPath,
		HostnamePath:   c.HostnamePath,
		ResolvConfPath: c.ResolvConfPath,
		NetworkMode:    hc.NetworkMode,
		Sysctls:        hc.Sysctls,
		CgroupsPath:    CgroupsPath(c.ID),
		Resources: runtime.Resources{
			Memory:            hc.Memory,
			MemorySwap:        hc.MemorySwap,
			MemoryReservation: hc.MemoryReservation,
			NanoCPUs:          hc.NanoCPUs,
			CPUShares:         hc.CPUShares,
			CPUQuota:          hc.CPUQuota,
			CPUPeriod:         hc.CPUPeriod,
			CpusetCpus:        hc.CpusetCpus,
			CpusetMems:        hc.CpusetMems,
			BlkioWeight:       hc.BlkioWeight,
			OOMKillDisable:    hc.OomKillDisable,
		},
		Annotations: map[string]string{"io.berth.container.name": c.ShortName()},
	}
	if hc.PidsLimit != nil {
		o.Resources.PidsLimit = *hc.PidsLimit
	}
	for _, u := range hc.Ulimits {
		o.Ulimits = append(o.Ulimits, runtime.Ulimit{Name: u.Name, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	if hc.OomScoreAdj != 0 {
		v := hc.OomScoreAdj
		o.OOMScoreAdj = &v
	}
	for _, opt := range hc.SecurityOpt {
		k, v, _ := strings.Cut(opt, "=")
		if !strings.Contains(opt, "=") {
			k, v, _ = strings.Cut(opt, ":")
		}
		switch k {
		case "no-new-privileges":
			o.NoNewPrivs = v == "" || v == "true"
		case "seccomp":
			o.SeccompProfile = v
		}
	}
	if hc.Init != nil && *hc.Init {
		o.InitPath = initBinary()
	}
	return o
}

// errNoInit explains how to get the init that --init runs.
var errNoInit = errdefs.InvalidArgument("--init needs a static tini on the host: install Debian's tini package (it provides /usr/bin/tini-static)")

// CgroupsPath is the cgroup of a container, under berth's own parent.
func CgroupsPath(id string) string { return "/berth/" + id }

// initBinary finds the tiny init that --init runs as PID 1. It is
// bind-mounted into containers that may have no libc, so only static
// builds qualify: Debian's tini-static, or docker's docker-init.
func initBinary() string {
	for _, name := range []string{"tini-static", "docker-init"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// ValidateSecurityOpts checks --security-opt values early, with docker's words.
func ValidateSecurityOpts(opts []string) error {
	for _, opt := range opts {
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			k, v, ok = strings.Cut(opt, ":")
		}
		switch k {
		case "no-new-privileges":
			if ok && v != "true" && v != "false" {
				return errdefs.InvalidArgument("invalid --security-opt %q: no-new-privileges takes true or false", opt)
			}
		case "seccomp":
			if !ok || v == "" {
				return errdefs.InvalidArgument("invalid --security-opt %q: seccomp needs a profile path or \"unconfined\"", opt)
			}
			if v != "unconfined" {
				if _, err := os.Stat(v); err != nil {
					return errdefs.InvalidArgument("opening seccomp profile (%s) failed: %v", v, err)
				}
			}
		case "apparmor", "label":
			// No LSM is configured on these hosts; accepted and ignored like docker does without one.
		default:
			return errdefs.InvalidArgument("invalid --security-opt: %q", opt)
		}
	}
	return nil
}

// spawnMonitor starts `berth _monitor` for c, detached into its own
// session, and waits until it reports that the container runs.
func (s *Service) spawnMonitor(ctx context.Context, c *Container) (*Attachment, error) {
	conn, err := s.startMonitorProcess(c.ID, false)
	if err != nil {
		s.abortStart(ctx, c)
		return nil, err
	}
	return s.awaitMonitor(ctx, c, conn)
}

// PendingMonitor is a monitor process started before its container's
// record exists: `run` starts it first, so that the monitor's process
// start-up (a few milliseconds) overlaps creating the container and
// mounting its root filesystem, and hands the container over in Start.
// A pending monitor waits for its go-ahead on the attach socket and exits
// quietly, having touched nothing, when the socket closes without one.
type PendingMonitor struct {
	id   string
	conn *os.File
}

// PrestartMonitor starts a monitor for the container that will get id
// (see CreateOptions.ID). Close it if the container is not started.
func (s *Service) PrestartMonitor(id string) (*PendingMonitor, error) {
	conn, err := s.startMonitorProcess(id, true)
	if err != nil {
		return nil, err
	}
	return &PendingMonitor{id: id, conn: conn}, nil
}

// Close sends a monitor that was not handed a container away.
func (pm *PendingMonitor) Close() {
	if pm != nil && pm.conn != nil {
		pm.conn.Close()
		pm.conn = nil
	}
}

// handOver gives c to the pending monitor pm and waits until it reports
// that the container runs.
func (s *Service) handOver(ctx context.Context, c *Container, pm *PendingMonitor) (*Attachment, error) {
	conn := pm.conn
	pm.conn = nil
	if _, err := conn.Write([]byte{monitorGo}); err != nil {
		conn.Close()
		s.abortStart(ctx, c)
		return nil, fmt.Errorf("container %s: the monitor started for it has gone: %w", c.ShortName(), err)
	}
	return s.awaitMonitor(ctx, c, conn)
}

// monitorGo is the byte that hands a pending monitor its container.
const monitorGo = 'g'

// startMonitorProcess starts `berth _monitor` for id, detached into its
// own session, and returns our end of its attach socket; with await the
// monitor first waits for monitorGo.
func (s *Service) startMonitorProcess(id string, await bool) (*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours := os.NewFile(uintptr(fds[0]), "attach")
	theirs := os.NewFile(uintptr(fds[1]), "attach-monitor")
	defer theirs.Close()
	args := []string{"_monitor", "--root", s.opts.Root, "--runroot", s.opts.RunRoot, "--runtime", s.opts.Runtime}
	if s.opts.Debug {
		args = append(args, "--debug")
	}
	if await {
		args = append(args, "--await")
	}
	args = append(append(args, s.opts.MonitorArgs...), id)
	cmd := exec.Command(s.opts.Self, args...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = monitorEnv()
	if os.Getenv("BERTH_TRACE") != "" {
		cmd.Env = append(cmd.Env, "BERTH_TRACE=1")
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	// The monitor outlives us; reap it if we are still here when it ends.
	go cmd.Wait()
	return ours, nil
}

// awaitMonitor waits on the attach socket conn until the monitor reports
// that c runs, or why it does not.
func (s *Service) awaitMonitor(ctx context.Context, c *Container, ours *os.File) (*Attachment, error) {
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, err
	}
	att := newAttachment(conn, c.Config.Tty)
	ready, err := att.waitReady(ctx)
	if err != nil {
		att.Close()
		// The monitor died before it could report: record that.
		return nil, fmt.Errorf("container %s: monitor failed to start it: %w", c.ShortName(), err)
	}
	if ready.Error != "" {
		att.Close()
		if ready.ExitCode != 0 {
			return nil, &errdefs.ExitStatus{Code: ready.ExitCode, Msg: ready.Error}
		}
		return nil, errors.New(ready.Error)
	}
	return att, nil
}

// monitorEnv is the environment of a monitor: just enough to find the
// runtime binary. Keeping it small keeps the monitor's memory small.
func monitorEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	if env[0] == "PATH=" {
		env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	// One thread keeps an idle monitor at a few MiB. No collection runs
	// during the start (its garbage is small; a collection would sit on
	// the container's start path) unless the heap reaches the limit;
	// enableMonitorGC sets the steady-state target once the container runs.
	env = append(env, "GOGC=off", "GOMEMLIMIT=32MiB", "GOMAXPROCS=1")
	if v := os.Getenv("BERTH_MONITOR_DEBUG"); v != "" {
		env = append(env, "BERTH_MONITOR_DEBUG="+v)
	}
	return env
}

// readPidFile reads the pid the runtime wrote.
func readPidFile(path string) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 0 {
				return pid, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("runtime wrote no pid to %s", path)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
