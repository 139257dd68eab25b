package runtime

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// fakeHost describes a machine for generate.
type fakeHost struct {
	nofile    uint64
	nrOpenMax uint64            // fs.nr_open; 0: the kernel's default
	hard      map[string]uint64 // other resources' hard limits; absent: unlimited
	// bounding and effective capabilities of berth; nil: all the kernel's.
	bounding, effective []string
	kern                kernelVersion
	cpus                int
	online              string
	noSwap              bool
	noBlkio             bool
	thermal             []string
	devs                []specs.LinuxDevice
}

func (h fakeHost) rlimitHard(name string) (uint64, error) {
	if name == "nofile" {
		return h.nofile, nil
	}
	if v, ok := h.hard[name]; ok {
		return v, nil
	}
	return math.MaxUint64, nil
}

func (h fakeHost) nrOpen() (uint64, error) {
	if h.nrOpenMax == 0 {
		return 1 << 20, nil
	}
	return h.nrOpenMax, nil
}

func (h fakeHost) ownCapabilities() ([]string, []string, error) {
	b, e := h.bounding, h.effective
	if b == nil {
		b = supportedCapabilities()
	}
	if e == nil {
		e = b
	}
	return b, e, nil
}

func (h fakeHost) kernel() (kernelVersion, error)        { return h.kern, nil }
func (h fakeHost) numCPU() int                           { return h.cpus }
func (h fakeHost) onlineCPUs() (string, error)           { return h.online, nil }
func (h fakeHost) swapLimitSupported() bool              { return !h.noSwap }
func (h fakeHost) blkioWeightSupported() bool            { return !h.noBlkio }
func (h fakeHost) thermalThrottlePaths() []string        { return h.thermal }
func (h fakeHost) devices() ([]specs.LinuxDevice, error) { return h.devs, nil }

