package runtime

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// OCIVersion is the runtime-spec version written into config.json. crun 1.8
// rejects 1.2.0 and later, and nothing berth writes needs more than 1.0.2
// (runtimes accept the later optional fields it uses, such as
// defaultErrnoRet, regardless of the version).
const OCIVersion = "1.0.2"

// DefaultPathEnv is PATH for containers whose image sets none.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// InitDestination is where --init's binary appears in the container.
const InitDestination = "/sbin/docker-init"

// Default RLIMIT_NOFILE of a container: what Docker 25+ containers get
// under systemd's defaults (soft 1024 for select(2)-safety, hard 524288).
// It is written into every spec, and exec'd processes get the spec's, so
// that a container's limits do not depend on the shell or service that ran
// berth. Only the kernel's ceiling (fs.nr_open) lowers it, or, where berth
// lacks CAP_SYS_RESOURCE and so cannot raise a hard limit, berth's own
// hard limit (see buildRlimits).
const (
	defaultNofileSoft = 1024
	defaultNofileHard = 524288
)

// Generate builds the runtime-spec configuration Docker (20.10 and later)
// would hand its OCI runtime for `docker run` with these options: Docker's
// namespaces, mounts, device rules, capabilities, masked and read-only
// paths and seccomp profile, the user resolved in the image, and the
// resource limits with Docker's checks. Invalid options are
// errdefs.ErrInvalidArgument errors that say what to change.
//
// Where it differs from Docker, on purpose:
//   - every container has its own cgroup namespace (Docker's default on
//     cgroup v2; on v1 Docker shares the host's);
//   - RLIMIT_NOFILE is always set (see defaultNofileSoft), not inherited;
//   - capabilities are limited to those berth itself holds (see
//     capabilitySet);
//   - the device rules runc adds on its own are written out, so that every
//     runtime enforces the same set;
//   - limits the host cannot enforce are dropped without Docker's warning.
func Generate(opts SpecOptions) (*specs.Spec, error) {
	return generate(opts, liveHost{})
}

func generate(opts SpecOptions, h hostInfo) (*specs.Spec, error) {
	if err := validateBasics(opts); err != nil {
		return nil, err
	}
	usr, home, err := ResolveUser(opts.Rootfs, opts.User, opts.GroupAdd)
	if err != nil {
		return nil, err
	}
	caps, err := capabilitySet(opts.CapAdd, opts.CapDrop, opts.Privileged, h)
	if err != nil {
		return nil, err
	}
	env, err := buildEnv(opts.Env, opts.Hostname, opts.Terminal, home)
	if err != nil {
		return nil, err
	}
	rlimits, err := buildRlimits(opts.Ulimits, h)
	if err != nil {
		return nil, err
	}
	netns, err := networkNamespace(opts.NetworkMode)
	if err != nil {
		return nil, err
	}
	mounts, err := buildMounts(opts)
	if err != nil {
		return nil, err
	}
	resources, err := buildResources(opts.Resources, h)
	if err != nil {
		return nil, err
	}
	if err := validateSysctls(opts.Sysctls, opts.NetworkMode == "host"); err != nil {
		return nil, err
	}

	args := slices.Clone(opts.Args)
	if opts.InitPath != "" {
		args = append([]string{InitDestination, "--"}, args...)
	}
	cwd := opts.Cwd
	if cwd == "" {
		cwd = "/"
	}
	proc := &specs.Process{
		Terminal:        opts.Terminal,
		User:            usr,
		Args:            args,
		Env:             env,
		Cwd:             cwd,
		Rlimits:         rlimits,
		NoNewPrivileges: opts.NoNewPrivs,
		OOMScoreAdj:     opts.OOMScoreAdj,
	}
	if opts.Terminal && (opts.ConsoleWidth > 0 || opts.ConsoleHeight > 0) {
		proc.ConsoleSize = &specs.Box{Width: opts.ConsoleWidth, Height: opts.ConsoleHeight}
	}
	// Like current Docker: a non-root user gets the capabilities only in its
	// bounding set, as execve(2) of a non-root process would leave them;
	// file capabilities and setuid binaries can still raise them.
	if usr.UID == 0 {
		proc.Capabilities = &specs.LinuxCapabilities{
			Bounding:  caps,
			Effective: slices.Clone(caps),
			Permitted: slices.Clone(caps),
		}
	} else {
		proc.Capabilities = &specs.LinuxCapabilities{Bounding: caps}
	}

	linux := &specs.Linux{
		Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace},
			{Type: specs.UTSNamespace},
			{Type: specs.PIDNamespace},
			{Type: specs.IPCNamespace},
			{Type: specs.CgroupNamespace},
		},
		Resources:   resources,
		CgroupsPath: opts.CgroupsPath,
		Sysctl:      maps.Clone(opts.Sysctls),
	}
	if netns != nil {
		linux.Namespaces = slices.Insert(linux.Namespaces, 1, *netns)
	}

	if opts.Privileged {
		resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		if linux.Devices, err = h.devices(); err != nil {
			return nil, err
		}
	} else {
		resources.Devices = defaultDeviceRules()
		linux.MaskedPaths = append(defaultMaskedPaths(), h.thermalThrottlePaths()...)
		linux.ReadonlyPaths = defaultReadonlyPaths()
		short, scmp := nativeArch()
		if linux.Seccomp, err = seccompFor(opts.SeccompProfile, caps, short, scmp, h); err != nil {
			return nil, err
		}
	}
	// Explicitly requested paths apply even to privileged containers.
	linux.MaskedPaths = appendNew(linux.MaskedPaths, opts.MaskedPaths...)
	linux.ReadonlyPaths = appendNew(linux.ReadonlyPaths, opts.ReadonlyPaths...)

	return &specs.Spec{
		Version:     OCIVersion,
		Process:     proc,
		Root:        &specs.Root{Path: opts.Rootfs, Readonly: opts.ReadOnlyRootfs},
		Hostname:    opts.Hostname,
		Mounts:      mounts,
		Annotations: maps.Clone(opts.Annotations),
		Linux:       linux,
	}, nil
}

