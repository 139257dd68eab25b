package cgroups

import (
	"errors"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

func ptr[T any](v T) *T { return &v }

const mib = 1 << 20

// v1Unlimited is what memory.memsw.limit_in_bytes reads when unlimited.
const v1Unlimited = 9223372036854771712

func TestV1Writes(t *testing.T) {
	tests := []struct {
		name  string
		res   specs.LinuxResources
		state v1State
		want  []fileWrite
	}{
		{
			name:  "first limits: memory below the unlimited memsw goes first",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](128 * mib)}},
			state: v1State{memswLimit: ptr[int64](v1Unlimited)},
			want: []fileWrite{
				{file: "memory.limit_in_bytes", value: "67108864"},
				{file: "memory.memsw.limit_in_bytes", value: "134217728"},
			},
		},
		{
			name:  "raising above the current memsw moves memsw first",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](256 * mib), Swap: ptr[int64](512 * mib)}},
			state: v1State{memswLimit: ptr[int64](128 * mib)},
			want: []fileWrite{
				{file: "memory.memsw.limit_in_bytes", value: "536870912"},
				{file: "memory.limit_in_bytes", value: "268435456"},
			},
		},
		{
			name:  "unlimited memory after a finite memsw moves memsw first",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-1), Swap: ptr[int64](-1)}},
			state: v1State{memswLimit: ptr[int64](128 * mib)},
			want: []fileWrite{
				{file: "memory.memsw.limit_in_bytes", value: "-1"},
				{file: "memory.limit_in_bytes", value: "-1"},
			},
		},
		{
			name:  "no swap accounting: swap is left out",
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](128 * mib)}},
			state: v1State{},
			want:  []fileWrite{{file: "memory.limit_in_bytes", value: "67108864"}},
		},
		{
			name: "other memory settings",
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{
				Reservation: ptr[int64](32 * mib), Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true),
			}},
			want: []fileWrite{
				{file: "memory.soft_limit_in_bytes", value: "33554432"},
				{file: "memory.swappiness", value: "10"},
				{file: "memory.oom_control", value: "1"},
			},
		},
		{
			name: "cpu: period before quota",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0-1", Mems: "0",
			}},
			want: []fileWrite{
				{file: "cpu.shares", value: "512"},
				{file: "cpu.cfs_period_us", value: "100000", swapOnEINVAL: true},
				{file: "cpu.cfs_quota_us", value: "50000"},
				{file: "cpuset.cpus", value: "0-1"},
				{file: "cpuset.mems", value: "0"},
			},
		},
		{
			name: "cpu: quota alone, unlimited",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](-1)}},
			want: []fileWrite{{file: "cpu.cfs_quota_us", value: "-1"}},
		},
		{
			name: "pids: zero is no limit",
			res:  specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](0)}},
			want: []fileWrite{{file: "pids.max", value: "max"}},
		},
		{
			name: "pids",
			res:  specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](20)}},
			want: []fileWrite{{file: "pids.max", value: "20"}},
		},
		{
			name:  "blkio weight through BFQ",
			res:   specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}},
			state: v1State{blkioWeightFile: "blkio.bfq.weight"},
			want:  []fileWrite{{file: "blkio.bfq.weight", value: "500"}},
		},
		{
			name: "blkio weight without a weight file names blkio.weight",
			res:  specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}},
			want: []fileWrite{{file: "blkio.weight", value: "500"}},
		},
		{
			name: "deprecated kernel memory is ignored",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: ptr[int64](mib)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v1Writes(&tt.res, tt.state)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("v1Writes =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestV2Writes(t *testing.T) {
	tests := []struct {
		name  string
		res   specs.LinuxResources
		state v2State
		want  []fileWrite
	}{
		{
			name: "memory: swap.max is swap alone",
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{
				Limit: ptr[int64](64 * mib), Swap: ptr[int64](128 * mib), Reservation: ptr[int64](32 * mib),
			}},
			want: []fileWrite{
				{file: "memory.max", value: "67108864"},
				{file: "memory.swap.max", value: "67108864", optional: true},
				{file: "memory.low", value: "33554432"},
			},
		},
		{
			name: "memory: unlimited",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-1), Swap: ptr[int64](-1)}},
			want: []fileWrite{
				{file: "memory.max", value: "max"},
				{file: "memory.swap.max", value: "max", optional: true},
			},
		},
		{
			name: "memory: swappiness and the OOM killer have no v2 file",
			res:  specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr[uint64](0), DisableOOMKiller: ptr(true)}},
		},
		{
			name: "cpu",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "1", Mems: "0",
			}},
			want: []fileWrite{
				{file: "cpu.weight", value: "20"},
				{file: "cpu.max", value: "50000 100000"},
				{file: "cpuset.cpus", value: "1"},
				{file: "cpuset.mems", value: "0"},
			},
		},
		{
			name: "cpu: period alone",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr[uint64](50000)}},
			want: []fileWrite{{file: "cpu.max", value: "max 50000"}},
		},
		{
			name: "cpu: quota alone takes the default period",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](20000)}},
			want: []fileWrite{{file: "cpu.max", value: "20000 100000"}},
		},
		{
			name: "cpu: unlimited quota",
			res:  specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](-1), Period: ptr[uint64](100000)}},
			want: []fileWrite{{file: "cpu.max", value: "max 100000"}},
		},
		{
			name: "pids",
			res:  specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](-1)}},
			want: []fileWrite{{file: "pids.max", value: "max"}},
		},
		{
			name:  "io weight rescaled for io.weight",
			res:   specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}},
			state: v2State{ioWeightFile: "io.weight"},
			want:  []fileWrite{{file: "io.weight", value: "default 4950"}},
		},
		{
			name:  "io weight as it is for BFQ",
			res:   specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}},
			state: v2State{ioWeightFile: "io.bfq.weight"},
			want:  []fileWrite{{file: "io.bfq.weight", value: "default 500"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v2Writes(&tt.res, tt.state)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("v2Writes =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestWritesRejectInvalidResources(t *testing.T) {
	tests := []struct {
		name    string
		res     specs.LinuxResources
		v1, v2  bool // which plans must reject it
		wantErr error
	}{
		{
			name: "swap without memory", v2: true, wantErr: errdefs.ErrInvalidArgument,
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr[int64](mib)}},
		},
		{
			name: "swap below memory", v2: true, wantErr: errdefs.ErrInvalidArgument,
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](2 * mib), Swap: ptr[int64](mib)}},
		},
		{
			name: "finite swap with unlimited memory", v2: true, wantErr: errdefs.ErrInvalidArgument,
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-1), Swap: ptr[int64](mib)}},
		},
		{
			name: "swappiness above 100", v1: true, wantErr: errdefs.ErrInvalidArgument,
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr[uint64](101)}},
		},
		{
			name: "realtime cpu", v1: true, v2: true, wantErr: errdefs.ErrNotImplemented,
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr[int64](1000)}},
		},
		{
			name: "hugepages", v1: true, v2: true, wantErr: errdefs.ErrNotImplemented,
			res: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1}}},
		},
		{
			name: "block I/O throttling", v1: true, v2: true, wantErr: errdefs.ErrNotImplemented,
			res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{Rate: 1}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err1 := v1Writes(&tt.res, v1State{})
			_, err2 := v2Writes(&tt.res, v2State{})
			for _, c := range []struct {
				plan    string
				want    bool
				err     error
				wantErr error
			}{{"v1", tt.v1, err1, tt.wantErr}, {"v2", tt.v2, err2, tt.wantErr}} {
				switch {
				case c.want && !errors.Is(c.err, c.wantErr):
					t.Errorf("%s: err = %v, want %v", c.plan, c.err, c.wantErr)
				case !c.want && c.err != nil:
					t.Errorf("%s: unexpected error %v", c.plan, c.err)
				}
			}
		})
	}
}

func TestSharesToWeight(t *testing.T) {
	for _, tt := range []struct{ shares, want uint64 }{
		{1, 1}, {2, 1}, {512, 20}, {1024, 39}, {262144, 10000}, {1 << 20, 10000},
	} {
		if got := sharesToWeight(tt.shares); got != tt.want {
			t.Errorf("sharesToWeight(%d) = %d, want %d", tt.shares, got, tt.want)
		}
	}
}

func TestBlkioToIOWeight(t *testing.T) {
	for _, tt := range []struct {
		weight uint16
		want   uint64
	}{{10, 1}, {100, 910}, {500, 4950}, {1000, 10000}} {
		if got := blkioToIOWeight(tt.weight); got != tt.want {
			t.Errorf("blkioToIOWeight(%d) = %d, want %d", tt.weight, got, tt.want)
		}
	}
}
