package engine

import (
	"context"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
)

// APIVersion is the Docker Engine API version berth speaks.
const APIVersion = "1.43"

// MinAPIVersion is the oldest API version berth answers.
const MinAPIVersion = "1.24"

// RuntimeInfo names an OCI runtime berth can use.
type RuntimeInfo struct {
	Path string `json:"path"`
}

// SystemInfo is GET /info, with Docker's field names.
type SystemInfo struct {
	Containers        int
	ContainersRunning int
	ContainersPaused  int
	ContainersStopped int
	Images            int
	Driver            string
	DockerRootDir     string
	LoggingDriver     string
	CgroupDriver      string
	CgroupVersion     string
	KernelVersion     string
	OperatingSystem   string
	OSType            string
	Architecture      string
	NCPU              int
	MemTotal          int64
	Name              string
	ServerVersion     string
	DefaultRuntime    string
	Runtimes          map[string]RuntimeInfo
	SecurityOptions   []string

	// RunRoot is berth's own: the state under --runroot.
	RunRoot string `json:"BerthRunRoot"`
	// RuntimeNames lists Runtimes in the order `info` prints them.
	RuntimeNames []string `json:"-"`
}

// Info is `docker info`; version is the berth binary's.
func (e *Engine) Info(ctx context.Context, version string) (*SystemInfo, error) {
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := e.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	info := &SystemInfo{
		Containers: len(ctrs), Images: len(imgs), Driver: "overlay2", DockerRootDir: e.Config.Root,
		LoggingDriver: "json-file", CgroupDriver: "cgroupfs", CgroupVersion: cgroupVersion(),
		KernelVersion: KernelVersion(), OperatingSystem: osName(), OSType: "linux", Architecture: goruntime.GOARCH,
		NCPU: goruntime.NumCPU(), ServerVersion: version, DefaultRuntime: e.Config.Runtime,
		Runtimes: map[string]RuntimeInfo{}, SecurityOptions: []string{"name=seccomp,profile=builtin"},
		RunRoot: e.Config.RunRoot,
	}
	for _, c := range ctrs {
		switch {
		case c.State.Paused:
			info.ContainersPaused++
		case c.State.Running:
			info.ContainersRunning++
		default:
			info.ContainersStopped++
		}
	}
	info.Name, _ = os.Hostname()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	info.RuntimeNames = availableRuntimes(e.Config.Runtime)
	for _, name := range info.RuntimeNames {
		info.Runtimes[name] = RuntimeInfo{Path: name}
	}
	return info, nil
}

// ComponentVersion is one component of the server's version.
type ComponentVersion struct {
	Name    string
	Version string
}

// VersionInfo is GET /version.
type VersionInfo struct {
	Version       string
	APIVersion    string `json:"ApiVersion"`
	MinAPIVersion string `json:"MinAPIVersion"`
	GoVersion     string
	Os            string
	Arch          string
	KernelVersion string
	Components    []ComponentVersion
}

// Version is `docker version`'s server part; version is the berth
// binary's.
func (e *Engine) Version(ctx context.Context, version string) *VersionInfo {
	return &VersionInfo{
		Version: version, APIVersion: APIVersion, MinAPIVersion: MinAPIVersion, GoVersion: goruntime.Version(),
		Os: goruntime.GOOS, Arch: goruntime.GOARCH, KernelVersion: KernelVersion(),
		Components: []ComponentVersion{{Name: e.Config.Runtime, Version: runtimeVersion(e.Config.Runtime, version)}},
	}
}

// KernelVersion is the running kernel's release.
func KernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func runtimeVersion(bin, version string) string {
	if bin == runtime.BuiltinName {
		return version + " (built in)"
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unavailable (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// availableRuntimes lists the built-in runtime, the OCI runtimes found
// on PATH, and the configured one.
func availableRuntimes(configured string) []string {
	out := []string{runtime.BuiltinName}
	for _, name := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(name); err == nil {
			out = append(out, name)
		}
	}
	if !slices.Contains(out, configured) {
		out = append(out, configured)
	}
	return out
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func osName() string {
	raw, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
