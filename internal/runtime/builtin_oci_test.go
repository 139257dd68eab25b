package runtime

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestCompileSpecRefusesWhatWouldReachTheHost: settings whose namespace the
// spec does not give the container would change the host; they are
// refused, as runc refuses them.
func TestCompileSpecRefusesWhatWouldReachTheHost(t *testing.T) {
	without := func(s *specs.Spec, typ specs.LinuxNamespaceType) {
		var keep []specs.LinuxNamespace
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != typ {
				keep = append(keep, ns)
			}
		}
		s.Linux.Namespaces = keep
	}
	tests := []struct {
		name string
		edit func(*specs.Spec)
		want string // in the error; "" for accepted
	}{
		{"hostname without uts", func(s *specs.Spec) { without(s, specs.UTSNamespace); s.Hostname = "h" }, "UTS"},
		{"net sysctl without netns", func(s *specs.Spec) {
			without(s, specs.NetworkNamespace)
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, "network namespace"},
		{"ipc sysctl without ipcns", func(s *specs.Spec) {
			without(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"kernel.shmmax": "1"}
		}, "IPC namespace"},
		{"host sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.panic": "1"} }, "not namespaced"},
		{"masked paths without a mount namespace", func(s *specs.Spec) { without(s, specs.MountNamespace) }, "mount namespace"},
		{"no mount namespace, nothing to mount", func(s *specs.Spec) {
			without(s, specs.MountNamespace)
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Root.Readonly, s.Process.Terminal = nil, nil, false, false
		}, ""},
		{"joined user namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"})
		}, "--runtime runc"},
		{"user namespace without maps", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "uidMappings"},
		{"user namespace with maps", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 10}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 10}}
		}, ""},
		{"maps without a user namespace", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 10}}
		}, "--runtime runc"},
		{"rootfs propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rslave" }, ""},
		{"unknown rootfs propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }, "rootfsPropagation"},
		{"hooks", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}}} }, ""},
		{"joined pid namespace", func(s *specs.Spec) {
			without(s, specs.PIDNamespace)
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"})
		}, "visible there before it is confined"},
		{"host pid namespace", func(s *specs.Spec) { without(s, specs.PIDNamespace) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fullSpec(t)
			tt.edit(spec)
			_, err := compileSpec(spec, "/bundle")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			case err != nil && !errdefs.IsInvalidArgument(err) && !strings.Contains(err.Error(), "--runtime runc"):
				t.Errorf("error %v is neither invalid-argument nor points to runc", err)
			}
		})
	}
}

// TestAllowRuncDevices: a config.json bundle gets runc's device rules and
// one for each of its devices, fifos excepted.
func TestAllowRuncDevices(t *testing.T) {
	c := &compiledSpec{Spec: &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
		{Path: "/dev/fifo", Type: "p"}, {Path: "/dev/u", Type: "u", Major: 7, Minor: 8}, {Path: "/dev/b", Type: "b", Major: 9, Minor: 1},
	}}}}
	allowRuncDevices(c)
	rules := c.Resources.Devices
	if n := len(defaultDeviceRules()) - 1 + 2; len(rules) != n {
		t.Fatalf("%d rules, want %d: %+v", len(rules), n, rules)
	}
	last := rules[len(rules)-2:]
	if last[0].Type != "c" || *last[0].Major != 7 || last[1].Type != "b" || *last[1].Major != 9 || !last[0].Allow || last[1].Access != "rwm" {
		t.Errorf("device rules %+v", last)
	}
}

func TestRelativeCgroup(t *testing.T) {
	if got := relativeCgroup("a/b"); !strings.HasSuffix(got, "/a/b") || !strings.HasPrefix(got, "/") {
		t.Errorf("relativeCgroup = %q", got)
	}
}
