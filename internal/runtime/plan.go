package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
)

// The built-in runtime runs a compiled form of the runtime spec: the spec
// with its seccomp profile already turned into the BPF program, in a
// plain binary encoding (see planEncoder). Builtin's WriteBundle writes it
// as the bundle's berth.plan in place of config.json. Decoding a
// config.json costs every process on the start path about a millisecond
// and a half of reflection (encoding/json builds its per-type tables anew
// in each process) and the init would compile the seccomp profile again;
// the compiled form decodes in microseconds. A bundle with only a
// config.json (made by another tool, or by the conformance tests) is
// compiled when it is run.

// planFile is the compiled spec's name in a bundle.
const planFile = "berth.plan"

// planMagic starts every compiled spec; its last byte is the format's
// version. A bundle is written by the same berth binary that runs it (it
// is rewritten at every start), so a version mismatch means a berth
// upgrade under a running monitor.
const planMagic = "berth-plan\x00\x02"

// compiledSpec is a runtime spec as the built-in runtime runs it. Its
// exported fields are what the plan file holds.
type compiledSpec struct {
	// Spec has Root.Path absolute and Linux.Seccomp and
	// Linux.Resources nil: they are in the fields below.
	Spec *specs.Spec
	// Filter is the seccomp program, nil without a profile.
	Filter       []unix.SockFilter
	SeccompFlags []specs.LinuxSeccompFlag
	// Resources are the cgroup limits, used by the process that creates
	// the cgroup.
	Resources *specs.LinuxResources
}

// compileSpec checks that the built-in runtime implements everything spec
// asks for and compiles it. Root.Path is made absolute against bundle.
func compileSpec(spec *specs.Spec, bundle string) (*compiledSpec, error) {
	if spec.Process == nil || spec.Root == nil || spec.Linux == nil {
		return nil, errdefs.InvalidArgument("runtime spec: process, root and linux are required")
	}
	if what := uncarried(spec); what != "" {
		return nil, errdefs.NotImplemented("the berth runtime does not support %s; run this container with --runtime runc", what)
	}
	if p := spec.Linux.RootfsPropagation; p != "" {
		if _, ok := propagationOptions[p]; !ok {
			return nil, errdefs.InvalidArgument("runtime spec: unknown linux.rootfsPropagation %q", p)
		}
	}
	if !hasNamespace(spec, specs.MountNamespace) && (len(spec.Linux.MaskedPaths) > 0 || len(spec.Linux.ReadonlyPaths) > 0 ||
		spec.Root.Readonly || spec.Process.Terminal) {
		return nil, errdefs.InvalidArgument("runtime spec: linux.namespaces has no mount namespace, which masked or read-only paths, a read-only root and a terminal need")
	}
	if err := checkNamespaced(spec); err != nil {
		return nil, err
	}
	if err := checkUserNamespace(spec); err != nil {
		return nil, err
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace && ns.Path != "" {
			// The init would be born in that namespace, in sight of its
			// processes, while it still has the host's root and all
			// capabilities: the window exec closes by forking only the
			// confined command into a container's namespace.
			return nil, errdefs.NotImplemented("the berth runtime does not join an existing pid namespace (%s): its init would be visible there before it is confined; run this container with --runtime runc", ns.Path)
		}
	}
	c := &compiledSpec{}
	s := *spec
	root, linux := *spec.Root, *spec.Linux
	if !filepath.IsAbs(root.Path) {
		abs, err := filepath.Abs(filepath.Join(bundle, root.Path))
		if err != nil {
			return nil, err
		}
		root.Path = abs
	}
	if linux.Seccomp != nil {
		filter, err := seccompbpf.Compile(linux.Seccomp, seccompbpf.NativeArch())
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		c.Filter, c.SeccompFlags = filter, linux.Seccomp.Flags
	}
	c.Resources = linux.Resources
	linux.Seccomp, linux.Resources = nil, nil
	s.Root, s.Linux = &root, &linux
	c.Spec = &s
	return c, nil
}

