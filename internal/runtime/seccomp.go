package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// SeccompProfile is a seccomp profile in Docker's JSON format (the format of
// `docker run --security-opt seccomp=FILE`). It extends the runtime-spec form
// with rules that apply only on some architectures, kernels, or when the
// container holds (or lacks) some capabilities. Resolve turns it into the
// plain runtime-spec form for one container.
type SeccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"` // old format
	ArchMap          []SeccompArchGroup       `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []SyscallRule            `json:"syscalls"`
}

// SeccompArchGroup names a native architecture and the compat
// architectures a process on it may also use (x86 and x32 on x86_64).
type SeccompArchGroup struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

// SyscallRule is one entry of a profile's syscalls list.
type SyscallRule struct {
	Name     string                   `json:"name,omitempty"` // old format: one name
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *RuleFilter              `json:"includes,omitempty"`
	Excludes *RuleFilter              `json:"excludes,omitempty"`
}

// RuleFilter is the condition of a SyscallRule. In Includes every given
// condition must hold (all caps present, the arch listed, the kernel at
// least MinKernel); in Excludes any one that holds drops the rule.
type RuleFilter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
	// MinKernel is "<major>.<minor>", e.g. "4.8".
	MinKernel string `json:"minKernel,omitempty"`
}

// LoadSeccompProfile reads a Docker-format profile from path.
func LoadSeccompProfile(path string) (*SeccompProfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errdefs.InvalidArgument("cannot read seccomp profile %s: %w; pass a readable JSON file, \"unconfined\", or nothing for the default profile", path, err)
	}
	return ParseSeccompProfile(data, path)
}

// ParseSeccompProfile decodes a Docker-format profile; source names it in
// error messages.
func ParseSeccompProfile(data []byte, source string) (*SeccompProfile, error) {
	var p SeccompProfile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile %s is not valid JSON: %w", source, err)
	}
	if err := p.validate(); err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile %s: %w", source, err)
	}
	return &p, nil
}

var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var seccompOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

func (p *SeccompProfile) validate() error {
	if p.DefaultAction != "" && !slices.Contains(seccompActions, p.DefaultAction) {
		return fmt.Errorf("unknown defaultAction %q", p.DefaultAction)
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return fmt.Errorf("both \"architectures\" and \"archMap\" are set; use only one of them")
	}
	for i, r := range p.Syscalls {
		where := fmt.Sprintf("syscalls[%d]", i)
		if r.Name != "" && len(r.Names) > 0 {
			return fmt.Errorf("%s sets both \"name\" and \"names\"; use only \"names\"", where)
		}
		if r.Name == "" && len(r.Names) == 0 {
			return fmt.Errorf("%s has no syscall names", where)
		}
		if !slices.Contains(seccompActions, r.Action) {
			return fmt.Errorf("%s has unknown action %q", where, r.Action)
		}
		for _, a := range r.Args {
			if !slices.Contains(seccompOps, a.Op) {
				return fmt.Errorf("%s has unknown argument operator %q", where, a.Op)
			}
			if a.Index > 5 {
				return fmt.Errorf("%s compares argument %d; syscalls have arguments 0 to 5", where, a.Index)
			}
		}
		for _, f := range []*RuleFilter{r.Includes, r.Excludes} {
			if f != nil && f.MinKernel != "" {
				if _, err := parseKernelVersion(f.MinKernel); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
			}
		}
	}
	return nil
}

// kernelVersion is a kernel's major and minor number.
type kernelVersion struct{ major, minor int }

func (k kernelVersion) atLeast(o kernelVersion) bool {
	return k.major > o.major || (k.major == o.major && k.minor >= o.minor)
}

// parseKernelVersion reads "5.10", "5.10.3" or "6.1.0-13-amd64".
func parseKernelVersion(s string) (kernelVersion, error) {
	majS, rest, ok := strings.Cut(s, ".")
	if !ok {
		return kernelVersion{}, fmt.Errorf("kernel version %q is not of the form <major>.<minor>", s)
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	maj, err1 := strconv.Atoi(majS)
	minor, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || (maj == 0 && minor == 0) {
		return kernelVersion{}, fmt.Errorf("kernel version %q is not of the form <major>.<minor>", s)
	}
	return kernelVersion{maj, minor}, nil
}

// nativeArch names the architecture this binary runs on in the two
// vocabularies profiles use: the short name of "arches" filters and the
// libseccomp name of archMap.
func nativeArch() (short string, scmp specs.Arch) {
	switch goruntime.GOARCH {
	case "amd64":
		return "amd64", specs.ArchX86_64
	case "386":
		return "x86", specs.ArchX86
	case "arm64":
		return "arm64", specs.ArchAARCH64
	case "arm":
		return "arm", specs.ArchARM
	case "ppc64le":
		return "ppc64le", specs.ArchPPC64LE
	case "ppc64":
		return "ppc64", specs.ArchPPC64
	case "s390x":
		return "s390x", specs.ArchS390X
	case "riscv64":
		return "riscv64", specs.ArchRISCV64
	case "loong64":
		return "loong64", specs.ArchLOONGARCH64
	case "mips64le":
		return "mipsel64", specs.ArchMIPSEL64
	case "mips64":
		return "mips64", specs.ArchMIPS64
	case "mipsle":
		return "mipsel", specs.ArchMIPSEL
	case "mips":
		return "mips", specs.ArchMIPS
	}
	return goruntime.GOARCH, ""
}

// resolveSeccomp evaluates p for a container whose bounding capability set
// is caps, on architecture arch (short name), with the kernel version
// reported by kernel (called only if a rule depends on it). Like Docker, a
// profile with neither a default action nor rules disables seccomp (nil).
func resolveSeccomp(p *SeccompProfile, caps []string, arch string, scmpArch specs.Arch, kernel func() (kernelVersion, error)) (*specs.LinuxSeccomp, error) {
	if p.DefaultAction == "" && len(p.Syscalls) == 0 {
		return nil, nil
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		Architectures:    slices.Clone(p.Architectures),
		Flags:            slices.Clone(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	for _, g := range p.ArchMap {
		if g.Arch == scmpArch {
			out.Architectures = append(append(out.Architectures, g.Arch), g.SubArches...)
			break
		}
	}
	kernelAtLeast := func(v string) (bool, error) {
		want, err := parseKernelVersion(v)
		if err != nil {
			return false, err
		}
		have, err := kernel()
		if err != nil {
			return false, err
		}
		return have.atLeast(want), nil
	}
	out.Syscalls = make([]specs.LinuxSyscall, 0, len(p.Syscalls))
	for _, r := range p.Syscalls {
		if ex := r.Excludes; ex != nil {
			if slices.Contains(ex.Arches, arch) || slices.ContainsFunc(ex.Caps, func(c string) bool { return slices.Contains(caps, c) }) {
				continue
			}
			if ex.MinKernel != "" {
				ok, err := kernelAtLeast(ex.MinKernel)
				if err != nil {
					return nil, err
				}
				if ok {
					continue
				}
			}
		}
		if in := r.Includes; in != nil {
			if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
				continue
			}
			if !allIn(in.Caps, caps) {
				continue
			}
			if in.MinKernel != "" {
				ok, err := kernelAtLeast(in.MinKernel)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
			}
		}
		names := r.Names
		if r.Name != "" {
			names = []string{r.Name}
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    slices.Clone(names),
			Action:   r.Action,
			ErrnoRet: r.ErrnoRet,
			Args:     slices.Clone(r.Args),
		})
	}
	return out, nil
}

func allIn(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