func validateBasics(opts SpecOptions) error {
	if opts.Rootfs == "" || !path.IsAbs(opts.Rootfs) {
		return errdefs.InvalidArgument("container root filesystem %q must be an absolute path", opts.Rootfs)
	}
	if len(opts.Args) == 0 || opts.Args[0] == "" {
		return errdefs.InvalidArgument("no command specified: give one after the image name, or use an image with a CMD or ENTRYPOINT")
	}
	if opts.Cwd != "" && !path.IsAbs(opts.Cwd) {
		return errdefs.InvalidArgument("the working directory %q is invalid: it must be an absolute path (-w /dir)", opts.Cwd)
	}
	if opts.OOMScoreAdj != nil && (*opts.OOMScoreAdj < -1000 || *opts.OOMScoreAdj > 1000) {
		return errdefs.InvalidArgument("invalid --oom-score-adj %d: it must be between -1000 and 1000", *opts.OOMScoreAdj)
	}
	if opts.ShmSize < 0 {
		return errdefs.InvalidArgument("invalid --shm-size %d: it must be positive (or 0 for the default 64MiB)", opts.ShmSize)
	}
	if opts.InitPath != "" && !path.IsAbs(opts.InitPath) {
		return errdefs.InvalidArgument("init binary %q must be an absolute path on the host", opts.InitPath)
	}
	return nil
}

// networkNamespace maps NetworkMode to the network namespace entry: a new
// one ("none", ""), the host's (nil), or an existing one by path.
func networkNamespace(mode string) (*specs.LinuxNamespace, error) {
	switch {
	case mode == "" || mode == "none":
		return &specs.LinuxNamespace{Type: specs.NetworkNamespace}, nil
	case mode == "host":
		return nil, nil
	case strings.HasPrefix(mode, "ns:"):
		p := strings.TrimPrefix(mode, "ns:")
		if !path.IsAbs(p) {
			return nil, errdefs.InvalidArgument("network namespace path %q must be absolute (network mode %q)", p, mode)
		}
		return &specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p}, nil
	}
	return nil, errdefs.InvalidArgument("unknown network mode %q: use \"none\", \"host\" or \"ns:<path>\"", mode)
}

// buildEnv merges the container's variables over Docker's defaults: PATH,
// HOSTNAME, and TERM=xterm with a terminal, replaced in place when the
// container sets them, then HOME from passwd when unset. "KEY" without "="
// removes KEY.
func buildEnv(user []string, hostname string, tty bool, home string) ([]string, error) {
	env := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	index := func(key string) int {
		return slices.IndexFunc(env, func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return k == key
		})
	}
	for _, kv := range user {
		key, _, hasValue := strings.Cut(kv, "=")
		if key == "" {
			return nil, errdefs.InvalidArgument("invalid environment variable %q: the name before \"=\" is empty", kv)
		}
		i := index(key)
		switch {
		case !hasValue && i >= 0:
			env = slices.Delete(env, i, i+1)
		case !hasValue:
		case i >= 0:
			env[i] = kv
		default:
			env = append(env, kv)
		}
	}
	if index("HOME") < 0 {
		env = append(env, "HOME="+home)
	}
	return env, nil
}

// rlimitNames are the resources --ulimit accepts.
var rlimitNames = []string{
	"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
}

