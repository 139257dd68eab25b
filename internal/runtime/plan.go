package runtime

import (
	"encoding/binary"
	"encoding/json"
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

// The built-in runtime runs a compiled form of the runtime spec: the
// spec's fields that it implements, with the seccomp profile already
// turned into its BPF program, in a plain binary encoding. Builtin's
// WriteBundle writes it as the bundle's berth.plan in place of
// config.json. Decoding a config.json costs every process on the start
// path about a millisecond and a half of reflection (encoding/json builds
// its per-type tables anew in each process) and the init would compile
// the seccomp profile again; the compiled form decodes in microseconds.
// A bundle with only a config.json (made by another tool, or by the
// conformance tests) is compiled when it is run.

// planFile is the compiled spec's name in a bundle.
const planFile = "berth.plan"

// planMagic starts every compiled spec; its last byte is the format's
// version. A bundle is written by the same berth binary that runs it (it
// is rewritten at every start), so a version mismatch means a berth
// upgrade under a running monitor.
const planMagic = "berth-plan\x00\x01"

// compiledSpec is a runtime spec as the built-in runtime runs it.
type compiledSpec struct {
	// spec holds the carried fields. Root.Path is absolute;
	// Linux.Seccomp and Linux.Resources are nil (see filter and
	// resources).
	spec *specs.Spec
	// filter is the seccomp program, nil without a profile.
	filter       []unix.SockFilter
	seccompFlags []specs.LinuxSeccompFlag
	// resources is linux.resources as JSON, decoded only by the
	// process that creates the cgroup.
	resources []byte
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
		c.filter, c.seccompFlags = filter, linux.Seccomp.Flags
	}
	if linux.Resources != nil {
		raw, err := json.Marshal(linux.Resources)
		if err != nil {
			return nil, err
		}
		c.resources = raw
	}
	linux.Seccomp, linux.Resources = nil, nil
	s.Root, s.Linux = &root, &linux
	c.spec = &s
	return c, nil
}

