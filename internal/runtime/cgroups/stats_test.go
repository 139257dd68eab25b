package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const statID = "0123456789abcdef"

func writeFixture(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixtureLayout is a hybrid or unified layout rooted in dir.
func fixtureLayout(dir string, unified bool, cpuName string) layout {
	if unified {
		return layout{mode: Unified, v2: dir}
	}
	h := func(name string, ctrls ...string) hierarchy {
		return hierarchy{controllers: ctrls, mountpoint: filepath.Join(dir, name)}
	}
	cpu := h(cpuName, "cpuacct")
	if cpuName == "cpu,cpuacct" {
		cpu.controllers = []string{"cpu", "cpuacct"}
	}
	return layout{mode: Hybrid, v2: filepath.Join(dir, "unified"), v1: []hierarchy{
		cpu, h("memory", "memory"), h("pids", "pids"), h("blkio", "blkio"),
	}}
}

func TestStats(t *testing.T) {
	cg := "/berth/" + statID + "/"
	tests := []struct {
		name    string
		unified bool
		cpuName string
		files   map[string]string
		want    Stats
		oom     bool
	}{
		{
			name: "v1 limited", cpuName: "cpuacct",
			files: map[string]string{
				"cpuacct" + cg + "cpuacct.usage":                 "123456789\n",
				"memory" + cg + "memory.usage_in_bytes":          "10485760\n",
				"memory" + cg + "memory.limit_in_bytes":          "67108864\n",
				"memory" + cg + "memory.stat":                    "cache 4096\ntotal_inactive_file 2097152\n",
				"memory" + cg + "memory.oom_control":             "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
				"pids" + cg + "pids.current":                     "3\n",
				"pids" + cg + "pids.max":                         "100\n",
				"blkio" + cg + "blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n8:16 Read 1000\nTotal 13288\n",
			},
			want: Stats{CPUUsage: 123456789, MemoryRaw: 10485760, MemoryLimit: 67108864,
				MemoryStat: map[string]uint64{"cache": 4096, "total_inactive_file": 2097152},
				PIDs:       3, PIDsLimit: 100, BlockRead: 5096, BlockWrite: 8192},
			oom: true,
		},
		{
			// cpu and cpuacct mounted together; no pids controller
			// files; throttle stats empty, CFQ ones not.
			name: "v1 combined cpu,cpuacct", cpuName: "cpu,cpuacct",
			files: map[string]string{
				"cpu,cpuacct" + cg + "cpuacct.usage":              "42\n",
				"memory" + cg + "memory.usage_in_bytes":           "4096\n",
				"memory" + cg + "memory.limit_in_bytes":           "9223372036854771712\n",
				"memory" + cg + "memory.stat":                     "total_inactive_file 8192\n",
				"memory" + cg + "memory.oom_control":              "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
				"blkio" + cg + "blkio.throttle.io_service_bytes":  "Total 0\n",
				"blkio" + cg + "blkio.io_service_bytes_recursive": "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
			},
			want: Stats{CPUUsage: 42, MemoryRaw: 4096, MemoryLimit: 9223372036854771712,
				MemoryStat: map[string]uint64{"total_inactive_file": 8192}, BlockRead: 10, BlockWrite: 20},
		},
		{
			name: "v2 limited", unified: true,
			files: map[string]string{
				cg + "cpu.stat":       "usage_usec 1500\nuser_usec 1000\n",
				cg + "memory.current": "3145728\n",
				cg + "memory.max":     "67108864\n",
				cg + "memory.stat":    "anon 2097152\ninactive_file 1048576\n",
				cg + "memory.events":  "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
				cg + "pids.current":   "2\n",
				cg + "pids.max":       "max\n",
				cg + "io.stat":        "8:0 rbytes=4096 wbytes=512 rios=1\n253:0 rbytes=100 wbytes=0\n",
			},
			want: Stats{CPUUsage: 1_500_000, MemoryRaw: 3145728, MemoryLimit: 67108864,
				MemoryStat: map[string]uint64{"anon": 2097152, "inactive_file": 1048576},
				PIDs:       2, BlockRead: 4196, BlockWrite: 512},
			oom: true,
		},
		{
			name: "v2 unlimited, no pids or io", unified: true,
			files: map[string]string{
				cg + "cpu.stat":       "usage_usec 7\n",
				cg + "memory.current": "1000\n",
				cg + "memory.max":     "max\n",
				cg + "memory.stat":    "inactive_file 5000\n",
			},
			want: Stats{CPUUsage: 7000, MemoryRaw: 1000, MemoryStat: map[string]uint64{"inactive_file": 5000}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFixture(t, dir, tc.files)
			m, err := newManager("/berth/"+statID, fixtureLayout(dir, tc.unified, tc.cpuName))
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
			if oom := m.OOMKilled(); oom != tc.oom {
				t.Errorf("OOMKilled = %v, want %v", oom, tc.oom)
			}
		})
	}
}

func TestStatsMissingCgroup(t *testing.T) {
	for name, unified := range map[string]bool{"v1": false, "v2": true} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFixture(t, dir, map[string]string{"memory/berth/other/memory.usage_in_bytes": "1\n"})
			m, err := newManager("/berth/"+statID, fixtureLayout(dir, unified, "cpuacct"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Stats(); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Stats of a missing cgroup: %v, want not-exist", err)
			}
			if m.OOMKilled() {
				t.Error("OOMKilled of a missing cgroup")
			}
		})
	}
}

func TestParseBlkioV1(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		read, write uint64
		found       bool
	}{
		{"empty cgroup", "Total 0\n", 0, 0, false},
		{"lower-case ops", "8:0 read 1\n8:0 write 2\n8:0 total 3\n", 1, 2, true},
		{"two devices", "8:0 Read 1\n8:0 Write 2\n8:16 Read 10\n8:16 Write 20\nTotal 33\n", 11, 22, true},
		{"garbage", "what is this\n8:0 Read x\n", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, found := parseBlkioV1([]byte(tc.in))
			if r != tc.read || w != tc.write || found != tc.found {
				t.Errorf("parseBlkioV1 = %d, %d, %v; want %d, %d, %v", r, w, found, tc.read, tc.write, tc.found)
			}
		})
	}
}
