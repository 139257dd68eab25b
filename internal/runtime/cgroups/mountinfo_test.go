package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

func TestDetectLayout(t *testing.T) {
	const hybrid = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	tests := []struct {
		name      string
		mountinfo string
		want      layout
		wantErr   string
	}{
		{
			name:      "hybrid",
			mountinfo: hybrid,
			want: layout{mode: Hybrid, v2: "/sys/fs/cgroup/unified", v1: []hierarchy{
				{[]string{"cpu"}, "/sys/fs/cgroup/cpu"},
				{[]string{"cpuacct"}, "/sys/fs/cgroup/cpuacct"},
				{[]string{"cpuset"}, "/sys/fs/cgroup/cpuset"},
				{[]string{"memory"}, "/sys/fs/cgroup/memory"},
				{[]string{"name=systemd"}, "/sys/fs/cgroup/systemd"},
			}},
		},
		{
			name: "legacy with co-mounted controllers and mount flags",
			mountinfo: `25 24 0:22 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
29 24 0:26 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:11 - cgroup cgroup rw,net_cls,net_prio
30 24 0:27 / /sys/fs/cgroup/cpuset rw,nosuid shared:12 - cgroup cgroup rw,cpuset,clone_children
`,
			want: layout{mode: Legacy, v1: []hierarchy{
				{[]string{"name=systemd"}, "/sys/fs/cgroup/systemd"},
				{[]string{"cpu", "cpuacct"}, "/sys/fs/cgroup/cpu,cpuacct"},
				{[]string{"net_cls", "net_prio"}, "/sys/fs/cgroup/net_cls,net_prio"},
				{[]string{"cpuset"}, "/sys/fs/cgroup/cpuset"},
			}},
		},
		{
			name:      "unified",
			mountinfo: "26 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
			want:      layout{mode: Unified, v2: "/sys/fs/cgroup"},
		},
		{
			name: "unified with a leftover named v1 hierarchy",
			mountinfo: `26 23 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
40 26 0:37 / /run/systemd/named rw - cgroup cgroup rw,name=systemd
`,
			want: layout{mode: Unified, v2: "/sys/fs/cgroup"},
		},
		{
			name: "bind mount of a sub-tree is not the hierarchy's mount",
			mountinfo: `90 80 0:32 /docker/abc /mnt/memory rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:32 / /other/memory rw - cgroup cgroup rw,memory
`,
			want: layout{mode: Legacy, v1: []hierarchy{{[]string{"memory"}, "/sys/fs/cgroup/memory"}}},
		},
		{
			name: "a second cgroup2 mount does not hide the canonical one",
			mountinfo: `50 1 0:38 / /run/other rw - cgroup2 cgroup2 rw
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`,
			want: layout{mode: Hybrid, v2: "/sys/fs/cgroup/unified", v1: []hierarchy{{[]string{"memory"}, "/sys/fs/cgroup/memory"}}},
		},
		{
			name:      "escaped mount point",
			mountinfo: `35 31 0:32 / /srv/cg\040root/memory rw - cgroup cgroup rw,memory` + "\n",
			want:      layout{mode: Legacy, v1: []hierarchy{{[]string{"memory"}, "/srv/cg root/memory"}}},
		},
		{
			name:      "optional fields before the separator",
			mountinfo: "35 31 0:32 / /sys/fs/cgroup/pids rw shared:15 master:3 - cgroup cgroup rw,pids\n",
			want:      layout{mode: Legacy, v1: []hierarchy{{[]string{"pids"}, "/sys/fs/cgroup/pids"}}},
		},
		{
			name:      "no cgroup mounts",
			mountinfo: "22 1 0:21 / /sys rw - sysfs sysfs rw\n",
			wantErr:   "no cgroup hierarchy",
		},
		{
			name:      "malformed line",
			mountinfo: "22 1 0:21 / /sys rw sysfs\n",
			wantErr:   "malformed mountinfo line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := parseMountinfo(strings.NewReader(tt.mountinfo))
			var got layout
			if err == nil {
				got, err = detectLayout(mounts)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("layout =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestNewManagerRejectsBadPaths(t *testing.T) {
	l := layout{mode: Unified, v2: "/sys/fs/cgroup"}
	for _, path := range []string{"", "berth/x", "/", "/berth/../x", "/berth/x/", "/berth//x"} {
		if _, err := newManager(path, l); err == nil {
			t.Errorf("newManager(%q) succeeded, want an error", path)
		}
	}
}

func TestPaths(t *testing.T) {
	hybrid := layout{mode: Hybrid, v2: "/sys/fs/cgroup/unified", v1: []hierarchy{
		{[]string{"cpu", "cpuacct"}, "/sys/fs/cgroup/cpu,cpuacct"},
		{[]string{"name=systemd"}, "/sys/fs/cgroup/systemd"},
	}}
	tests := []struct {
		name string
		l    layout
		want map[string]string
	}{
		{"hybrid", hybrid, map[string]string{
			"cpu":          "/sys/fs/cgroup/cpu,cpuacct/berth/c1",
			"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/berth/c1",
			"name=systemd": "/sys/fs/cgroup/systemd/berth/c1",
			"":             "/sys/fs/cgroup/unified/berth/c1",
		}},
		{"unified", layout{mode: Unified, v2: "/sys/fs/cgroup"}, map[string]string{"": "/sys/fs/cgroup/berth/c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newManager("/berth/c1", tt.l)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Paths(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Paths() = %v, want %v", got, tt.want)
			}
		})
	}
}