func testHost() fakeHost {
	return fakeHost{nofile: 1 << 20, kern: kernelVersion{6, 1}, cpus: 4, online: "0-3"}
}

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nohome:x:1001:1001::
`

const testGroup = `root:x:0:
wheel:x:10:root
audio:x:29:alice
users:x:100:alice,nobody
alice:x:1000:
nogroup:x:65534:
`

// fakeRootfs is a root filesystem with just /etc/passwd and /etc/group.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"passwd": testPasswd, "group": testGroup} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func baseOpts(t *testing.T) SpecOptions {
	return SpecOptions{
		ID:       "c1",
		Hostname: "c1host",
		Rootfs:   fakeRootfs(t),
		Args:     []string{"sh", "-c", "true"},
		Env:      []string{"FOO=bar"},
	}
}

func mustGenerate(t *testing.T, opts SpecOptions, h hostInfo) *specs.Spec {
	t.Helper()
	s, err := generate(opts, h)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return s
}

func destinations(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func findMount(ms []specs.Mount, dest string) *specs.Mount {
	for i := range ms {
		if ms[i].Destination == dest {
			return &ms[i]
		}
	}
	return nil
}

// allowed reports whether the filter allows name unconditionally (a rule
// with no argument conditions and action ALLOW).
func allowed(sc *specs.LinuxSeccomp, name string) bool {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}

func rulesFor(sc *specs.LinuxSeccomp, name string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, r := range sc.Syscalls {
		if slices.Contains(r.Names, name) {
			out = append(out, r)
		}
	}
	return out
}

func TestGenerateDefault(t *testing.T) {
	s := mustGenerate(t, baseOpts(t), testHost())

	if s.Version != "1.0.2" {
		t.Errorf("ociVersion = %q, want 1.0.2", s.Version)
	}
	var nsTypes []string
	for _, ns := range s.Linux.Namespaces {
		nsTypes = append(nsTypes, string(ns.Type))
		if ns.Path != "" {
			t.Errorf("namespace %s has path %q", ns.Type, ns.Path)
		}
	}
	slices.Sort(nsTypes)
	if want := []string{"cgroup", "ipc", "mount", "network", "pid", "uts"}; !slices.Equal(nsTypes, want) {
		t.Errorf("namespaces = %v, want %v", nsTypes, want)
	}

	wantMounts := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
	if got := destinations(s.Mounts); !slices.Equal(got, wantMounts) {
		t.Errorf("mounts = %v, want %v", got, wantMounts)
	}
	if m := findMount(s.Mounts, "/dev/shm"); !slices.Contains(m.Options, "size=67108864") || !slices.Contains(m.Options, "mode=1777") {
		t.Errorf("/dev/shm options = %v", m.Options)
	}
	if m := findMount(s.Mounts, "/sys"); !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys options = %v, want ro", m.Options)
	}
	if m := findMount(s.Mounts, "/dev/pts"); !slices.Contains(m.Options, "newinstance") || !slices.Contains(m.Options, "gid=5") {
		t.Errorf("/dev/pts options = %v", m.Options)
	}

	p := s.Process
	if !slices.Equal(p.Args, []string{"sh", "-c", "true"}) || p.Cwd != "/" || p.Terminal {
		t.Errorf("process args/cwd/terminal = %v %q %v", p.Args, p.Cwd, p.Terminal)
	}
	wantEnv := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=c1host", "FOO=bar", "HOME=/root"}
	if !slices.Equal(p.Env, wantEnv) {
		t.Errorf("env = %v, want %v", p.Env, wantEnv)
	}
	if p.User.UID != 0 || p.User.GID != 0 || !slices.Equal(p.User.AdditionalGids, []uint32{0, 10}) {
		t.Errorf("user = %+v, want 0:0 with groups [0 10]", p.User)
	}
	c := p.Capabilities
	if !slices.Equal(c.Bounding, DefaultCapabilities()) || !slices.Equal(c.Effective, DefaultCapabilities()) ||
		!slices.Equal(c.Permitted, DefaultCapabilities()) || len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("capabilities = %+v", c)
	}
	if !slices.Equal(p.Rlimits, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}}) {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
	if p.NoNewPrivileges || p.OOMScoreAdj != nil {
		t.Errorf("noNewPrivileges/oomScoreAdj = %v/%v", p.NoNewPrivileges, p.OOMScoreAdj)
	}

	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.MaskedPaths, "/sys/firmware") ||
		!slices.Contains(s.Linux.MaskedPaths, "/sys/devices/virtual/powercap") {
		t.Errorf("masked paths = %v", s.Linux.MaskedPaths)
	}
	if !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
		t.Errorf("readonly paths = %v", s.Linux.ReadonlyPaths)
	}

	devs := s.Linux.Resources.Devices
	if devs[0].Allow || devs[0].Access != "rwm" || devs[0].Type != "" {
		t.Errorf("first device rule = %+v, want deny all", devs[0])
	}
	hasDev := func(typ string, major, minor int64) bool {
		return slices.ContainsFunc(devs, func(d specs.LinuxDeviceCgroup) bool {
			return d.Allow && d.Type == typ && d.Major != nil && *d.Major == major &&
				((minor < 0 && d.Minor == nil) || (d.Minor != nil && *d.Minor == minor))
		})
	}
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}, {10, 200}} {
		if !hasDev("c", d[0], d[1]) {
			t.Errorf("device c %d:%d not allowed", d[0], d[1])
		}
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("linux.devices = %v, want none (the runtime creates the defaults)", s.Linux.Devices)
	}

	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != 1 {
		t.Fatalf("seccomp = %+v, want default ERRNO(EPERM)", sc)
	}
	if _, arch := nativeArch(); arch == specs.ArchX86_64 {
		if !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
			t.Errorf("architectures = %v", sc.Architectures)
		}
	}
	for _, name := range []string{"read", "write", "execve", "ptrace"} {
		if !allowed(sc, name) {
			t.Errorf("%s not allowed by the default profile", name)
		}
	}
	for _, name := range []string{"mount", "unshare", "setns", "reboot", "kexec_load", "add_key"} {
		if allowed(sc, name) {
			t.Errorf("%s allowed without CAP_SYS_ADMIN", name)
		}
	}
	cl := rulesFor(sc, "clone")
	if len(cl) != 1 || len(cl[0].Args) != 1 || cl[0].Args[0].Op != specs.OpMaskedEqual || cl[0].Args[0].Value != 0x7e020000 {
		t.Errorf("clone rules = %+v, want the namespace-flag mask only", cl)
	}
	c3 := rulesFor(sc, "clone3")
	if len(c3) != 1 || c3[0].Action != specs.ActErrno || *c3[0].ErrnoRet != 38 {
		t.Errorf("clone3 rules = %+v, want ERRNO(ENOSYS)", c3)
	}
	if n := len(rulesFor(sc, "personality")); n != 5 {
		t.Errorf("personality has %d rules, want 5", n)
	}

	// The spec survives a JSON round trip (what the runtime reads).
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"ociVersion":"1.0.2"`) {
		t.Errorf("encoded spec lacks ociVersion 1.0.2")
	}
}

func TestGenerateKernelDependentRules(t *testing.T) {
	h := testHost()
	h.kern = kernelVersion{4, 4}
	s := mustGenerate(t, baseOpts(t), h)
	if allowed(s.Linux.Seccomp, "ptrace") {
		t.Error("ptrace allowed on kernel 4.4; Docker allows it from 4.8 only")
	}
}

func TestGenerateThermalThrottleMasked(t *testing.T) {
	h := testHost()
	h.thermal = []string{"/sys/devices/system/cpu/cpu0/thermal_throttle"}
	s := mustGenerate(t, baseOpts(t), h)
	if !slices.Contains(s.Linux.MaskedPaths, h.thermal[0]) {
		t.Errorf("masked paths %v lack %s", s.Linux.MaskedPaths, h.thermal[0])
	}
}

