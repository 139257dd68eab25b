package container

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const cgID = "0123456789abcdef"

// writeTree writes files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
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

const fixtureProcStat = `cpu  1000 20 300 5000 40 5 15 7 0 0
cpu0 500 10 150 2500 20 3 7 4 0 0
cpu1 500 10 150 2500 20 2 8 3 0 0
intr 12345 0 0
ctxt 6789
btime 1700000000
`

const fixtureMeminfo = `MemTotal:        2048000 kB
MemFree:          512000 kB
MemAvailable:    1024000 kB
`

const fixtureNetDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    9999      10    0    0    0     0          0         0     9999      10    0    0    0     0       0          0
  eth0:    1500      12    1    2    0     0          0         0      700       8    3    4    0     0       0          0
  eth1:     500       3    0    0    0     0          0         0      300       2    0    0    0     0       0          0
`

// procFixture is the /proc part shared by the layouts: host CPU time
// (1000+20+300+5000+40+5+15 = 6380 ticks = 63.8 s; steal is left out as
// docker does), 2 CPUs, 2048000 kB of memory, and the network counters of
// pid 42.
func procFixture() map[string]string {
	return map[string]string{
		"proc/stat":       fixtureProcStat,
		"proc/meminfo":    fixtureMeminfo,
		"proc/42/net/dev": fixtureNetDev,
	}
}

const hostMem = 2048000 * 1024

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestSample(t *testing.T) {
	v1 := "cgroup/"
	v1cpu := v1 + "cpuacct/berth/" + cgID + "/"
	v1mem := v1 + "memory/berth/" + cgID + "/"
	v1pids := v1 + "pids/berth/" + cgID + "/"
	v1blk := v1 + "blkio/berth/" + cgID + "/"
	v2 := "cgroup/berth/" + cgID + "/"
	wantNets := map[string]NetworkStats{
		"eth0": {RxBytes: 1500, RxPackets: 12, RxErrors: 1, RxDropped: 2, TxBytes: 700, TxPackets: 8, TxErrors: 3, TxDropped: 4},
		"eth1": {RxBytes: 500, RxPackets: 3, TxBytes: 300, TxPackets: 2},
	}

	tests := []struct {
		name    string
		files   map[string]string
		withNet bool
		want    Stats
	}{
		{
			name: "v1 limited",
			files: map[string]string{
				v1cpu + "cpuacct.usage":                   "123456789\n",
				v1mem + "memory.usage_in_bytes":           "10485760\n",
				v1mem + "memory.limit_in_bytes":           "67108864\n",
				v1mem + "memory.stat":                     "cache 4096\ninactive_file 1024\ntotal_inactive_file 2097152\ntotal_rss 8388608\n",
				v1pids + "pids.current":                   "3\n",
				v1pids + "pids.max":                       "100\n",
				v1blk + "blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\n8:16 Read 1000\n8:16 Write 0\nTotal 13288\n",
			},
			withNet: true,
			want: Stats{
				CPUUsage: 123456789, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 10485760, MemoryUsage: 10485760 - 2097152, MemoryLimit: 67108864,
				MemoryStat: map[string]uint64{"cache": 4096, "inactive_file": 1024, "total_inactive_file": 2097152, "total_rss": 8388608},
				PIDs:       3, PIDsLimit: 100,
				BlockRead: 5096, BlockWrite: 8192,
				Networks: wantNets,
			},
		},
		{
			// cpu and cpuacct mounted together; no limit (v1's page-aligned
			// maximum); no pids controller; throttle stats empty, CFQ ones not.
			name: "v1 unlimited, combined cpu,cpuacct",
			files: map[string]string{
				v1 + "cpu,cpuacct/berth/" + cgID + "/cpuacct.usage": "42\n",
				v1mem + "memory.usage_in_bytes":                     "4096\n",
				v1mem + "memory.limit_in_bytes":                     "9223372036854771712\n",
				v1mem + "memory.stat":                               "total_inactive_file 8192\n",
				v1blk + "blkio.throttle.io_service_bytes":           "Total 0\n",
				v1blk + "blkio.io_service_bytes_recursive":          "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
			},
			want: Stats{
				CPUUsage: 42, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 4096, MemoryUsage: 4096, MemoryLimit: hostMem,
				MemoryStat: map[string]uint64{"total_inactive_file": 8192},
				BlockRead:  10, BlockWrite: 20,
			},
		},
		{
			name: "v2 limited",
			files: map[string]string{
				"cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
				v2 + "cpu.stat":             "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
				v2 + "memory.current":       "3145728\n",
				v2 + "memory.max":           "67108864\n",
				v2 + "memory.stat":          "anon 2097152\nfile 1048576\ninactive_file 1048576\n",
				v2 + "pids.current":         "2\n",
				v2 + "pids.max":             "max\n",
				v2 + "io.stat":              "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n253:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
			},
			withNet: true,
			want: Stats{
				CPUUsage: 1_500_000, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 3145728, MemoryUsage: 2097152, MemoryLimit: 67108864,
				MemoryStat: map[string]uint64{"anon": 2097152, "file": 1048576, "inactive_file": 1048576},
				PIDs:       2,
				BlockRead:  4196, BlockWrite: 512,
				Networks: wantNets,
			},
		},
		{
			// memory.max "max"; pids and io controllers not enabled.
			name: "v2 unlimited, no pids or io",
			files: map[string]string{
				"cgroup/cgroup.controllers": "memory\n",
				v2 + "cpu.stat":             "usage_usec 7\n",
				v2 + "memory.current":       "1000\n",
				v2 + "memory.max":           "max\n",
				v2 + "memory.stat":          "inactive_file 5000\n",
			},
			want: Stats{
				CPUUsage: 7000, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 1000, MemoryUsage: 1000, MemoryLimit: hostMem,
				MemoryStat: map[string]uint64{"inactive_file": 5000},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, merge(procFixture(), tc.files))
			p := statPaths{cgroupRoot: filepath.Join(dir, "cgroup"), procRoot: filepath.Join(dir, "proc")}
			got, err := p.sample(CgroupsPath(cgID), 42, tc.withNet)
			if err != nil {
				t.Fatal(err)
			}
			if got.Read.IsZero() {
				t.Error("Read time not set")
			}
			got.Read = tc.want.Read
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestSampleMissingCgroup(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"v1": {"cgroup/memory/berth/other/memory.usage_in_bytes": "1\n"},
		"v2": {"cgroup/cgroup.controllers": "memory\n"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, merge(procFixture(), files))
			p := statPaths{cgroupRoot: filepath.Join(dir, "cgroup"), procRoot: filepath.Join(dir, "proc")}
			if _, err := p.sample(CgroupsPath(cgID), 42, true); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("sample of a missing cgroup: %v, want not-exist", err)
			}
		})
	}
}

func TestCPUPercent(t *testing.T) {
	const sec = 1_000_000_000
	tests := []struct {
		name      string
		prev, cur *Stats
		want      float64
	}{
		{"no previous reading", nil, &Stats{CPUUsage: sec, SystemCPUUsage: 2 * sec, OnlineCPUs: 2}, 0},
		// 0.1 s of CPU while the host's 2 CPUs ran 2 s in all: 5% of the
		// host, 10% of one CPU.
		{"a tenth of one CPU", &Stats{CPUUsage: 0, SystemCPUUsage: 100 * sec, OnlineCPUs: 2},
			&Stats{CPUUsage: sec / 10, SystemCPUUsage: 102 * sec, OnlineCPUs: 2}, 10},
		{"two busy CPUs of four", &Stats{CPUUsage: 5 * sec, SystemCPUUsage: 100 * sec, OnlineCPUs: 4},
			&Stats{CPUUsage: 7 * sec, SystemCPUUsage: 104 * sec, OnlineCPUs: 4}, 200},
		{"idle container", &Stats{CPUUsage: sec, SystemCPUUsage: 100 * sec, OnlineCPUs: 2},
			&Stats{CPUUsage: sec, SystemCPUUsage: 102 * sec, OnlineCPUs: 2}, 0},
		{"system counter did not move", &Stats{CPUUsage: sec, SystemCPUUsage: 100 * sec, OnlineCPUs: 2},
			&Stats{CPUUsage: 2 * sec, SystemCPUUsage: 100 * sec, OnlineCPUs: 2}, 0},
		{"counter reset by a restart", &Stats{CPUUsage: 9 * sec, SystemCPUUsage: 100 * sec, OnlineCPUs: 2},
			&Stats{CPUUsage: sec, SystemCPUUsage: 102 * sec, OnlineCPUs: 2}, 0},
		{"unknown CPU count counts as one", &Stats{CPUUsage: 0, SystemCPUUsage: 100 * sec},
			&Stats{CPUUsage: sec, SystemCPUUsage: 102 * sec}, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CPUPercent(tc.prev, tc.cur); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("CPUPercent = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMemoryUsageNoCache(t *testing.T) {
	tests := []struct {
		name  string
		usage uint64
		stat  map[string]uint64
		want  uint64
	}{
		{"v1 subtracts total_inactive_file", 1000, map[string]uint64{"total_inactive_file": 300, "inactive_file": 100}, 700},
		{"v2 subtracts inactive_file", 1000, map[string]uint64{"inactive_file": 100}, 900},
		{"no memory.stat", 1000, nil, 1000},
		{"no inactive file counter", 1000, map[string]uint64{"cache": 500}, 1000},
		{"cache not below usage", 1000, map[string]uint64{"total_inactive_file": 1000}, 1000},
		{"cache above usage", 1000, map[string]uint64{"inactive_file": 5000}, 1000},
		{"zero cache", 1000, map[string]uint64{"inactive_file": 0}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := memoryUsageNoCache(tc.usage, tc.stat); got != tc.want {
				t.Errorf("memoryUsageNoCache(%d, %v) = %d, want %d", tc.usage, tc.stat, got, tc.want)
			}
		})
	}
}

func TestEffectiveMemoryLimit(t *testing.T) {
	tests := []struct {
		name              string
		limit, host, want uint64
	}{
		{"limited", 64 << 20, 8 << 30, 64 << 20},
		{"v2 max", 0, 8 << 30, 8 << 30},
		{"v1 maximum", 9223372036854771712, 8 << 30, 8 << 30},
		{"above host memory", 16 << 30, 8 << 30, 8 << 30},
		{"host memory unknown", 64 << 20, 0, 64 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := effectiveMemoryLimit(tc.limit, tc.host); got != tc.want {
				t.Errorf("effectiveMemoryLimit(%d, %d) = %d, want %d", tc.limit, tc.host, got, tc.want)
			}
		})
	}
}

func TestMemoryPercent(t *testing.T) {
	if got := (&Stats{MemoryUsage: 16 << 20, MemoryLimit: 64 << 20}).MemoryPercent(); got != 25 {
		t.Errorf("MemoryPercent = %v, want 25", got)
	}
	if got := (&Stats{MemoryUsage: 1}).MemoryPercent(); got != 0 {
		t.Errorf("MemoryPercent without limit = %v, want 0", got)
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

func TestParseProcStat(t *testing.T) {
	ns, cpus, err := parseProcStat([]byte(fixtureProcStat))
	if err != nil || ns != 63_800_000_000 || cpus != 2 {
		t.Errorf("parseProcStat = %d, %d, %v", ns, cpus, err)
	}
	for name, in := range map[string]string{
		"no cpu line":    "intr 1\n",
		"too few fields": "cpu 1 2 3\n",
		"non-numeric":    "cpu 1 2 3 x 5 6 7\n",
		"empty":          "",
	} {
		if _, _, err := parseProcStat([]byte(in)); err == nil {
			t.Errorf("%s: parseProcStat succeeded", name)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	if n, err := parseMemTotal([]byte(fixtureMeminfo)); err != nil || n != hostMem {
		t.Errorf("parseMemTotal = %d, %v; want %d", n, err, uint64(hostMem))
	}
	if _, err := parseMemTotal([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("parseMemTotal without MemTotal succeeded")
	}
}

func TestParseNetDevShortLine(t *testing.T) {
	if _, err := parseNetDev([]byte("eth0: 1 2 3\n")); err == nil {
		t.Error("parseNetDev of a short line succeeded")
	}
	nets, err := parseNetDev([]byte("Inter-|\n face |\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"))
	if err != nil || len(nets) != 0 {
		t.Errorf("loopback only: %v, %v", nets, err)
	}
}
