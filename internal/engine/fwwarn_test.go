package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/berth-dev/berth/internal/network"
)

// TestForwardWarningsReachCreate: the forward check's warnings (a fake
// here: the real one reads the host's firewall) are create's Warnings for
// a container on a bridge network, and network create's Warning; a
// container on none, host or another's namespace has none (run's, which
// needs a running container, is TestForwardDropWarning's in test/e2e).
func TestForwardWarningsReachCreate(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	var asked []string
	e.forwardCheck = func(n *network.Network) []string {
		asked = append(asked, n.Name)
		return []string{"blocked " + n.Name, "also " + n.Name}
	}
	var ids []string
	net, err := e.NetworkCreate(ctx, NetworkCreateRequest{Name: "fwnet"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range ids {
			if err := e.ContainerRemove(ctx, id, ContainerRemoveRequest{Force: true}); err != nil {
				t.Error(err)
			}
		}
		if err := e.NetworkRemove(ctx, net.ID); err != nil {
			t.Error(err)
		}
	})
	if want := "blocked fwnet\nalso fwnet"; net.Warning != want {
		t.Errorf("network create Warning = %q, want %q", net.Warning, want)
	}
	if _, err := e.ImageImport(ctx, oneFileTar(t, "hello", "hi\n"), ImageImportRequest{Reference: "fwimg", Source: "-"}); err != nil {
		t.Fatal(err)
	}
	first, err := e.CreateContainer(ctx, ContainerCreateRequest{Config: CreateContainerConfig{Image: "fwimg", Cmd: []string{"/hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, first.ID)
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"", []string{"blocked bridge", "also bridge"}},
		{"bridge", []string{"blocked bridge", "also bridge"}},
		{"fwnet", []string{"blocked fwnet", "also fwnet"}},
		{"none", []string{}},
		{"host", []string{}},
		{"container:" + first.ID, []string{}},
	} {
		asked = nil
		res, err := e.CreateContainer(ctx, ContainerCreateRequest{Config: CreateContainerConfig{Image: "fwimg", Cmd: []string{"/hello"}},
			HostConfig: CreateHostConfig{NetworkMode: tc.mode}})
		if err != nil {
			t.Fatalf("create --network %q: %v", tc.mode, err)
		}
		ids = append(ids, res.ID)
		if !slices.Equal(res.Warnings, tc.want) || res.Warnings == nil {
			t.Errorf("create --network %q: Warnings %q, want %q", tc.mode, res.Warnings, tc.want)
		}
		if len(tc.want) == 0 && len(asked) > 0 {
			t.Errorf("create --network %q asked the check for %q", tc.mode, asked)
		}
	}
}