// buildRlimits turns --ulimit values into rlimits and adds the default
// RLIMIT_NOFILE unless one was given.
//
// Explicit values are passed as given, even above berth's own hard limit:
// the runtime, running as root with CAP_SYS_RESOURCE, may raise it (as
// Docker allows). Without that capability such a value is refused here,
// with the limit that would work. The default is the same for every
// caller: only clamped to the kernel's fs.nr_open, and, without
// CAP_SYS_RESOURCE, to berth's own hard limit (its soft limit with it).
func buildRlimits(ulimits []Ulimit, h hostInfo) ([]specs.POSIXRlimit, error) {
	out := make([]specs.POSIXRlimit, 0, len(ulimits)+1)
	for _, u := range ulimits {
		name := strings.TrimPrefix(strings.ToLower(u.Name), "rlimit_")
		if !slices.Contains(rlimitNames, name) {
			return nil, errdefs.InvalidArgument("invalid --ulimit name %q: use one of %s", u.Name, strings.Join(rlimitNames, ", "))
		}
		if u.Soft > u.Hard {
			return nil, errdefs.InvalidArgument("invalid --ulimit %s=%d:%d: the soft limit must not exceed the hard limit", name, u.Soft, u.Hard)
		}
		typ := "RLIMIT_" + strings.ToUpper(name)
		if slices.ContainsFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == typ }) {
			return nil, errdefs.InvalidArgument("--ulimit %s is given twice", name)
		}
		if hostHard, err := h.rlimitHard(name); err == nil && u.Hard > hostHard {
			if _, eff, err := h.ownCapabilities(); err == nil && !slices.Contains(eff, "CAP_SYS_RESOURCE") {
				return nil, errdefs.InvalidArgument("--ulimit %s=%d:%d exceeds the host's hard limit %d, and berth lacks CAP_SYS_RESOURCE to raise it: use a hard limit of at most %d", name, u.Soft, u.Hard, hostHard, hostHard)
			}
		}
		out = append(out, specs.POSIXRlimit{Type: typ, Soft: u.Soft, Hard: u.Hard})
	}
	if !slices.ContainsFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == "RLIMIT_NOFILE" }) {
		soft, hard := uint64(defaultNofileSoft), uint64(defaultNofileHard)
		if nrOpen, err := h.nrOpen(); err == nil {
			hard = min(hard, nrOpen)
		}
		if _, eff, err := h.ownCapabilities(); err != nil || !slices.Contains(eff, "CAP_SYS_RESOURCE") {
			if hostHard, err := h.rlimitHard("nofile"); err == nil {
				hard = min(hard, hostHard)
			}
		}
		soft = min(soft, hard)
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: soft, Hard: hard})
	}
	return out, nil
}

