package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestDestRule is the rule on its own: what a destination
// may resolve to.
func TestDestRule(t *testing.T) {
	for _, tc := range []struct {
		dest, resolved string
		fstype         string
		final, proc    bool
		wantErr        string // "" when allowed
	}{
		{dest: "/data/x", resolved: "/data/x", final: true},
		{dest: "/proc", resolved: "/proc", final: true, proc: true},
		{dest: "/proc", resolved: "/proc", final: true, wantErr: "only a proc filesystem"},
		{dest: "/data/x", resolved: "/proc", final: true, wantErr: "mount destination /data/x resolves to /proc: only a proc filesystem"},
		{dest: "/data/x", resolved: "/proc", final: true, proc: true},
		{dest: "/data/x", resolved: "/proc/sys/kernel", final: true, wantErr: "mount destination /data/x resolves to /proc/sys/kernel, inside /proc: refusing to mount there"},
		{dest: "/proc/sys", resolved: "/proc/sys", final: true, wantErr: "inside /proc"},
		{dest: "/proc/1", resolved: "/proc/1", final: true, proc: true, wantErr: "inside /proc"},
		{dest: "/proc/cpuinfo", resolved: "/proc/cpuinfo", final: true},
		{dest: "/data/c", resolved: "/proc/meminfo", final: true},
		{dest: "/proc/net/dev", resolved: "/proc/net/dev", final: true},
		{dest: "/proc/sys/kernel/ns_last_pid", resolved: "/proc/sys/kernel/ns_last_pid", final: true},
		{dest: "/proc/sys/kernel/ns_last_pid", resolved: "/proc/sys/kernel", final: false},
		{dest: "/proc/sys/kernel/ns_last_pid", resolved: "/proc/sys/kernel", final: true, wantErr: "inside /proc"},
		{dest: "/data/x/y", resolved: "/proc/sys/kernel/y", final: false, wantErr: "resolves to /proc/sys/kernel/y, inside /proc"},
		{dest: "/proc", resolved: "/proc", final: false},
		{dest: "/procfoo", resolved: "/procfoo", final: true},
		{dest: "/sys", resolved: "/sys", final: true},
		{dest: "/sys/fs/cgroup", resolved: "/sys/fs/cgroup", final: true},
		{dest: "/sys/kernel/x/", resolved: "/sys/kernel/x", final: true},
		{dest: "/sys/new/dir", resolved: "/sys/new", final: false},
		{dest: "/data/x", resolved: "/sys/kernel", final: true, wantErr: "mount destination /data/x resolves to /sys/kernel, inside /sys, through a symlink"},
		{dest: "/data/x", resolved: "/sys", final: true, wantErr: "inside /sys"},
		{dest: "/data/x/y", resolved: "/sys/firmware/y", final: false, wantErr: "inside /sys"},
		{dest: "/sysx", resolved: "/sysx", final: true},
		{dest: "/proc", resolved: "/proc", fstype: "proc", final: true, proc: true},
		{dest: "/proc", resolved: "/fakeproc", fstype: "proc", final: true, proc: true, wantErr: "mount destination /proc resolves to /fakeproc: a proc filesystem must be mounted on an ordinary directory"},
		{dest: "/sys", resolved: "/fakesys", fstype: "sysfs", final: true, wantErr: "a sysfs filesystem must be mounted on an ordinary directory"},
		{dest: "/sys", resolved: "/sys", fstype: "sysfs", final: true},
	} {
		err := destRule{dest: tc.dest, fstype: tc.fstype, procSource: tc.proc}.check(tc.resolved, tc.final)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s -> %s (final %v, proc %v): %v", tc.dest, tc.resolved, tc.final, tc.proc, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s -> %s (final %v, proc %v): got %v, want %q", tc.dest, tc.resolved, tc.final, tc.proc, err, tc.wantErr)
		}
	}
}

// TestOpenMountPointGuarded: destinations that a symlink leads into /proc
// or /sys are refused before anything is created there.
func TestOpenMountPointGuarded(t *testing.T) {
	root := t.TempDir()
	r := testRoot(t, root, []string{"data", "proc/sys/kernel", "proc/net", "sys/kernel", "sys/firmware"}, []string{"proc/meminfo"}, map[string]string{
		"data/kernel": "/proc/sys/kernel",
		"data/proc":   "../proc",
		"data/sys":    "/sys/kernel",
		"data/fw":     "../sys/firmware",
		"data/mem":    "/proc/meminfo",
		"data/root":   "/",
	})
	for _, tc := range []struct {
		dest    string
		kind    mountPointKind
		proc    bool
		want    string // the mount point inside the root, "" when refused
		wantErr string
	}{
		{dest: "/data/x", kind: mountOnDir, want: "/data/x"},
		{dest: "/proc", kind: mountOnDir, proc: true, want: "/proc"},
		{dest: "/data/proc", kind: mountOnDir, proc: true, want: "/proc"},
		{dest: "/data/proc", kind: mountOnDir, wantErr: "resolves to /proc: only a proc filesystem"},
		{dest: "/data/kernel", kind: mountOnDir, wantErr: "mount destination /data/kernel resolves to /proc/sys/kernel, inside /proc"},
		{dest: "/data/kernel/new/sub", kind: mountOnDir, wantErr: "resolves to /proc/sys/kernel/new, inside /proc"},
		{dest: "/data/proc/sys", kind: mountOnDir, wantErr: "resolves to /proc/sys, inside /proc"},
		{dest: "/data/mem", kind: mountOnFile, want: "/proc/meminfo"},
		{dest: "/proc/net/dev", kind: mountOnFile, want: "/proc/net/dev"},
		{dest: "/data/sys", kind: mountOnDir, wantErr: "resolves to /sys/kernel, inside /sys, through a symlink"},
		{dest: "/data/fw/new", kind: mountOnDir, wantErr: "resolves to /sys/firmware/new, inside /sys"},
		{dest: "/sys/kernel", kind: mountOnDir, want: "/sys/kernel"},
		{dest: "/data/root/sys/kernel", kind: mountOnDir, wantErr: "inside /sys"},
	} {
		guard := specMountGuard(specs.Mount{Destination: tc.dest}, tc.proc)
		mp, err := r.openMountPoint(tc.dest, tc.kind, guard)
		if tc.wantErr != "" {
			if err == nil {
				mp.close()
				t.Errorf("openMountPoint(%q) succeeded, want %q", tc.dest, tc.wantErr)
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("openMountPoint(%q): %v, want %q", tc.dest, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("openMountPoint(%q): %v", tc.dest, err)
			continue
		}
		if mp.path != tc.want {
			t.Errorf("openMountPoint(%q) at %s, want %s", tc.dest, mp.path, tc.want)
		}
		mp.close()
	}
	// Refused destinations created nothing.
	for _, p := range []string{"proc/sys/kernel/new", "sys/firmware/new"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s was created for a refused mount", p)
		}
	}
}
