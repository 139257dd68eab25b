package seccompbpf_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
	"github.com/berth-dev/berth/internal/testutil"
)

// childEnv, when set in the environment, makes the test binary the child
// of TestLoad: it loads the profile stored in the file the variable names
// and reports what the filtered thread sees.
const childEnv = "BERTH_SECCOMPBPF_CHILD_PROFILE"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		if err := filteredChild(path); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// filteredChild runs in a process of its own, since a seccomp filter can
// never be removed.
func filteredChild(profilePath string) error {
	data, err := os.ReadFile(profilePath)
	if err != nil {
		return err
	}
	var cfg specs.LinuxSeccomp
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	prog, err := seccompbpf.Compile(&cfg, seccompbpf.NativeArch())
	if err != nil {
		return err
	}

	// The filter goes on this thread only: keep the goroutine on it.
	goruntime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", err)
	}
	if err := seccompbpf.Load(prog, cfg.Flags); err != nil {
		return fmt.Errorf("loading Docker's default profile: %w", err)
	}

	if _, _, errno := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUTS, 0, 0); errno != unix.EPERM {
		return fmt.Errorf("unshare(CLONE_NEWUTS) under the filter: errno %v, want EPERM", errno)
	}
	if pid, _, errno := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); errno != 0 || int(pid) != os.Getpid() {
		return fmt.Errorf("getpid under the filter: %d, errno %v", pid, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0); errno != unix.ENOSYS {
		return fmt.Errorf("clone3 under the filter: errno %v, want ENOSYS", errno)
	}

	// Other threads have no filter. A goroutine locked to a thread of its
	// own can unshare its UTS namespace (the thread dies with it).
	other := make(chan unix.Errno)
	go func() {
		goruntime.LockOSThread()
		_, _, errno := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUTS, 0, 0)
		other <- errno
	}()
	if errno := <-other; errno != 0 {
		return fmt.Errorf("unshare(CLONE_NEWUTS) on another thread: errno %v; the filter should hold on the calling thread only", errno)
	}

	// A second filter stacks on the first; SECCOMP_FILTER_FLAG_LOG is known
	// to every kernel with SECCOMP_RET_KILL_PROCESS.
	second, err := seccompbpf.Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))},
		},
	}, seccompbpf.NativeArch())
	if err != nil {
		return err
	}
	if err := seccompbpf.Load(second, []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}); err != nil {
		return fmt.Errorf("loading the second filter: %w", err)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); errno != unix.ENOSYS {
		return fmt.Errorf("getppid under the second filter: errno %v, want ENOSYS", errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); errno != 0 {
		return fmt.Errorf("getpid under both filters: errno %v", errno)
	}

	// A third filter long enough for jumps past 255 instructions, on
	// syscalls the Go runtime does not make: the kernel must accept it and
	// agree with the tests' interpreter.
	const perSyscall = 30
	long, err := seccompbpf.Compile(manyConditions(specs.ActAllow, []string{"getpgrp", "getsid", "getpgid",
		"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "times", "sysinfo", "getrusage"}, perSyscall),
		seccompbpf.NativeArch())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(long, func(in unix.SockFilter) bool { return in.Code == unix.BPF_JMP|unix.BPF_JA && in.K > 255 }) {
		return fmt.Errorf("the long filter (%d instructions) has no long jump", len(long))
	}
	if err := seccompbpf.Load(long, nil); err != nil {
		return fmt.Errorf("loading a filter of %d instructions: %w", len(long), err)
	}
	for _, tc := range []struct {
		nr    uintptr
		arg0  uintptr
		errno unix.Errno
	}{
		{unix.SYS_GETPGRP, 0, 1},
		{unix.SYS_GETRUSAGE, perSyscall - 1, perSyscall},
		{unix.SYS_GETSID, 7, 8},
		{unix.SYS_GETUID, perSyscall, 0},
	} {
		if _, _, errno := unix.RawSyscall(tc.nr, tc.arg0, 0, 0); errno != tc.errno {
			return fmt.Errorf("syscall %d(%d) under the long filter: errno %d, want %d", tc.nr, tc.arg0, errno, tc.errno)
		}
	}
	return nil
}

func TestLoad(t *testing.T) {
	testutil.RequiresRoot(t)
	if seccompbpf.NativeArch() == "" {
		testutil.Skip(t, "no syscall tables for "+goruntime.GOARCH)
	}
	cfg := dockerDefault(t)
	cfg.Architectures = nil // the host's own
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("filtered child: %v\n%s", err, out)
	}
}

func TestLoadRejects(t *testing.T) {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	tests := []struct {
		name  string
		prog  []unix.SockFilter
		flags []specs.LinuxSeccompFlag
		class error
	}{
		{"empty program", nil, nil, errdefs.ErrInvalidArgument},
		{"program too long", make([]unix.SockFilter, unix.BPF_MAXINSNS+1), nil, errdefs.ErrInvalidArgument},
		{"unknown flag", prog, []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_EVERYTHING"}, errdefs.ErrInvalidArgument},
		{"notify flag", prog, []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}, errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every case fails before the seccomp call, so no filter is
			// installed on the test's thread.
			err := seccompbpf.Load(tt.prog, tt.flags)
			if !errors.Is(err, tt.class) {
				t.Errorf("got %v, want a %v error", err, tt.class)
			}
		})
	}
}
