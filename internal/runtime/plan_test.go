package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
)

// fullSpec is a generated spec with every optional part the built-in
// runtime carries filled in.
func fullSpec(t *testing.T) *specs.Spec {
	t.Helper()
	spec, err := Generate(SpecOptions{
		Hostname: "planhost", Rootfs: "/var/lib/x/rootfs", Args: []string{"sh", "-c", "echo hi"},
		Env: []string{"A=1", "PATH=/bin"}, NetworkMode: "none", ReadOnlyRootfs: true,
		Resources: Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 50},
		Mounts:    []Mount{{Type: "tmpfs", Destination: "/run", Options: []string{"size=65536k", "noexec"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	umask, uid, gid, adj := uint32(0o027), uint32(7), uint32(8), -500
	mode := os.FileMode(0o620)
	spec.Domainname = "example.org"
	spec.Process.Terminal = true
	spec.Process.ConsoleSize = &specs.Box{Height: 40, Width: 120}
	spec.Process.User = specs.User{UID: 1000, GID: 1001, Umask: &umask, AdditionalGids: []uint32{10, 20}}
	spec.Process.Rlimits = append(spec.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: 1 << 40, Soft: 3})
	spec.Process.NoNewPrivileges = true
	spec.Process.OOMScoreAdj = &adj
	spec.Process.Capabilities.Ambient = []string{}
	spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid, GID: &gid})
	spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"})
	return spec
}

func TestCompiledSpecRoundTrip(t *testing.T) {
	spec := fullSpec(t)
	c, err := compileSpec(spec, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Filter) == 0 || c.Resources == nil || c.Resources.Memory == nil {
		t.Fatalf("compiled spec lacks its seccomp program or resources: %d instructions, resources %+v", len(c.Filter), c.Resources)
	}
	got, err := decodeCompiled(c.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the spec:\n got %+v\nwant %+v", got.Spec, c.Spec)
	}
	if !reflect.DeepEqual(got.Resources, spec.Linux.Resources) {
		t.Errorf("resources %+v, want %+v", got.Resources, spec.Linux.Resources)
	}
	// What compileSpec leaves out is only what goes elsewhere.
	want := *spec
	want.Linux = &specs.Linux{}
	*want.Linux = *spec.Linux
	want.Linux.Seccomp, want.Linux.Resources = nil, nil
	if !reflect.DeepEqual(got.Spec, &want) {
		t.Errorf("compiled spec differs from the original beyond seccomp and resources")
	}
}

func TestCompileSpecMakesRootAbsolute(t *testing.T) {
	spec := fullSpec(t)
	spec.Root.Path = "rootfs"
	c, err := compileSpec(spec, "/run/berth/b/abc")
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Root.Path != "/run/berth/b/abc/rootfs" {
		t.Errorf("root %q", c.Spec.Root.Path)
	}
	if spec.Root.Path != "rootfs" {
		t.Error("compileSpec changed its input")
	}
}

// TestCompileSpecCarriesOrRefusesEveryField sets each field of the spec,
// its process and its linux section in turn: the compiled spec must either
// carry it unchanged or be refused with an error naming it. A field added
// by a new runtime-spec release cannot be dropped silently.
func TestCompileSpecCarriesOrRefusesEveryField(t *testing.T) {
	sections := []struct {
		name string
		of   func(*specs.Spec) reflect.Value
	}{
		{"spec", func(s *specs.Spec) reflect.Value { return reflect.ValueOf(s).Elem() }},
		{"process", func(s *specs.Spec) reflect.Value { return reflect.ValueOf(s.Process).Elem() }},
		{"process.user", func(s *specs.Spec) reflect.Value { return reflect.ValueOf(&s.Process.User).Elem() }},
		{"linux", func(s *specs.Spec) reflect.Value { return reflect.ValueOf(s.Linux).Elem() }},
	}
	for _, sec := range sections {
		typ := sec.of(fullSpec(t)).Type()
		for i := range typ.NumField() {
			field := typ.Field(i)
			name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
			switch sec.name + "." + name {
			case "spec.annotations": // not the runtime's business
				continue
			case "linux.seccomp", "linux.resources": // compiled; see TestCompiledSpecRoundTrip
				continue
			}
			t.Run(sec.name+"."+name, func(t *testing.T) {
				spec := fullSpec(t)
				v := sec.of(spec).Field(i)
				v.Set(reflect.Zero(v.Type()))
				setNonZero(v)
				c, err := compileSpec(spec, "/bundle")
				if err != nil {
					// Either unsupported (pointing to runc) or a value
					// the runtime checks and refuses (setNonZero's are
					// arbitrary); in both cases the error names the field.
					if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "--runtime runc") && !errdefs.IsInvalidArgument(err) {
						t.Fatalf("refused with %q, which names neither the field nor --runtime runc", err)
					}
					return
				}
				got, err := decodeCompiled(c.encode())
				if err != nil {
					t.Fatal(err)
				}
				if gv := sec.of(got.Spec).Field(i); !reflect.DeepEqual(gv.Interface(), v.Interface()) {
					t.Errorf("carried as %#v, want %#v", gv.Interface(), v.Interface())
				}
			})
		}
	}
}

// setNonZero fills v, recursively, with values that are not zero.
func setNonZero(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.String:
		v.SetString("/x")
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		setNonZero(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		setNonZero(v.Index(0))
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		setNonZero(k)
		setNonZero(e)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				setNonZero(v.Field(i))
			}
		}
	}
}

func TestDecodeCompiledRefusesDamage(t *testing.T) {
	c, err := compileSpec(fullSpec(t), "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	raw := c.encode()
	for n := range len(raw) {
		if _, err := decodeCompiled(raw[:n]); err == nil {
			t.Fatalf("a compiled spec cut to %d of %d bytes decoded", n, len(raw))
		}
	}
	if _, err := decodeCompiled(append(raw[:len(raw):len(raw)], 0)); err == nil {
		t.Error("trailing bytes accepted")
	}
	other := append([]byte{}, raw...)
	other[len(planMagic)-1]++
	if _, err := decodeCompiled(other); err == nil || !strings.Contains(err.Error(), "another berth version") {
		t.Errorf("another version: %v", err)
	}
}

func TestInitMessageRoundTrip(t *testing.T) {
	c, err := compileSpec(fullSpec(t), "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	cg, err := cgroups.Decode("/berth/abc\x002\x00/sys/fs/cgroup/unified\x00/sys/fs/cgroup/memory\x00memory")
	if err != nil {
		t.Fatal(err)
	}
	state := []byte(`{"id":"abc"}`)
	for _, gated := range []bool{false, true} {
		want := initMessage{cg: cg, c: c, hookState: state, gated: gated}
		got, err := decodeInitMessage(encodeInitMessage(want))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("init message round trip (gated %v) changed it", gated)
		}
	}
}

func TestBuiltinWriteBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	b := &Builtin{}
	if err := b.WriteBundle(dir, fullSpec(t)); err != nil {
		t.Fatal(err)
	}
	c, err := loadCompiled(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Hostname != "planhost" {
		t.Errorf("hostname %q", c.Spec.Hostname)
	}
	fi, err := os.Stat(filepath.Join(dir, planFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	p, err := ReadBundleProcess(dir)
	if err != nil || p.Args[0] != "sh" {
		t.Errorf("ReadBundleProcess: %+v, %v", p, err)
	}
	RemoveBundleFiles(dir)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left after RemoveBundleFiles: %v", entries)
	}
}