// checkNamespaced refuses settings that would change the host because the
// spec does not give the container the namespace they belong to (runc
// refuses the same): a hostname without a UTS namespace, sysctls outside
// the network and IPC namespaces.
func checkNamespaced(spec *specs.Spec) error {
	if (spec.Hostname != "" || spec.Domainname != "") && !hasNamespace(spec, specs.UTSNamespace) {
		return errdefs.InvalidArgument("runtime spec: hostname: a hostname needs a UTS namespace in linux.namespaces")
	}
	for key := range spec.Linux.Sysctl {
		switch {
		case strings.HasPrefix(key, "net."):
			if !hasNamespace(spec, specs.NetworkNamespace) {
				return errdefs.InvalidArgument("runtime spec: linux.sysctl %s needs a network namespace", key)
			}
		case strings.HasPrefix(key, "kernel.msg"), strings.HasPrefix(key, "kernel.shm"), key == "kernel.sem",
			strings.HasPrefix(key, "fs.mqueue."):
			if !hasNamespace(spec, specs.IPCNamespace) {
				return errdefs.InvalidArgument("runtime spec: linux.sysctl %s needs an IPC namespace", key)
			}
		case key == "kernel.hostname", key == "kernel.domainname":
			if !hasNamespace(spec, specs.UTSNamespace) {
				return errdefs.InvalidArgument("runtime spec: linux.sysctl %s needs a UTS namespace", key)
			}
		default:
			return errdefs.InvalidArgument("runtime spec: linux.sysctl %s is not namespaced: it would change the host", key)
		}
	}
	return nil
}

// uncarried names the first field of spec that the built-in runtime does
// not implement (berth never generates them), or "" when there is none.
// It looks at every field it does not carry, so a spec field added in a
// later runtime-spec release is refused rather than silently dropped.
func uncarried(spec *specs.Spec) string {
	s := *spec
	s.Version, s.Process, s.Root, s.Hostname, s.Domainname, s.Mounts, s.Linux, s.Annotations = "", nil, nil, "", "", nil, nil, nil
	s.Hooks = nil
	if f := firstSet(s); f != "" {
		return f
	}
	p := *spec.Process
	p.Terminal, p.ConsoleSize, p.Args, p.Env, p.Cwd = false, nil, nil, nil, ""
	p.Capabilities, p.Rlimits, p.NoNewPrivileges, p.OOMScoreAdj = nil, nil, false, nil
	p.User.UID, p.User.GID, p.User.Umask, p.User.AdditionalGids = 0, 0, nil, nil
	if f := firstSet(p); f != "" {
		if f == "user" {
			return "process.user.username"
		}
		return "process." + f
	}
	l := *spec.Linux
	l.Sysctl, l.Resources, l.CgroupsPath, l.Namespaces, l.Devices = nil, nil, "", nil, nil
	l.RootfsPropagation = ""
	if newUserNamespace(spec) {
		l.UIDMappings, l.GIDMappings = nil, nil
	}
	l.MaskedPaths, l.ReadonlyPaths = nil, nil
	sc := l.Seccomp
	l.Seccomp = nil
	if f := firstSet(l); f != "" {
		return "linux." + f
	}
	if sc != nil && (sc.ListenerPath != "" || sc.ListenerMetadata != "") {
		return "seccomp notify (linux.seccomp.listenerPath)"
	}
	for _, m := range spec.Mounts {
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return "ID-mapped mounts (" + m.Destination + ")"
		}
	}
	return ""
}

