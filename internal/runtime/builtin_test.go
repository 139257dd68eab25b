package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		options []string
		want    parsedMount
	}{
		{nil, parsedMount{}},
		{[]string{"nosuid", "noexec", "nodev", "ro"}, parsedMount{flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RDONLY}},
		{[]string{"ro", "rw"}, parsedMount{}},
		{[]string{"rbind", "rprivate", "ro"}, parsedMount{flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, propagation: []uintptr{unix.MS_PRIVATE | unix.MS_REC}}},
		{[]string{"nosuid", "strictatime", "mode=755", "size=65536k"}, parsedMount{flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"}},
		{[]string{"newinstance", "ptmxmode=0666", "slave"}, parsedMount{propagation: []uintptr{unix.MS_SLAVE}, data: "newinstance,ptmxmode=0666"}},
	}
	for _, tc := range tests {
		if got := parseMountOptions(tc.options); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseMountOptions(%q) = %+v, want %+v", tc.options, got, tc.want)
		}
	}
}

func TestStatfsFlags(t *testing.T) {
	got := statfsFlags(unix.ST_NOSUID | unix.ST_NODEV | unix.ST_RDONLY | unix.ST_RELATIME)
	if want := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME); got != want {
		t.Errorf("statfsFlags = %#x, want %#x (read-only is the caller's to set)", got, want)
	}
}

func TestCloneFlags(t *testing.T) {
	tests := []struct {
		name string
		ns   []specs.LinuxNamespace
		want uintptr
		err  bool
	}{
		{"docker's", []specs.LinuxNamespace{{Type: "mount"}, {Type: "network"}, {Type: "uts"}, {Type: "pid"}, {Type: "ipc"}, {Type: "cgroup"}},
			unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC, false},
		{"joined network", []specs.LinuxNamespace{{Type: "mount"}, {Type: "network", Path: "/proc/1/ns/net"}}, unix.CLONE_NEWNS, false},
		{"user namespace", []specs.LinuxNamespace{{Type: "user"}, {Type: "mount"}}, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, false},
		{"time namespace", []specs.LinuxNamespace{{Type: "time"}}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cloneFlags(tc.ns)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("cloneFlags = %#x, %v; want %#x, error %v", got, err, tc.want, tc.err)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not invalid-argument", err)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("prog", 0o755)
	write("data", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/nonexistent:" + dir}
	tests := []struct {
		file, want string
		code       int
		msg        string
	}{
		{file: "prog", want: dir + "/prog"},
		{file: dir + "/prog", want: dir + "/prog"},
		{file: "data", code: 127, msg: `exec: "data": executable file not found in $PATH`},
		{file: "sub", code: 127, msg: `exec: "sub": executable file not found in $PATH`},
		{file: dir + "/data", code: 126, msg: `exec: "` + dir + `/data": permission denied`},
		{file: dir + "/sub", code: 126, msg: `exec: "` + dir + `/sub": permission denied`},
		{file: dir + "/none", code: 127, msg: `exec: "` + dir + `/none": stat ` + dir + `/none: no such file or directory`},
	}
	for _, tc := range tests {
		got, err := lookPath(tc.file, env)
		if tc.code == 0 {
			if err != nil || got != tc.want {
				t.Errorf("lookPath(%q) = %q, %v; want %q", tc.file, got, err, tc.want)
			}
			continue
		}
		var f *initFailure
		if !errors.As(err, &f) || f.code != tc.code || f.msg != tc.msg {
			t.Errorf("lookPath(%q) = %q, %v; want %d %q", tc.file, got, err, tc.code, tc.msg)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want int
	}{
		{unix.WaitStatus(0), 0},
		{unix.WaitStatus(3 << 8), 3},
		{unix.WaitStatus(unix.SIGKILL), 137},
		{unix.WaitStatus(unix.SIGTERM), 143},
	}
	for _, tc := range tests {
		if got := ExitCode(tc.ws); got != tc.want {
			t.Errorf("ExitCode(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
}

// On a unified host the exec helper goes back to its caller's v2 cgroup
// once its child is born; on the others it stays (the cgroup holds no
// limits there).
func TestLeaveContainerCgroup(t *testing.T) {
	for _, tc := range []struct {
		mode cgroups.Mode
		want string
	}{
		{cgroups.Unified, strconv.Itoa(os.Getpid())},
		{cgroups.Hybrid, ""},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			mount := t.TempDir()
			procs := filepath.Join(mount, "user.slice", "s.scope", "cgroup.procs")
			if err := os.MkdirAll(filepath.Dir(procs), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(procs, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			layout := strconv.Itoa(int(tc.mode)) + "\x00" + mount
			if tc.mode == cgroups.Hybrid {
				layout += "\x00/sys/fs/cgroup/pids\x00pids"
			}
			leaveContainerCgroup(execMessage{Cgroup: "/berth/x\x00" + layout, CallerCgroup: "/user.slice/s.scope"})
			if got, _ := os.ReadFile(procs); string(got) != tc.want {
				t.Errorf("cgroup.procs = %q, want %q", got, tc.want)
			}
		})
	}
}
