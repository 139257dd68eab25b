package engine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/volume"
)

func TestHostConfigMemorySwap(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name         string
		memory, swap int64
		wantSwap     int64
	}{
		{"no limits", 0, 0, 0},
		{"memory only: twice the memory, as Docker applies it", 512 * mb, 0, 1024 * mb},
		{"unlimited swap", 64 * mb, -1, -1},
		{"explicit swap", 512 * mb, 1024 * mb, 1024 * mb},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &container.HostConfig{}
			h.Memory, h.MemorySwap = tc.memory, tc.swap
			if got := hostConfig(h).MemorySwap; got != tc.wantSwap {
				t.Errorf("MemorySwap = %d, want %d", got, tc.wantSwap)
			}
		})
	}
}

func TestContainerCommand(t *testing.T) {
	for _, tc := range []struct {
		path string
		args []string
		want string
	}{
		{"sh", []string{"-c", "exit 3"}, "sh -c 'exit 3'"},
		{"sleep", []string{"100"}, "sleep 100"},
		{"/bin/true", nil, "/bin/true"},
		{"echo", []string{"a\tb", ""}, "echo a\tb "}, // only spaces are quoted, as Docker does
	} {
		if got := ContainerCommand(tc.path, tc.args); got != tc.want {
			t.Errorf("ContainerCommand(%q, %q) = %q, want %q", tc.path, tc.args, got, tc.want)
		}
	}
}

// TestDocumentShape: nested objects keep Docker's field order (they are
// structs, not maps) and empty values print as Docker prints them.
func TestDocumentShape(t *testing.T) {
	h := &container.HostConfig{
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}},
		RestartPolicy: container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2},
		CapAdd:        []string{"net_admin", "ALL"},
	}
	h.Ulimits = []*container.Ulimit{{Name: "nofile", Hard: 2048, Soft: 1024}}
	raw, err := json.Marshal(hostConfig(h))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}}`,
		`"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2}`,
		`"Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}]`,
		`"CapAdd":["CAP_NET_ADMIN","ALL"],"CapDrop":null`,
		`"PortBindings":{}`,
		`"Dns":[],"DnsOptions":[],"DnsSearch":[]`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("HostConfig lacks %s:\n%s", want, raw)
		}
	}

	v := volumeDocument(&volume.Volume{Name: "v", Driver: "local", Mountpoint: "/x", Scope: "local",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Labels: map[string]string{}, Options: map[string]string{}})
	raw, _ = json.Marshal(v)
	if want := `{"CreatedAt":"2026-01-02T03:04:05Z","Driver":"local","Labels":null,"Mountpoint":"/x","Name":"v","Options":null,"Scope":"local"}`; string(raw) != want {
		t.Errorf("volume document\n got %s\nwant %s", raw, want)
	}
}

func TestMountPointsAsDocker(t *testing.T) {
	c := &container.Container{
		HostConfig: container.HostConfig{
			Tmpfs:  map[string]string{"/t": ""},
			Mounts: []container.MountSpec{{Type: "bind", Source: "/h", Target: "/m", ReadOnly: true}},
		},
		Mounts: []container.MountInfo{
			{Type: "volume", Name: "named", Destination: "/n", RW: true},
			{Type: "volume", Name: "named-ro", Destination: "/r", Mode: "ro"},
			{Type: "volume", Name: "0123anon", Destination: "/a", RW: true},
			{Type: "bind", Source: "/h", Destination: "/m", Mode: "ro", Propagation: "rprivate"},
			{Type: "tmpfs", Destination: "/t", RW: true},
		},
		Internal: container.Internal{AnonymousVolumes: []string{"0123anon"}},
	}
	got := map[string]string{}
	for _, m := range mountPoints(c) {
		got[m.Destination] = m.Mode
	}
	want := map[string]string{"/n": "z", "/r": "ro", "/a": "", "/m": ""}
	if len(got) != len(want) {
		t.Errorf("mounts %v, want %v (the --tmpfs one is not listed)", got, want)
	}
	for d, mode := range want {
		if got[d] != mode {
			t.Errorf("Mode of %s = %q, want %q", d, got[d], mode)
		}
	}
}