// firstSet returns the JSON name of the first non-zero field of the
// struct v.
func firstSet(v any) string {
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		if !rv.Field(i).IsZero() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// WriteBundle writes spec to dir in compiled form (see compiledSpec),
// creating dir if needed; a spec the built-in runtime cannot run is
// refused here, before anything starts. Like a config.json, the file
// appears whole or not at all, readable by root only, and is not fsynced.
func (b *Builtin) WriteBundle(dir string, spec *specs.Spec) error {
	c, err := compileSpec(spec, dir)
	if err != nil {
		return err
	}
	return writeBundleFile(dir, planFile, c.encode())
}

// loadCompiled reads bundle's compiled spec, or compiles its config.json.
func loadCompiled(bundle string) (*compiledSpec, error) {
	c, spec, err := readBundle(bundle)
	if err != nil || c != nil {
		return c, err
	}
	if c, err = compileSpec(spec, bundle); err != nil {
		return nil, err
	}
	allowRuncDevices(c)
	return c, nil
}

// allowRuncDevices appends to the device cgroup of a config.json bundle
// (another tool's) the rules runc adds to every container: its devices
// and those of linux.devices stay usable whatever the spec denies.
// berth's own specs carry these rules already (see defaultDeviceRules).
func allowRuncDevices(c *compiledSpec) {
	if c.Resources == nil {
		c.Resources = &specs.LinuxResources{}
	}
	rules := defaultDeviceRules()[1:]
	for _, d := range c.Spec.Linux.Devices {
		if d.Type == "p" { // a fifo: no device cgroup rule
			continue
		}
		typ := d.Type
		if typ == "u" { // unbuffered character device
			typ = "c"
		}
		major, minor := d.Major, d.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	c.Resources.Devices = append(c.Resources.Devices, rules...)
}

// readBundle reads bundle in whichever form it was written: its compiled
// spec (c) or, lacking one, its config.json (spec).
func readBundle(bundle string) (c *compiledSpec, spec *specs.Spec, err error) {
	path := filepath.Join(bundle, planFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		spec, err := ReadSpec(bundle)
		return nil, spec, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the runtime spec: %w", err)
	}
	if c, err = decodeCompiled(raw); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil, nil
}

// encode writes c in the plan format: planMagic, then c's fields as
// planEncoder.value writes them.
func (c *compiledSpec) encode() []byte {
	e := &planEncoder{b: append(make([]byte, 0, 8192), planMagic...)}
	if err := e.value(reflect.ValueOf(c).Elem()); err != nil {
		// Only a spec field of a kind the plan cannot hold gets here
		// (an interface of Windows' section), and compileSpec refuses
		// those sections first.
		panic(fmt.Sprintf("encoding a compiled spec: %v", err))
	}
	return e.b
}

// decodeCompiled reads what encode wrote.
func decodeCompiled(raw []byte) (*compiledSpec, error) {
	if !strings.HasPrefix(string(raw), planMagic[:len(planMagic)-1]) {
		return nil, errors.New("not a compiled runtime spec")
	}
	if len(raw) < len(planMagic) || raw[len(planMagic)-1] != planMagic[len(planMagic)-1] {
		return nil, errors.New("compiled runtime spec of another berth version: start the container again with this one")
	}
	d := &planDecoder{b: raw[len(planMagic):]}
	c := &compiledSpec{}
	d.value(reflect.ValueOf(c).Elem())
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err == nil && (c.Spec == nil || c.Spec.Process == nil || c.Spec.Root == nil || c.Spec.Linux == nil) {
		d.err = errors.New("process, root and linux are required")
	}
	if d.err != nil {
		return nil, fmt.Errorf("malformed compiled runtime spec: %w", d.err)
	}
	return c, nil
}

// encodeInitMessage is what Run sends a container's init with its
// go-ahead: the cgroup it is in (so that it need not read mountinfo), the
// state its hooks get on stdin (empty without hooks), whether it waits for
// a second go-ahead before its sysctls (RunGated) and the compiled spec.
func encodeInitMessage(m initMessage) []byte {
	e := &planEncoder{}
	e.str(m.cg.Encode())
	e.str(string(m.hookState))
	gated := uint64(0)
	if m.gated {
		gated = 1
	}
	e.uint(gated)
	return append(e.b, m.c.encode()...)
}

// initMessage is what the init is told with its go-ahead.
type initMessage struct {
	cg        *cgroups.Manager
	c         *compiledSpec
	hookState []byte
	gated     bool
}

// decodeInitMessage reads encodeInitMessage's message.
func decodeInitMessage(raw []byte) (initMessage, error) {
	d := &planDecoder{b: raw}
	enc := d.str()
	hookState := d.str()
	gated := d.uint()
	if d.err != nil {
		return initMessage{}, fmt.Errorf("init message: %w", d.err)
	}
	cg, err := cgroups.Decode(enc)
	if err != nil {
		return initMessage{}, err
	}
	c, err := decodeCompiled(d.b)
	if err != nil {
		return initMessage{}, err
	}
	return initMessage{cg: cg, c: c, hookState: []byte(hookState), gated: gated == 1}, nil
}

// planEncoder writes values by walking their types: numbers as varints,
// strings with their length, struct fields in declaration order, and a
// nil mark for pointers, slices and maps (lengths are stored plus one, 0
// for nil), so that decoding gives back equal values. The format is only
// ever read by the same berth binary (see planMagic), so it needs no field
// names; and walking types costs no per-type set-up, unlike encoding/json
// in a fresh process.
type planEncoder struct{ b []byte }

func (e *planEncoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *planEncoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *planEncoder) len(isNil bool, n int) {
	if isNil {
		e.uint(0)
	} else {
		e.uint(uint64(n) + 1)
	}
}

func (e *planEncoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *planEncoder) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.uint(1)
		} else {
			e.uint(0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.uint(v.Uint())
	case reflect.String:
		e.str(v.String())
	case reflect.Pointer:
		e.len(v.IsNil(), 0)
		if !v.IsNil() {
			return e.value(v.Elem())
		}
	case reflect.Slice:
		e.len(v.IsNil(), v.Len())
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		e.len(v.IsNil(), v.Len())
		keys := v.MapKeys()
		if v.Type().Key().Kind() == reflect.String {
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		}
		for _, k := range keys {
			if err := e.value(k); err != nil {
				return err
			}
			if err := e.value(v.MapIndex(k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				return fmt.Errorf("%s has an unexported field", v.Type())
			}
			if err := e.value(v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Interface:
		if !v.IsNil() {
			return fmt.Errorf("cannot encode %s", v.Type())
		}
		e.uint(0)
	default:
		return fmt.Errorf("cannot encode %s", v.Type())
	}
	return nil
}

// planDecoder reads what planEncoder wrote. The first error sticks: later
// reads return zero values, and the caller checks err once at the end.
type planDecoder struct {
	b   []byte
	err error
}

func (d *planDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated %s", what)
	}
	d.b = nil
}

func (d *planDecoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *planDecoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// len reads a length written by planEncoder.len: ok is false for nil.
// A length beyond what is left of the input is an error (every element
// takes at least a byte), which keeps a corrupt file from asking for a
// huge allocation.
func (d *planDecoder) len() (n int, ok bool) {
	v := d.uint()
	if v == 0 {
		return 0, false
	}
	if v-1 > uint64(len(d.b)) {
		d.fail("list")
		return 0, false
	}
	return int(v - 1), true
}

func (d *planDecoder) str() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// value decodes into v, which must be settable.
func (d *planDecoder) value(v reflect.Value) {
	if d.err != nil {
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(d.uint() != 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := d.int()
		if v.OverflowInt(n) {
			d.fail("number")
			return
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := d.uint()
		if v.OverflowUint(n) {
			d.fail("number")
			return
		}
		v.SetUint(n)
	case reflect.String:
		v.SetString(d.str())
	case reflect.Pointer:
		if _, ok := d.len(); ok {
			p := reflect.New(v.Type().Elem())
			d.value(p.Elem())
			v.Set(p)
		}
	case reflect.Slice:
		if n, ok := d.len(); ok {
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				d.value(s.Index(i))
			}
			v.Set(s)
		}
	case reflect.Map:
		if n, ok := d.len(); ok {
			m := reflect.MakeMapWithSize(v.Type(), n)
			for range n {
				k := reflect.New(v.Type().Key()).Elem()
				e := reflect.New(v.Type().Elem()).Elem()
				d.value(k)
				d.value(e)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			d.value(v.Field(i))
		}
	case reflect.Interface:
		if d.uint() != 0 {
			d.fail("value")
		}
	default:
		d.fail("value of an unknown kind")
	}
}