// uncarried names the first field of spec that the built-in runtime does
// not implement (berth never generates them), or "" when there is none.
// It looks at every field it does not carry, so a spec field added in a
// later runtime-spec release is refused rather than silently dropped.
func uncarried(spec *specs.Spec) string {
	s := *spec
	s.Version, s.Process, s.Root, s.Hostname, s.Domainname, s.Mounts, s.Linux, s.Annotations = "", nil, nil, "", "", nil, nil, nil
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
	path := filepath.Join(bundle, planFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		spec, err := ReadSpec(bundle)
		if err != nil {
			return nil, err
		}
		return compileSpec(spec, bundle)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the runtime spec: %w", err)
	}
	c, err := decodeCompiled(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// linuxResources decodes the spec's linux.resources.
func (c *compiledSpec) linuxResources() (*specs.LinuxResources, error) {
	if c.resources == nil {
		return nil, nil
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(c.resources, &res); err != nil {
		return nil, fmt.Errorf("runtime spec: linux.resources: %w", err)
	}
	return &res, nil
}

// encode writes c in the plan format: planMagic, then the fields in the
// fixed order of encode's calls. Slices, maps and pointers record whether
// they are nil, so that decoding gives back the same spec.
func (c *compiledSpec) encode() []byte {
	e := &planEncoder{b: append(make([]byte, 0, 4096), planMagic...)}
	s := c.spec
	e.str(s.Version)
	e.str(s.Hostname)
	e.str(s.Domainname)
	e.str(s.Root.Path)
	e.bool(s.Root.Readonly)

	p := s.Process
	e.bool(p.Terminal)
	e.bool(p.ConsoleSize != nil)
	if p.ConsoleSize != nil {
		e.uint(uint64(p.ConsoleSize.Height))
		e.uint(uint64(p.ConsoleSize.Width))
	}
	e.uint(uint64(p.User.UID))
	e.uint(uint64(p.User.GID))
	e.bool(p.User.Umask != nil)
	if p.User.Umask != nil {
		e.uint(uint64(*p.User.Umask))
	}
	e.uints(p.User.AdditionalGids)
	e.strs(p.Args)
	e.strs(p.Env)
	e.str(p.Cwd)
	e.bool(p.Capabilities != nil)
	if caps := p.Capabilities; caps != nil {
		for _, set := range [][]string{caps.Bounding, caps.Effective, caps.Inheritable, caps.Permitted, caps.Ambient} {
			e.strs(set)
		}
	}
	e.len(p.Rlimits == nil, len(p.Rlimits))
	for _, rl := range p.Rlimits {
		e.str(rl.Type)
		e.uint(rl.Hard)
		e.uint(rl.Soft)
	}
	e.bool(p.NoNewPrivileges)
	e.bool(p.OOMScoreAdj != nil)
	if p.OOMScoreAdj != nil {
		e.int(int64(*p.OOMScoreAdj))
	}

	e.len(s.Mounts == nil, len(s.Mounts))
	for _, m := range s.Mounts {
		e.str(m.Destination)
		e.str(m.Type)
		e.str(m.Source)
		e.strs(m.Options)
	}

	l := s.Linux
	e.str(l.CgroupsPath)
	e.len(l.Namespaces == nil, len(l.Namespaces))
	for _, ns := range l.Namespaces {
		e.str(string(ns.Type))
		e.str(ns.Path)
	}
	e.len(l.Devices == nil, len(l.Devices))
	for _, d := range l.Devices {
		e.str(d.Path)
		e.str(d.Type)
		e.int(d.Major)
		e.int(d.Minor)
		e.bool(d.FileMode != nil)
		if d.FileMode != nil {
			e.uint(uint64(*d.FileMode))
		}
		e.bool(d.UID != nil)
		if d.UID != nil {
			e.uint(uint64(*d.UID))
		}
		e.bool(d.GID != nil)
		if d.GID != nil {
			e.uint(uint64(*d.GID))
		}
	}
	keys := make([]string, 0, len(l.Sysctl))
	for k := range l.Sysctl {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.len(l.Sysctl == nil, len(keys))
	for _, k := range keys {
		e.str(k)
		e.str(l.Sysctl[k])
	}
	e.strs(l.MaskedPaths)
	e.strs(l.ReadonlyPaths)

	e.len(c.filter == nil, len(c.filter))
	e.b = appendFilter(e.b, c.filter)
	e.len(c.seccompFlags == nil, len(c.seccompFlags))
	for _, f := range c.seccompFlags {
		e.str(string(f))
	}
	e.bytes(c.resources)
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
	s := &specs.Spec{Process: &specs.Process{}, Root: &specs.Root{}, Linux: &specs.Linux{}}
	s.Version = d.str()
	s.Hostname = d.str()
	s.Domainname = d.str()
	s.Root.Path = d.str()
	s.Root.Readonly = d.bool()

	p := s.Process
	p.Terminal = d.bool()
	if d.bool() {
		p.ConsoleSize = &specs.Box{Height: uint(d.uint()), Width: uint(d.uint())}
	}
	p.User.UID = uint32(d.uint())
	p.User.GID = uint32(d.uint())
	if d.bool() {
		umask := uint32(d.uint())
		p.User.Umask = &umask
	}
	p.User.AdditionalGids = d.uints()
	p.Args = d.strs()
	p.Env = d.strs()
	p.Cwd = d.str()
	if d.bool() {
		p.Capabilities = &specs.LinuxCapabilities{}
		for _, set := range []*[]string{&p.Capabilities.Bounding, &p.Capabilities.Effective, &p.Capabilities.Inheritable, &p.Capabilities.Permitted, &p.Capabilities.Ambient} {
			*set = d.strs()
		}
	}
	if n, ok := d.len(); ok {
		p.Rlimits = make([]specs.POSIXRlimit, n)
		for i := range p.Rlimits {
			p.Rlimits[i] = specs.POSIXRlimit{Type: d.str(), Hard: d.uint(), Soft: d.uint()}
		}
	}
	p.NoNewPrivileges = d.bool()
	if d.bool() {
		adj := int(d.int())
		p.OOMScoreAdj = &adj
	}

	if n, ok := d.len(); ok {
		s.Mounts = make([]specs.Mount, n)
		for i := range s.Mounts {
			s.Mounts[i] = specs.Mount{Destination: d.str(), Type: d.str(), Source: d.str(), Options: d.strs()}
		}
	}

	l := s.Linux
	l.CgroupsPath = d.str()
	if n, ok := d.len(); ok {
		l.Namespaces = make([]specs.LinuxNamespace, n)
		for i := range l.Namespaces {
			l.Namespaces[i] = specs.LinuxNamespace{Type: specs.LinuxNamespaceType(d.str()), Path: d.str()}
		}
	}
	if n, ok := d.len(); ok {
		l.Devices = make([]specs.LinuxDevice, n)
		for i := range l.Devices {
			dev := specs.LinuxDevice{Path: d.str(), Type: d.str(), Major: d.int(), Minor: d.int()}
			if d.bool() {
				mode := os.FileMode(d.uint())
				dev.FileMode = &mode
			}
			if d.bool() {
				uid := uint32(d.uint())
				dev.UID = &uid
			}
			if d.bool() {
				gid := uint32(d.uint())
				dev.GID = &gid
			}
			l.Devices[i] = dev
		}
	}
	if n, ok := d.len(); ok {
		l.Sysctl = make(map[string]string, n)
		for range n {
			k := d.str()
			l.Sysctl[k] = d.str()
		}
	}
	l.MaskedPaths = d.strs()
	l.ReadonlyPaths = d.strs()

	c := &compiledSpec{spec: s}
	if n, ok := d.len(); ok {
		c.filter = parseFilter(d.take(n * filterInsnSize))
	}
	if n, ok := d.len(); ok {
		c.seccompFlags = make([]specs.LinuxSeccompFlag, n)
		for i := range c.seccompFlags {
			c.seccompFlags[i] = specs.LinuxSeccompFlag(d.str())
		}
	}
	c.resources = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("malformed compiled runtime spec: %w", d.err)
	}
	return c, nil
}

// filterInsnSize is the size of an encoded seccomp instruction: struct
// sock_filter, little-endian.
const filterInsnSize = 8

// appendFilter appends prog to b as struct sock_filter array.
func appendFilter(b []byte, prog []unix.SockFilter) []byte {
	for _, ins := range prog {
		b = binary.LittleEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.LittleEndian.AppendUint32(b, ins.K)
	}
	return b
}

// parseFilter reads what appendFilter wrote; nil for no instructions.
func parseFilter(raw []byte) []unix.SockFilter {
	if len(raw) == 0 {
		return nil
	}
	prog := make([]unix.SockFilter, len(raw)/filterInsnSize)
	for i := range prog {
		ins := raw[i*filterInsnSize:]
		prog[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(ins), Jt: ins[2], Jf: ins[3], K: binary.LittleEndian.Uint32(ins[4:])}
	}
	return prog
}

// encodeInitMessage is what Run sends a container's init with its
// go-ahead: the cgroup it is in (so that it need not read mountinfo) and
// the compiled spec.
func encodeInitMessage(cg *cgroups.Manager, c *compiledSpec) []byte {
	e := &planEncoder{}
	e.str(cg.Encode())
	return append(e.b, c.encode()...)
}

// decodeInitMessage reads encodeInitMessage's message.
func decodeInitMessage(raw []byte) (*cgroups.Manager, *compiledSpec, error) {
	d := &planDecoder{b: raw}
	enc := d.str()
	if d.err != nil {
		return nil, nil, fmt.Errorf("init message: %w", d.err)
	}
	cg, err := cgroups.Decode(enc)
	if err != nil {
		return nil, nil, err
	}
	c, err := decodeCompiled(d.b)
	if err != nil {
		return nil, nil, err
	}
	return cg, c, nil
}

// planEncoder appends varints and length-prefixed strings. Lengths of
// things that may be nil are stored plus one, with 0 for nil.
type planEncoder struct{ b []byte }

func (e *planEncoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *planEncoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *planEncoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

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

func (e *planEncoder) bytes(b []byte) {
	e.len(b == nil, len(b))
	e.b = append(e.b, b...)
}

func (e *planEncoder) strs(ss []string) {
	e.len(ss == nil, len(ss))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *planEncoder) uints(vs []uint32) {
	e.len(vs == nil, len(vs))
	for _, v := range vs {
		e.uint(uint64(v))
	}
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

func (d *planDecoder) bool() bool {
	if len(d.b) == 0 {
		d.fail("flag")
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v != 0
}

// len reads a length written by planEncoder.len: ok is false for nil.
// A length beyond what is left of the input is an error, which keeps a
// corrupt file from asking for a huge allocation.
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

func (d *planDecoder) take(n int) []byte {
	if n > len(d.b) {
		d.fail("string")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *planDecoder) str() string {
	v := d.uint()
	if v > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	return string(d.take(int(v)))
}

func (d *planDecoder) bytes() []byte {
	n, ok := d.len()
	if !ok {
		return nil
	}
	return slices.Clone(d.take(n))
}

func (d *planDecoder) strs() []string {
	n, ok := d.len()
	if !ok {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *planDecoder) uints() []uint32 {
	n, ok := d.len()
	if !ok {
		return nil
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(d.uint())
	}
	return out
}
