package engine

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

func TestCheckUpdate(t *testing.T) {
	host := runtime.HostResources{NumCPU: 2, CPUs: "0-1", Mems: "0", BlkioWeight: false}
	tests := []struct {
		name    string
		req     UpdateRequest
		err     string // Docker's message; "" for none
		warning string
	}{
		{"memory", UpdateRequest{Memory: 32 << 20}, "", ""},
		{"memory too small", UpdateRequest{Memory: 5 << 20}, "Minimum memory limit allowed is 6MB", ""},
		{"swap below memory", UpdateRequest{Memory: 100 << 20, MemorySwap: 50 << 20}, "Minimum memoryswap limit should be larger than memory limit, see usage", ""},
		{"reservation too small", UpdateRequest{MemoryReservation: 1 << 20}, "Minimum memory reservation allowed is 6MB", ""},
		{"reservation above memory", UpdateRequest{Memory: 10 << 20, MemoryReservation: 20 << 20}, "Minimum memory limit can not be less than memory reservation limit, see usage", ""},
		{"cpus and period", UpdateRequest{NanoCPUs: 5e8, CPUPeriod: 50000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set", ""},
		{"too many cpus", UpdateRequest{NanoCPUs: 3e9}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available", ""},
		{"bad period", UpdateRequest{CPUPeriod: 500}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)", ""},
		{"cpuset unavailable", UpdateRequest{CpusetCpus: "7"}, "Requested CPUs are not available - requested 7, available: 0-1", ""},
		{"cpuset invalid", UpdateRequest{CpusetCpus: "x"}, "Invalid value x for cpuset cpus", ""},
		{"mems unavailable", UpdateRequest{CpusetMems: "1"}, "Requested memory nodes are not available - requested 1, available: 0", ""},
		{"kernel memory", UpdateRequest{KernelMemory: 10 << 20}, "", "Specifying a kernel memory limit is deprecated"},
		{"blkio weight unsupported", UpdateRequest{BlkioWeight: 5}, "", "Your kernel does not support Block I/O weight"},
		{"unknown policy", UpdateRequest{RestartPolicy: container.RestartPolicy{Name: "bogus"}}, "invalid restart policy 'bogus'", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := &UpdateResult{}
			req := tc.req
			err := checkUpdate(&req, host, res)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err || !errdefs.IsInvalidArgument(err)):
				t.Fatalf("error %v, want invalid argument %q", err, tc.err)
			}
			if got := strings.Join(res.Warnings, "\n"); (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings %q, want %q", got, tc.warning)
			}
		})
	}
}
