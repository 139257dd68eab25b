package container

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestMergeUpdate(t *testing.T) {
	pids := int64(20)
	always := RestartPolicy{Name: "always"}
	tests := []struct {
		name string
		have HostConfig
		u    UpdateOptions
		want func(HostConfig) bool
		err  string
	}{
		{"memory within swap", HostConfig{Resources: Resources{Memory: 64 << 20, MemorySwap: 128 << 20}}, UpdateOptions{Resources: Resources{Memory: 32 << 20}},
			func(h HostConfig) bool { return h.Memory == 32<<20 && h.MemorySwap == 128<<20 }, ""},
		{"swap implied by memory", HostConfig{Resources: Resources{Memory: 64 << 20}}, UpdateOptions{Resources: Resources{Memory: 100 << 20}},
			func(h HostConfig) bool { return h.Memory == 100<<20 && h.MemorySwap == 128<<20 }, ""},
		{"memory above swap", HostConfig{Resources: Resources{Memory: 64 << 20, MemorySwap: 128 << 20}}, UpdateOptions{Resources: Resources{Memory: 200 << 20}},
			nil, "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"},
		{"memory of an unlimited container", HostConfig{}, UpdateOptions{Resources: Resources{Memory: 32 << 20}},
			nil, "Memory limit should be smaller than already set memoryswap limit"},
		{"memory with swap", HostConfig{}, UpdateOptions{Resources: Resources{Memory: 32 << 20, MemorySwap: -1}},
			func(h HostConfig) bool { return h.Memory == 32<<20 && h.MemorySwap == -1 }, ""},
		{"cpus over period", HostConfig{Resources: Resources{CPUPeriod: 50000}}, UpdateOptions{Resources: Resources{NanoCPUs: 5e8}},
			nil, "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"},
		{"quota over cpus", HostConfig{Resources: Resources{NanoCPUs: 5e8}}, UpdateOptions{Resources: Resources{CPUQuota: 50000}},
			nil, "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"},
		{"pids and policy", HostConfig{}, UpdateOptions{Resources: Resources{PidsLimit: &pids}, RestartPolicy: &always},
			func(h HostConfig) bool { return *h.PidsLimit == 20 && h.RestartPolicy.Name == "always" }, ""},
		{"policy of a --rm container", HostConfig{AutoRemove: true}, UpdateOptions{RestartPolicy: &always},
			nil, "Restart policy cannot be updated because AutoRemove is enabled for the container"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Container{ID: "abc", HostConfig: tc.have}
			err := mergeUpdate(c, tc.u)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "Cannot update container abc: "+tc.err) || !errdefs.IsConflict(err) {
					t.Fatalf("error %v, want a conflict %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(c.HostConfig) {
				t.Errorf("merged %+v", c.HostConfig.Resources)
			}
		})
	}
}