func TestGeneratePrivileged(t *testing.T) {
	h := testHost()
	h.devs = []specs.LinuxDevice{{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0}}
	opts := baseOpts(t)
	opts.Privileged = true
	opts.CapDrop = []string{"CHOWN"} // ignored, like Docker
	s := mustGenerate(t, opts, h)

	if s.Linux.Seccomp != nil {
		t.Errorf("seccomp = %+v, want none", s.Linux.Seccomp)
	}
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("masked/readonly = %v / %v, want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if want := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}; !slices.EqualFunc(s.Linux.Resources.Devices, want, func(a, b specs.LinuxDeviceCgroup) bool {
		return a.Allow == b.Allow && a.Access == b.Access && a.Type == b.Type && a.Major == nil && a.Minor == nil
	}) {
		t.Errorf("device rules = %+v, want allow all", s.Linux.Resources.Devices)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/loop0" {
		t.Errorf("devices = %+v, want the host's", s.Linux.Devices)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, supportedCapabilities()) ||
		!slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN") ||
		!slices.Contains(s.Process.Capabilities.Effective, "CAP_CHOWN") {
		t.Errorf("capabilities = %v, want all", s.Process.Capabilities.Bounding)
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := findMount(s.Mounts, dest); slices.Contains(m.Options, "ro") {
			t.Errorf("%s options = %v, want rw", dest, m.Options)
		}
	}
}

func TestGenerateCapabilities(t *testing.T) {
	all := supportedCapabilities()
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	tests := []struct {
		name       string
		add, drop  []string
		user       string
		want       []string // bounding
		effective  []string
		sysAdminSC bool // seccomp rules of CAP_SYS_ADMIN present
		err        string
	}{
		{name: "default", want: DefaultCapabilities(), effective: DefaultCapabilities()},
		{name: "drop one", drop: []string{"CHOWN"}, want: without(DefaultCapabilities(), "CAP_CHOWN"), effective: without(DefaultCapabilities(), "CAP_CHOWN")},
		{name: "add lower case", add: []string{"net_admin"}, want: append(DefaultCapabilities(), "CAP_NET_ADMIN"), effective: append(DefaultCapabilities(), "CAP_NET_ADMIN")},
		{name: "add with prefix", add: []string{"CAP_SYS_ADMIN"}, want: append(DefaultCapabilities(), "CAP_SYS_ADMIN"), effective: append(DefaultCapabilities(), "CAP_SYS_ADMIN"), sysAdminSC: true},
		{name: "add existing", add: []string{"chown"}, want: DefaultCapabilities(), effective: DefaultCapabilities()},
		{name: "drop all add one", drop: []string{"ALL"}, add: []string{"chown"}, want: []string{"CAP_CHOWN"}, effective: []string{"CAP_CHOWN"}},
		{name: "drop all", drop: []string{"all"}, want: nil, effective: nil},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"NET_RAW"}, want: without(all, "CAP_NET_RAW"), effective: without(all, "CAP_NET_RAW"), sysAdminSC: true},
		{name: "non-root gets bounding only", user: "nobody", want: DefaultCapabilities(), effective: nil},
		{name: "unknown add", add: []string{"NET_FOO"}, err: `unknown capability "NET_FOO" in --cap-add`},
		{name: "unknown drop", drop: []string{"CAP_BAR"}, err: `unknown capability "CAP_BAR" in --cap-drop`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.CapAdd, opts.CapDrop, opts.User = tc.add, tc.drop, tc.user
			s, err := generate(opts, testHost())
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			if !slices.Equal(c.Bounding, tc.want) {
				t.Errorf("bounding = %v, want %v", c.Bounding, tc.want)
			}
			if !slices.Equal(c.Effective, tc.effective) || !slices.Equal(c.Permitted, tc.effective) {
				t.Errorf("effective/permitted = %v / %v, want %v", c.Effective, c.Permitted, tc.effective)
			}
			sc := s.Linux.Seccomp
			if got := allowed(sc, "mount") && allowed(sc, "unshare") && allowed(sc, "setns") && allowed(sc, "clone"); got != tc.sysAdminSC {
				t.Errorf("CAP_SYS_ADMIN syscalls allowed = %v, want %v", got, tc.sysAdminSC)
			}
			// The clone restriction and clone3's ENOSYS apply exactly when
			// CAP_SYS_ADMIN is missing.
			if restricted := len(rulesFor(sc, "clone3")) > 0 && !allowed(sc, "clone3"); restricted == tc.sysAdminSC {
				t.Errorf("clone3 restricted = %v with CAP_SYS_ADMIN = %v", restricted, tc.sysAdminSC)
			}
		})
	}
}