// Docker's default mounts, in its order. /sys and /sys/fs/cgroup are
// writable for privileged containers (which have their own cgroup
// namespace here).
func defaultMounts(shmSize int64, privileged bool) []specs.Mount {
	if shmSize == 0 {
		shmSize = 64 << 20
	}
	sysMode := "ro"
	if privileged {
		sysMode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysMode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{sysMode, "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

var propagations = []string{"private", "rprivate", "shared", "rshared", "slave", "rslave"}

// buildMounts returns Docker's default mounts not overridden by the user,
// followed by the engine's /etc files, the --init binary and the user's
// mounts, these last sorted so that a parent directory is mounted before
// what is mounted inside it (stable: equal depths keep their order).
func buildMounts(opts SpecOptions) ([]specs.Mount, error) {
	userDest := make(map[string]bool, len(opts.Mounts))
	extra := make([]specs.Mount, 0, len(opts.Mounts)+4)
	for i, m := range opts.Mounts {
		where := fmt.Sprintf("mount %d (%s on %s)", i+1, m.Source, m.Destination)
		dest := path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return nil, errdefs.InvalidArgument("%s: the destination must be an absolute path in the container", where)
		}
		if dest == "/" {
			return nil, errdefs.InvalidArgument("%s: the destination cannot be \"/\"", where)
		}
		if userDest[dest] {
			return nil, errdefs.InvalidArgument("%s: duplicate mount point %s; give each destination once", where, dest)
		}
		userDest[dest] = true
		if slices.Contains(m.Options, "") {
			return nil, errdefs.InvalidArgument("%s: empty mount option", where)
		}
		switch m.Type {
		case "bind", "":
			if !path.IsAbs(m.Source) {
				return nil, errdefs.InvalidArgument("%s: a bind mount's source must be an absolute host path", where)
			}
			o := make([]string, 0, len(m.Options)+2)
			if !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
				o = append(o, "rbind")
			}
			o = append(o, m.Options...)
			if !slices.ContainsFunc(m.Options, func(s string) bool { return slices.Contains(propagations, s) }) {
				o = append(o, "rprivate")
			}
			extra = append(extra, specs.Mount{Destination: dest, Type: "bind", Source: m.Source, Options: o})
		case "tmpfs":
			extra = append(extra, specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: slices.Clone(m.Options)})
		default:
			return nil, errdefs.InvalidArgument("%s: unsupported mount type %q; use \"bind\" or \"tmpfs\"", where, m.Type)
		}
	}

	var out []specs.Mount
	for _, m := range defaultMounts(opts.ShmSize, opts.Privileged) {
		if userDest[m.Destination] || (userDest["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		out = append(out, m)
	}

	etcMode := "rw"
	if opts.ReadOnlyRootfs {
		etcMode = "ro"
	}
	for _, f := range []struct{ src, dest string }{
		{opts.ResolvConfPath, "/etc/resolv.conf"},
		{opts.HostnamePath, "/etc/hostname"},
		{opts.HostsPath, "/etc/hosts"},
	} {
		if f.src == "" || userDest[f.dest] {
			continue
		}
		if !path.IsAbs(f.src) {
			return nil, errdefs.InvalidArgument("%s source %q must be an absolute host path", f.dest, f.src)
		}
		extra = append(extra, specs.Mount{Destination: f.dest, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate", etcMode}})
	}
	if opts.InitPath != "" && !userDest[InitDestination] {
		extra = append(extra, specs.Mount{Destination: InitDestination, Type: "bind", Source: opts.InitPath, Options: []string{"bind", "ro"}})
	}
	sort.SliceStable(extra, func(i, j int) bool { return depth(extra[i].Destination) < depth(extra[j].Destination) })
	return append(out, extra...), nil
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// defaultDeviceRules is the device cgroup of a non-privileged container:
// deny everything, allow mknod of any node (using one still needs a rule),
// and allow the devices runc creates in /dev plus /dev/pts/*, the console
// and /dev/net/tun. These are Docker's rules together with those runc
// appends on its own, written out so every runtime enforces the same set.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = &major
		}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev("c", -1, -1, "m"),    // mknod of any char device
		dev("b", -1, -1, "m"),    // mknod of any block device
		dev("c", 1, 3, "rwm"),    // /dev/null
		dev("c", 1, 5, "rwm"),    // /dev/zero
		dev("c", 1, 7, "rwm"),    // /dev/full
		dev("c", 1, 8, "rwm"),    // /dev/random
		dev("c", 1, 9, "rwm"),    // /dev/urandom
		dev("c", 5, 0, "rwm"),    // /dev/tty
		dev("c", 5, 1, "rwm"),    // /dev/console
		dev("c", 5, 2, "rwm"),    // /dev/ptmx
		dev("c", 136, -1, "rwm"), // /dev/pts/*
		dev("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

func defaultMaskedPaths() []string {
	return []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts", // masked by Docker since 28.x (GHSA-6fw5-f8r9-fgfm)
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

func defaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// seccompFor returns the seccomp filter for profile ("" Docker's default,
// "unconfined" none, else a profile file) evaluated for caps.
func seccompFor(profile string, caps []string, arch string, scmp specs.Arch, h hostInfo) (*specs.LinuxSeccomp, error) {
	var p *SeccompProfile
	switch profile {
	case "unconfined":
		return nil, nil
	case "":
		p = DefaultSeccompProfile()
	default:
		var err error
		if p, err = LoadSeccompProfile(profile); err != nil {
			return nil, err
		}
	}
	sc, err := resolveSeccomp(p, caps, arch, scmp, h.kernel)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile %s: %w", profileName(profile), err)
	}
	return sc, nil
}

func profileName(p string) string {
	if p == "" {
		return "(default)"
	}
	return p
}

// validateSysctls accepts the sysctls that are namespaced and so affect only
// the container, like Docker and runc: IPC ones and fs.mqueue.* (the
// container has its own IPC namespace), net.* unless the network is the
// host's, and kernel.domainname (own UTS namespace).
func validateSysctls(sysctls map[string]string, hostNetwork bool) error {
	ipc := []string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		switch {
		case slices.Contains(ipc, k), strings.HasPrefix(k, "fs.mqueue."), k == "kernel.domainname":
		case strings.HasPrefix(k, "net."):
			if hostNetwork {
				return errdefs.InvalidArgument("sysctl %q cannot be set with --network host: it would change the host's network settings", k)
			}
		default:
			return errdefs.InvalidArgument("sysctl %q is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, kernel.domainname) can be set per container", k)
		}
	}
	return nil
}
