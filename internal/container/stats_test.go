package container

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

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

// TestSample checks how a cgroup reading is completed with the host's
// CPU time and memory and the init's network counters (the cgroup
// reading itself is tested in internal/runtime/cgroups).
func TestSample(t *testing.T) {
	wantNets := map[string]NetworkStats{
		"eth0": {RxBytes: 1500, RxPackets: 12, RxErrors: 1, RxDropped: 2, TxBytes: 700, TxPackets: 8, TxErrors: 3, TxDropped: 4},
		"eth1": {RxBytes: 500, RxPackets: 3, TxBytes: 300, TxPackets: 2},
	}
	tests := []struct {
		name    string
		cg      runtime.CgroupStats
		withNet bool
		want    Stats
	}{
		{
			name: "v1 limited",
			cg: runtime.CgroupStats{
				CPUUsage: 123456789, MemoryRaw: 10485760, MemoryLimit: 67108864,
				MemoryStat: map[string]uint64{"cache": 4096, "inactive_file": 1024, "total_inactive_file": 2097152, "total_rss": 8388608},
				PIDs:       3, PIDsLimit: 100, BlockRead: 5096, BlockWrite: 8192,
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
			name: "v1 unlimited (page-aligned maximum)",
			cg: runtime.CgroupStats{
				CPUUsage: 42, MemoryRaw: 4096, MemoryLimit: 9223372036854771712,
				MemoryStat: map[string]uint64{"total_inactive_file": 8192},
			},
			want: Stats{
				CPUUsage: 42, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 4096, MemoryUsage: 4096, MemoryLimit: hostMem,
				MemoryStat: map[string]uint64{"total_inactive_file": 8192},
			},
		},
		{
			name: "v2 unlimited",
			cg: runtime.CgroupStats{
				CPUUsage: 7000, MemoryRaw: 1000, MemoryStat: map[string]uint64{"inactive_file": 5000},
			},
			withNet: true,
			want: Stats{
				CPUUsage: 7000, SystemCPUUsage: 63_800_000_000, OnlineCPUs: 2,
				MemoryRaw: 1000, MemoryUsage: 1000, MemoryLimit: hostMem,
				MemoryStat: map[string]uint64{"inactive_file": 5000},
				Networks:   wantNets,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, procFixture())
			got, err := procRoot(filepath.Join(dir, "proc")).sample(&tc.cg, 42, tc.withNet)
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