func TestGenerateCapabilitySeccompRules(t *testing.T) {
	tests := []struct {
		cap      string
		syscalls []string
	}{
		{"SYS_PTRACE", []string{"kcmp", "pidfd_getfd", "process_madvise"}},
		{"SYS_TIME", []string{"settimeofday", "clock_settime"}},
		{"SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
		{"SYS_BOOT", []string{"reboot"}},
		{"SYS_NICE", []string{"mbind", "set_mempolicy"}},
		{"SYS_RAWIO", []string{"iopl", "ioperm"}},
		{"SYS_PACCT", []string{"acct"}},
		{"SYSLOG", []string{"syslog"}},
		{"DAC_READ_SEARCH", []string{"open_by_handle_at"}},
		{"BPF", []string{"bpf"}},
		{"PERFMON", []string{"perf_event_open"}},
	}
	for _, tc := range tests {
		t.Run(tc.cap, func(t *testing.T) {
			without := mustGenerate(t, baseOpts(t), testHost()).Linux.Seccomp
			opts := baseOpts(t)
			opts.CapAdd = []string{tc.cap}
			with := mustGenerate(t, opts, testHost()).Linux.Seccomp
			for _, name := range tc.syscalls {
				if allowed(without, name) {
					t.Errorf("%s allowed without CAP_%s", name, tc.cap)
				}
				if !allowed(with, name) {
					t.Errorf("%s not allowed with CAP_%s", name, tc.cap)
				}
			}
		})
	}
}

func TestGenerateReadOnlyRootfs(t *testing.T) {
	opts := baseOpts(t)
	opts.ReadOnlyRootfs = true
	opts.HostsPath, opts.HostnamePath, opts.ResolvConfPath = "/run/c1/hosts", "/run/c1/hostname", "/run/c1/resolv.conf"
	s := mustGenerate(t, opts, testHost())
	if !s.Root.Readonly || s.Root.Path != opts.Rootfs {
		t.Errorf("root = %+v", s.Root)
	}
	for _, dest := range []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} {
		m := findMount(s.Mounts, dest)
		if m == nil || m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "rprivate", "ro"}) {
			t.Errorf("%s mount = %+v, want a read-only rbind", dest, m)
		}
	}

	opts.ReadOnlyRootfs = false
	s = mustGenerate(t, opts, testHost())
	if s.Root.Readonly {
		t.Error("root read-only without ReadOnlyRootfs")
	}
	if m := findMount(s.Mounts, "/etc/hosts"); !slices.Equal(m.Options, []string{"rbind", "rprivate", "rw"}) {
		t.Errorf("/etc/hosts options = %v, want rw", m.Options)
	}
}

