package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

const testProfile = `{
	"defaultAction": "SCMP_ACT_ERRNO",
	"defaultErrnoRet": 1,
	"archMap": [
		{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
		{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
	],
	"syscalls": [
		{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
		{"name": "getpid", "action": "SCMP_ACT_ALLOW"},
		{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["chown"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "excludes": {"caps": ["CAP_CHOWN"]}},
		{"names": ["newkernelcall"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
		{"names": ["oldkernelcall"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "3.10"}},
		{"names": ["archcall"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "arm64"]}},
		{"names": ["notonthisarch"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64", "arm64"]}},
		{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
	]
}`

func writeProfile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSeccompProfileFile(t *testing.T) {
	path := writeProfile(t, testProfile)
	tests := []struct {
		name    string
		capAdd  []string
		capDrop []string
		allow   []string
		deny    []string
	}{
		{
			name:  "default caps",
			allow: []string{"read", "write", "getpid", "oldkernelcall", "archcall"},
			deny:  []string{"mount", "newkernelcall", "notonthisarch", "chown"},
		},
		{
			name:   "with CAP_SYS_ADMIN",
			capAdd: []string{"SYS_ADMIN"},
			allow:  []string{"mount"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.SeccompProfile = path
			opts.CapAdd, opts.CapDrop = tc.capAdd, tc.capDrop
			sc := mustGenerate(t, opts, testHost()).Linux.Seccomp
			if sc.DefaultAction != specs.ActErrno || *sc.DefaultErrnoRet != 1 {
				t.Errorf("default = %s/%v", sc.DefaultAction, sc.DefaultErrnoRet)
			}
			if _, arch := nativeArch(); arch == specs.ArchX86_64 && !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
				t.Errorf("architectures = %v", sc.Architectures)
			}
			for _, n := range tc.allow {
				if !allowed(sc, n) {
					t.Errorf("%s not allowed", n)
				}
			}
			for _, n := range tc.deny {
				if allowed(sc, n) {
					t.Errorf("%s allowed", n)
				}
			}
		})
	}

	// The chown rule is excluded when the container has CAP_CHOWN (the
	// default set) and applies when it is dropped.
	opts := baseOpts(t)
	opts.SeccompProfile = path
	if r := rulesFor(mustGenerate(t, opts, testHost()).Linux.Seccomp, "chown"); len(r) != 0 {
		t.Errorf("chown rule present with CAP_CHOWN: %+v", r)
	}
	opts.CapDrop = []string{"CHOWN"}
	r := rulesFor(mustGenerate(t, opts, testHost()).Linux.Seccomp, "chown")
	if len(r) != 1 || r[0].Action != specs.ActErrno || *r[0].ErrnoRet != 13 {
		t.Errorf("chown rules without CAP_CHOWN = %+v", r)
	}
}

func TestSeccompUnconfinedAndOldFormat(t *testing.T) {
	opts := baseOpts(t)
	opts.SeccompProfile = "unconfined"
	if sc := mustGenerate(t, opts, testHost()).Linux.Seccomp; sc != nil {
		t.Errorf("unconfined gives %+v", sc)
	}

	opts.SeccompProfile = writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
		"syscalls":[{"name":"chmod","action":"SCMP_ACT_ERRNO"}]}`)
	sc := mustGenerate(t, opts, testHost()).Linux.Seccomp
	if sc.DefaultAction != specs.ActAllow || !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64}) ||
		len(sc.Syscalls) != 1 || !slices.Equal(sc.Syscalls[0].Names, []string{"chmod"}) {
		t.Errorf("old-format profile gives %+v", sc)
	}

	opts.SeccompProfile = writeProfile(t, `{}`)
	if sc := mustGenerate(t, opts, testHost()).Linux.Seccomp; sc != nil {
		t.Errorf("empty profile gives %+v, want seccomp disabled like Docker", sc)
	}
}

func TestSeccompProfileInvalid(t *testing.T) {
	tests := []struct {
		name, body, err string
	}{
		{name: "not json", body: `{`, err: "not valid JSON"},
		{name: "name and names", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}`, err: `both "name" and "names"`},
		{name: "no names", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`, err: "no syscall names"},
		{name: "bad action", body: `{"defaultAction":"SCMP_ACT_MAYBE","syscalls":[]}`, err: `unknown defaultAction "SCMP_ACT_MAYBE"`},
		{name: "bad rule action", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"x"}]}`, err: `unknown action "x"`},
		{name: "bad op", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}`, err: "unknown argument operator"},
		{name: "bad arg index", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, err: "arguments 0 to 5"},
		{name: "bad kernel", body: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"five"}}]}`, err: "kernel version"},
		{name: "arch both ways", body: `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}],"syscalls":[]}`, err: `both "architectures" and "archMap"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := baseOpts(t)
			opts.SeccompProfile = writeProfile(t, tc.body)
			_, err := generate(opts, testHost())
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), opts.SeccompProfile) {
				t.Fatalf("err = %v, want invalid argument naming the file and containing %q", err, tc.err)
			}
		})
	}
}

func TestDefaultSeccompProfileIsFresh(t *testing.T) {
	a := DefaultSeccompProfile()
	a.Syscalls[0].Names[0] = "changed"
	if DefaultSeccompProfile().Syscalls[0].Names[0] == "changed" {
		t.Fatal("DefaultSeccompProfile shares state between calls")
	}
}

func TestParseKernelVersion(t *testing.T) {
	tests := []struct {
		in   string
		want kernelVersion
		err  bool
	}{
		{in: "4.8", want: kernelVersion{4, 8}},
		{in: "6.18.44-fc-v669", want: kernelVersion{6, 18}},
		{in: "5.10-rc1", want: kernelVersion{5, 10}},
		{in: "5", err: true},
		{in: "0.0", err: true},
		{in: "a.b", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseKernelVersion(tc.in)
			if (err != nil) != tc.err || (!tc.err && got != tc.want) {
				t.Errorf("parseKernelVersion(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}