func TestGenerateMounts(t *testing.T) {
	tests := []struct {
		name   string
		mounts []Mount
		init   string
		check  func(t *testing.T, s *specs.Spec)
		err    string
	}{
		{
			name:   "bind gets rbind and rprivate",
			mounts: []Mount{{Type: "bind", Source: "/srv/data", Destination: "/data", Options: []string{"ro"}}},
			check: func(t *testing.T, s *specs.Spec) {
				m := findMount(s.Mounts, "/data")
				if m == nil || m.Type != "bind" || m.Source != "/srv/data" || !slices.Equal(m.Options, []string{"rbind", "ro", "rprivate"}) {
					t.Errorf("mount = %+v", m)
				}
			},
		},
		{
			name:   "bind keeps given propagation and non-recursive bind",
			mounts: []Mount{{Type: "bind", Source: "/srv", Destination: "/srv", Options: []string{"bind", "rshared"}}},
			check: func(t *testing.T, s *specs.Spec) {
				if m := findMount(s.Mounts, "/srv"); !slices.Equal(m.Options, []string{"bind", "rshared"}) {
					t.Errorf("options = %v", m.Options)
				}
			},
		},
		{
			name:   "tmpfs",
			mounts: []Mount{{Type: "tmpfs", Destination: "/run", Options: []string{"size=65536k", "mode=1777"}}},
			check: func(t *testing.T, s *specs.Spec) {
				m := findMount(s.Mounts, "/run")
				if m == nil || m.Type != "tmpfs" || m.Source != "tmpfs" || !slices.Equal(m.Options, []string{"size=65536k", "mode=1777"}) {
					t.Errorf("mount = %+v", m)
				}
			},
		},
		{
			name:   "user mount replaces default /dev/shm",
			mounts: []Mount{{Type: "bind", Source: "/dev/shm", Destination: "/dev/shm"}},
			check: func(t *testing.T, s *specs.Spec) {
				var n int
				for _, m := range s.Mounts {
					if m.Destination == "/dev/shm" {
						n++
						if m.Type != "bind" {
							t.Errorf("/dev/shm is %s, want the user's bind", m.Type)
						}
					}
				}
				if n != 1 {
					t.Errorf("%d mounts on /dev/shm", n)
				}
			},
		},
		{
			name:   "user /dev replaces all default /dev mounts",
			mounts: []Mount{{Type: "bind", Source: "/dev", Destination: "/dev"}},
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}
				if got := destinations(s.Mounts); !slices.Equal(got, want) {
					t.Errorf("mounts = %v, want %v", got, want)
				}
			},
		},
		{
			name:   "user mount replaces /etc/hosts",
			mounts: []Mount{{Type: "bind", Source: "/my/hosts", Destination: "/etc/hosts"}},
			check: func(t *testing.T, s *specs.Spec) {
				if m := findMount(s.Mounts, "/etc/hosts"); m.Source != "/my/hosts" {
					t.Errorf("/etc/hosts from %s", m.Source)
				}
			},
		},
		{
			name: "parents before children",
			mounts: []Mount{
				{Type: "bind", Source: "/a", Destination: "/x/y/z"},
				{Type: "bind", Source: "/b", Destination: "/x"},
				{Type: "tmpfs", Destination: "/x/y"},
			},
			check: func(t *testing.T, s *specs.Spec) {
				got := destinations(s.Mounts)
				// Equal depths keep their order: user mounts, then the /etc files.
				want := []string{"/x", "/x/y", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/x/y/z"}
				got = slices.DeleteFunc(got, func(d string) bool { return slices.Contains(destinations(defaultMounts(0, false)), d) })
				if !slices.Equal(got, want) {
					t.Errorf("mount order = %v, want %v", got, want)
				}
			},
		},
		{
			name: "init",
			init: "/usr/libexec/berth/init",
			check: func(t *testing.T, s *specs.Spec) {
				m := findMount(s.Mounts, InitDestination)
				if m == nil || m.Source != "/usr/libexec/berth/init" || !slices.Contains(m.Options, "ro") {
					t.Errorf("init mount = %+v", m)
				}
				if want := []string{InitDestination, "--", "sh", "-c", "true"}; !slices.Equal(s.Process.Args, want) {
					t.Errorf("args = %v, want %v", s.Process.Args, want)
				}
			},
		},
		{name: "relative destination", mounts: []Mount{{Type: "bind", Source: "/a", Destination: "data"}}, err: "absolute path in the container"},
		{name: "root destination", mounts: []Mount{{Type: "bind", Source: "/a", Destination: "/"}}, err: `cannot be "/"`},
		{name: "relative source", mounts: []Mount{{Type: "bind", Source: "a", Destination: "/a"}}, err: "absolute host path"},
		{name: "duplicate", mounts: []Mount{{Type: "tmpfs", Destination: "/a"}, {Type: "tmpfs", Destination: "/a/"}}, err: "duplicate mount point /a"},
		{name: "unknown type", mounts: []Mount{{Type: "nfs", Source: "srv:/x", Destination: "/a"}}, err: `unsupported mount type "nfs"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.Mounts, opts.InitPath = tc.mounts, tc.init
			opts.HostsPath, opts.HostnamePath, opts.ResolvConfPath = "/run/c1/hosts", "/run/c1/hostname", "/run/c1/resolv.conf"
			s, err := generate(opts, testHost())
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestGenerateShmSize(t *testing.T) {
	opts := baseOpts(t)
	opts.ShmSize = 128 << 20
	s := mustGenerate(t, opts, testHost())
	if m := findMount(s.Mounts, "/dev/shm"); !slices.Contains(m.Options, "size=134217728") {
		t.Errorf("/dev/shm options = %v", m.Options)
	}
}

func TestGenerateNetworkModes(t *testing.T) {
	tests := []struct {
		mode     string
		wantNet  bool
		wantPath string
		err      string
	}{
		{mode: "none", wantNet: true},
		{mode: "", wantNet: true},
		{mode: "host", wantNet: false},
		{mode: "ns:/run/netns/x", wantNet: true, wantPath: "/run/netns/x"},
		{mode: "ns:relative", err: "must be absolute"},
		{mode: "bridge", err: `unknown network mode "bridge"`},
	}
	for _, tc := range tests {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			opts := baseOpts(t)
			opts.NetworkMode = tc.mode
			s, err := generate(opts, testHost())
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
			if (i >= 0) != tc.wantNet {
				t.Fatalf("network namespace present = %v, want %v", i >= 0, tc.wantNet)
			}
			if i >= 0 && s.Linux.Namespaces[i].Path != tc.wantPath {
				t.Errorf("path = %q, want %q", s.Linux.Namespaces[i].Path, tc.wantPath)
			}
		})
	}
}

func TestGenerateEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		tty  bool
		user string
		want []string
		err  string
	}{
		{name: "defaults", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=h", "HOME=/root"}},
		{name: "image PATH replaces default in place", env: []string{"A=1", "PATH=/bin"}, want: []string{"PATH=/bin", "HOSTNAME=h", "A=1", "HOME=/root"}},
		{name: "HOSTNAME and HOME overridable", env: []string{"HOSTNAME=x", "HOME=/h"}, want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=x", "HOME=/h"}},
		{name: "tty adds TERM", tty: true, want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=h", "TERM=xterm", "HOME=/root"}},
		{name: "later value wins", env: []string{"A=1", "A=2"}, want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=h", "A=2", "HOME=/root"}},
		{name: "name without value unsets", env: []string{"A=1", "A", "HOSTNAME"}, want: []string{"PATH=" + DefaultPathEnv, "HOME=/root"}},
		{name: "home of user", user: "alice", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=h", "HOME=/home/alice"}},
		{name: "home of unknown uid", user: "4242", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=h", "HOME=/"}},
		{name: "empty name", env: []string{"=x"}, err: "name before"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.Hostname, opts.Env, opts.Terminal, opts.User = "h", tc.env, tc.tty, tc.user
			s, err := generate(opts, testHost())
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Errorf("env = %v, want %v", s.Process.Env, tc.want)
			}
		})
	}
}

func TestGenerateRlimits(t *testing.T) {
	tests := []struct {
		name     string
		ulimits  []Ulimit
		hostHard uint64
		// noSysResource: berth lacks CAP_SYS_RESOURCE.
		noSysResource bool
		nrOpen        uint64
		want          []specs.POSIXRlimit
		err           string
	}{
		{name: "default", hostHard: 1 << 20, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}}},
		// Issue 8.11: the caller's shell does not matter.
		{name: "default whatever the caller's limit", hostHard: 512, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}}},
		{name: "default clamped to nr_open", hostHard: 512, nrOpen: 4096, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}},
		{name: "default clamped to own hard without CAP_SYS_RESOURCE", hostHard: 4096, noSysResource: true, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}},
		{name: "default soft clamped too", hostHard: 512, noSysResource: true, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 512}}},
		{
			name: "explicit passed as given", hostHard: 4096,
			ulimits: []Ulimit{{Name: "nofile", Soft: 100000, Hard: 200000}, {Name: "nproc", Soft: 10, Hard: 20}},
			want:    []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100000, Hard: 200000}, {Type: "RLIMIT_NPROC", Soft: 10, Hard: 20}},
		},
		{
			name: "explicit other keeps default nofile", hostHard: 1 << 20,
			ulimits: []Ulimit{{Name: "CORE", Soft: 0, Hard: 0}},
			want:    []specs.POSIXRlimit{{Type: "RLIMIT_CORE"}, {Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}},
		},
		{name: "unknown", ulimits: []Ulimit{{Name: "files", Soft: 1, Hard: 1}}, err: `invalid --ulimit name "files"`},
		{name: "soft above hard", ulimits: []Ulimit{{Name: "nofile", Soft: 2, Hard: 1}}, err: "soft limit must not exceed the hard limit"},
		{name: "twice", ulimits: []Ulimit{{Name: "nofile", Soft: 1, Hard: 1}, {Name: "RLIMIT_NOFILE", Soft: 1, Hard: 1}}, err: "given twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.Ulimits = tc.ulimits
			h := testHost()
			h.nofile, h.nrOpenMax = tc.hostHard, tc.nrOpen
			if tc.noSysResource {
				h.effective = slices.DeleteFunc(supportedCapabilities(), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
			}
			s, err := generate(opts, h)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Rlimits, tc.want) {
				t.Errorf("rlimits = %+v, want %+v", s.Process.Rlimits, tc.want)
			}
		})
	}
}

func TestGenerateResources(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name  string
		res   Resources
		host  func(*fakeHost)
		check func(t *testing.T, r *specs.LinuxResources)
		err   string
	}{
		{
			name: "none",
			check: func(t *testing.T, r *specs.LinuxResources) {
				if r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil {
					t.Errorf("resources = %+v, want only devices", r)
				}
			},
		},
		{
			name: "memory gets as much swap",
			res:  Resources{Memory: 64 * mib},
			check: func(t *testing.T, r *specs.LinuxResources) {
				if *r.Memory.Limit != 64*mib || *r.Memory.Swap != 128*mib {
					t.Errorf("limit/swap = %d/%d", *r.Memory.Limit, *r.Memory.Swap)
				}
			},
		},
		{
			name: "unlimited swap",
			res:  Resources{Memory: 64 * mib, MemorySwap: -1},
			check: func(t *testing.T, r *specs.LinuxResources) {
				if *r.Memory.Swap != -1 {
					t.Errorf("swap = %d, want -1", *r.Memory.Swap)
				}
			},
		},
		{
			name: "memory plus swap as given",
			res:  Resources{Memory: 64 * mib, MemorySwap: 100 * mib, MemoryReservation: 32 * mib, OOMKillDisable: true},
			check: func(t *testing.T, r *specs.LinuxResources) {
				m := r.Memory
				if *m.Swap != 100*mib || *m.Reservation != 32*mib || !*m.DisableOOMKiller {
					t.Errorf("memory = %+v", m)
				}
			},
		},
		{
			name: "no swap accounting drops swap",
			res:  Resources{Memory: 64 * mib, MemorySwap: 100 * mib},
			host: func(h *fakeHost) { h.noSwap = true },
			check: func(t *testing.T, r *specs.LinuxResources) {
				if r.Memory.Swap != nil || *r.Memory.Limit != 64*mib {
					t.Errorf("memory = %+v", r.Memory)
				}
			},
		},
		{
			name: "cpus",
			res:  Resources{NanoCPUs: 1_500_000_000, CPUShares: 512, CpusetCpus: "0-1,3"},
			check: func(t *testing.T, r *specs.LinuxResources) {
				c := r.CPU
				if *c.Period != 100000 || *c.Quota != 150000 || *c.Shares != 512 || c.Cpus != "0-1,3" {
					t.Errorf("cpu = %+v", c)
				}
			},
		},
		{
			name: "quota and period",
			res:  Resources{CPUQuota: 50000, CPUPeriod: 200000},
			check: func(t *testing.T, r *specs.LinuxResources) {
				if *r.CPU.Period != 200000 || *r.CPU.Quota != 50000 {
					t.Errorf("cpu = %+v", r.CPU)
				}
			},
		},
		{
			name: "pids and blkio",
			res:  Resources{PidsLimit: 100, BlkioWeight: 300},
			check: func(t *testing.T, r *specs.LinuxResources) {
				if *r.Pids.Limit != 100 || *r.BlockIO.Weight != 300 {
					t.Errorf("pids/blkio = %+v/%+v", r.Pids, r.BlockIO)
				}
			},
		},
		{
			name: "blkio weight dropped where unsupported",
			res:  Resources{BlkioWeight: 300},
			host: func(h *fakeHost) { h.noBlkio = true },
			check: func(t *testing.T, r *specs.LinuxResources) {
				if r.BlockIO != nil {
					t.Errorf("blkio = %+v", r.BlockIO)
				}
			},
		},
		{
			name: "pids unlimited",
			res:  Resources{PidsLimit: -1},
			check: func(t *testing.T, r *specs.LinuxResources) {
				if r.Pids != nil {
					t.Errorf("pids = %+v", r.Pids)
				}
			},
		},
		{name: "swap without memory", res: Resources{MemorySwap: 100 * mib}, err: "--memory-swap needs --memory"},
		{name: "swap below memory", res: Resources{Memory: 64 * mib, MemorySwap: 32 * mib}, err: "must be at least --memory"},
		{name: "tiny memory", res: Resources{Memory: 1 * mib}, err: "minimum memory limit is 6MB"},
		{name: "reservation above memory", res: Resources{Memory: 64 * mib, MemoryReservation: 128 * mib}, err: "cannot exceed --memory"},
		{name: "too many cpus", res: Resources{NanoCPUs: 5e9}, err: "only 4 CPUs available"},
		{name: "cpus and quota", res: Resources{NanoCPUs: 1e9, CPUQuota: 1000}, err: "cannot be combined"},
		{name: "cpuset offline", res: Resources{CpusetCpus: "2-5"}, err: "CPU 4 is not available"},
		{name: "cpuset syntax", res: Resources{CpusetCpus: "a-b"}, err: "invalid --cpuset-cpus"},
		{name: "period range", res: Resources{CPUPeriod: 10}, err: "between 1000 and 1000000"},
		{name: "blkio range", res: Resources{BlkioWeight: 5}, err: "between 10 and 1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.Resources = tc.res
			opts.CgroupsPath = "/berth/c1"
			h := testHost()
			if tc.host != nil {
				tc.host(&h)
			}
			s, err := generate(opts, h)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Linux.CgroupsPath != "/berth/c1" {
				t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
			}
			tc.check(t, s.Linux.Resources)
		})
	}
}

func TestGenerateMisc(t *testing.T) {
	opts := baseOpts(t)
	adj := -500
	opts.OOMScoreAdj = &adj
	opts.NoNewPrivs = true
	opts.Cwd = "/work"
	opts.Terminal, opts.ConsoleWidth, opts.ConsoleHeight = true, 120, 40
	opts.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}
	opts.Annotations = map[string]string{"org.example": "x"}
	opts.MaskedPaths = []string{"/proc/extra"}
	opts.ReadonlyPaths = []string{"/proc/sys"} // already there: not repeated
	s := mustGenerate(t, opts, testHost())
	p := s.Process
	if *p.OOMScoreAdj != -500 || !p.NoNewPrivileges || p.Cwd != "/work" || !p.Terminal ||
		p.ConsoleSize == nil || p.ConsoleSize.Width != 120 || p.ConsoleSize.Height != 40 {
		t.Errorf("process = %+v", p)
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || s.Annotations["org.example"] != "x" || s.Hostname != "c1host" {
		t.Errorf("sysctl/annotations/hostname = %v/%v/%q", s.Linux.Sysctl, s.Annotations, s.Hostname)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/extra") {
		t.Errorf("masked paths lack /proc/extra: %v", s.Linux.MaskedPaths)
	}
	if n := len(slices.DeleteFunc(slices.Clone(s.Linux.ReadonlyPaths), func(p string) bool { return p != "/proc/sys" })); n != 1 {
		t.Errorf("/proc/sys appears %d times in readonly paths", n)
	}
}

func TestGenerateInvalid(t *testing.T) {
	adj := 2000
	tests := []struct {
		name string
		mod  func(*SpecOptions)
		err  string
	}{
		{name: "no command", mod: func(o *SpecOptions) { o.Args = nil }, err: "no command specified"},
		{name: "relative rootfs", mod: func(o *SpecOptions) { o.Rootfs = "rootfs" }, err: "must be an absolute path"},
		{name: "relative cwd", mod: func(o *SpecOptions) { o.Cwd = "work" }, err: `working directory "work" is invalid`},
		{name: "oom score", mod: func(o *SpecOptions) { o.OOMScoreAdj = &adj }, err: "between -1000 and 1000"},
		{name: "negative shm", mod: func(o *SpecOptions) { o.ShmSize = -1 }, err: "--shm-size"},
		{name: "relative init", mod: func(o *SpecOptions) { o.InitPath = "tini" }, err: "init binary"},
		{name: "host sysctl", mod: func(o *SpecOptions) { o.Sysctls = map[string]string{"kernel.panic": "1"} }, err: `sysctl "kernel.panic" is not allowed`},
		{name: "net sysctl on host network", mod: func(o *SpecOptions) {
			o.NetworkMode = "host"
			o.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, err: "--network host"},
		{name: "missing user", mod: func(o *SpecOptions) { o.User = "ghost" }, err: "unable to find user ghost: no matching entries in passwd file"},
		{name: "missing seccomp profile", mod: func(o *SpecOptions) { o.SeccompProfile = "/nonexistent/profile.json" }, err: "cannot read seccomp profile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			tc.mod(&opts)
			_, err := generate(opts, testHost())
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want invalid argument containing %q", err, tc.err)
			}
		})
	}
}

func TestGenerateLiveHost(t *testing.T) {
	// The exported entry point works against this machine.
	s, err := Generate(baseOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil || len(s.Process.Rlimits) != 1 {
		t.Errorf("spec = %+v", s)
	}
}

func TestWriteBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	s := mustGenerate(t, baseOpts(t), testHost())
	if err := WriteBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	s.Hostname = "second"
	if err := WriteBundle(dir, s); err != nil { // replaces
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "config.json" {
		t.Fatalf("bundle holds %v, want only config.json", entries)
	}
	info, _ := entries[0].Info()
	if info.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode = %v, want 0600", info.Mode().Perm())
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Hostname != "second" || back.Version != "1.0.2" || back.Process.Args[0] != "sh" {
		t.Errorf("decoded = %+v", back)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "0", want: []int{0}},
		{in: "0-3", want: []int{0, 1, 2, 3}},
		{in: "0-1,4,6-7", want: []int{0, 1, 4, 6, 7}},
		{in: "", want: nil},
		{in: "3-1", err: true},
		{in: "x", err: true},
		{in: "-1", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseCPUList(tc.in)
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
				t.Errorf("parseCPUList(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

// berth cannot give what it does not hold: its own bounding set limits ALL
// and --privileged, drops default capabilities it lacks, and makes adding
// a missing one an error.
func TestGenerateCapabilitiesBeyondOwnBoundingSet(t *testing.T) {
	h := testHost()
	h.bounding = slices.DeleteFunc(supportedCapabilities(), func(c string) bool {
		return c == "CAP_SYS_RESOURCE" || c == "CAP_AUDIT_WRITE"
	})
	tests := []struct {
		name       string
		add        []string
		privileged bool
		err        string
	}{
		{name: "default"},
		{name: "privileged", privileged: true},
		{name: "add all", add: []string{"ALL"}},
		{name: "add held", add: []string{"NET_ADMIN"}},
		{name: "add missing", add: []string{"SYS_RESOURCE"}, err: "cannot add capability CAP_SYS_RESOURCE: berth itself does not hold it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.CapAdd, opts.Privileged = tc.add, tc.privileged
			s, err := generate(opts, h)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range s.Process.Capabilities.Bounding {
				if !slices.Contains(h.bounding, c) {
					t.Errorf("container gets %s, which berth lacks", c)
				}
			}
			if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_CHOWN") {
				t.Errorf("CAP_CHOWN missing: %v", s.Process.Capabilities.Bounding)
			}
		})
	}
}

func TestGenerateRlimitAboveHostNeedsSysResource(t *testing.T) {
	h := testHost()
	h.nofile = 20000
	h.hard = map[string]uint64{"nproc": 100}
	h.effective = slices.DeleteFunc(supportedCapabilities(), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
	opts := baseOpts(t)
	opts.Ulimits = []Ulimit{{Name: "nofile", Soft: 30000, Hard: 30000}}
	_, err := generate(opts, h)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "exceeds the host's hard limit 20000") {
		t.Fatalf("err = %v", err)
	}
	opts.Ulimits = []Ulimit{{Name: "nproc", Soft: 50, Hard: 200}}
	if _, err := generate(opts, h); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "at most 100") {
		t.Fatalf("err = %v", err)
	}
	opts.Ulimits = []Ulimit{{Name: "nofile", Soft: 100, Hard: 20000}} // at the limit: fine
	if _, err := generate(opts, h); err != nil {
		t.Fatal(err)
	}
	h.effective = nil // holds CAP_SYS_RESOURCE: passed as given
	opts.Ulimits = []Ulimit{{Name: "nofile", Soft: 30000, Hard: 30000}}
	if s, err := generate(opts, h); err != nil || s.Process.Rlimits[0].Hard != 30000 {
		t.Fatalf("generate = %v", err)
	}
}
