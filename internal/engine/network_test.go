package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
)

func networkNamesOf(list []NetworkResource) []string {
	var out []string
	for _, n := range list {
		out = append(out, n.Name)
	}
	return out
}

// TestNetworkUseCases: create with Docker's refusals, list filters,
// remove and prune, as the API's handlers would call them.
func TestNetworkUseCases(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	mk := func(req NetworkCreateRequest) string {
		t.Helper()
		resp, err := e.NetworkCreate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ID
	}
	prodID := mk(NetworkCreateRequest{Name: "prod", Labels: map[string]string{"env": "prod"}, Internal: true,
		IPAM: &NetworkIPAM{Config: []NetworkIPAMConfig{{Subnet: "10.140.0.0/24", IPRange: "10.140.0.128/25"}}}})
	mk(NetworkCreateRequest{Name: "dev", EnableIPv6: true})
	for _, tc := range []struct {
		req  NetworkCreateRequest
		want string
	}{
		{NetworkCreateRequest{Name: "prod"}, "network with name prod already exists"},
		{NetworkCreateRequest{Name: "bridge"}, "operation is not permitted on predefined bridge network"},
		{NetworkCreateRequest{Name: "x", Driver: "nosuch"}, `plugin "nosuch" not found`},
		{NetworkCreateRequest{Name: "x", IPAM: &NetworkIPAM{Config: []NetworkIPAMConfig{{Subnet: "10.140.0.0/16"}}}}, "Pool overlaps with other one on this address space"},
		{NetworkCreateRequest{Name: "x", Options: map[string]string{"com.docker.network.driver.mtu": "20"}}, "invalid MTU number: 20"},
		{NetworkCreateRequest{Name: "x", IPAM: &NetworkIPAM{Config: []NetworkIPAMConfig{{Subnet: "10.141.0.0/24", Gateway: "10.142.0.1"}}}}, "Invalid gateway 10.142.0.1: it is not within the subnet 10.141.0.0/24"},
	} {
		if _, err := e.NetworkCreate(ctx, tc.req); err == nil || err.Error() != tc.want {
			t.Errorf("create %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	list := func(kv ...string) []string {
		t.Helper()
		f := filters.NewArgs()
		for i := 0; i < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		l, err := e.NetworkList(ctx, NetworkListRequest{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		return networkNamesOf(l)
	}
	for _, tc := range []struct {
		kv   []string
		want []string
	}{
		{nil, []string{"bridge", "dev", "host", "none", "prod"}},
		{[]string{"type", "custom"}, []string{"dev", "prod"}},
		{[]string{"type", "builtin"}, []string{"bridge", "host", "none"}},
		{[]string{"label", "env=prod"}, []string{"prod"}},
		{[]string{"driver", "null"}, []string{"none"}},
		{[]string{"name", "de"}, []string{"dev"}},
		{[]string{"id", prodID[:8]}, []string{"prod"}},
		{[]string{"dangling", "true"}, []string{"dev", "prod"}},
		{[]string{"dangling", "false"}, []string{"bridge", "host", "none"}},
	} {
		if got := list(tc.kv...); !slices.Equal(got, tc.want) {
			t.Errorf("ls %v: %v, want %v", tc.kv, got, tc.want)
		}
	}
	doc, err := e.NetworkInspect(ctx, prodID[:12])
	if err != nil || doc.Name != "prod" || !doc.Internal || doc.IPAM.Config[0].IPRange != "10.140.0.128/25" || doc.IPAM.Config[0].Gateway != "10.140.0.1" {
		t.Fatalf("inspect: %+v %v", doc, err)
	}
	dev, _ := e.NetworkInspect(ctx, "dev")
	if len(dev.IPAM.Config) != 2 || !dev.EnableIPv6 {
		t.Fatalf("dev's IPAM: %+v", dev.IPAM)
	}
	if err := e.NetworkRemove(ctx, "host"); err == nil || err.Error() != "host is a pre-defined network and cannot be removed" {
		t.Fatalf("rm host: %v", err)
	}
	if err := e.NetworkRemove(ctx, "nosuch"); !errdefs.IsNotFound(err) {
		t.Fatalf("rm nosuch: %v", err)
	}
	f := filters.NewArgs()
	f.Add("label", "env=prod")
	rep, err := e.NetworksPrune(ctx, f)
	if err != nil || !slices.Equal(rep.NetworksDeleted, []string{"prod"}) {
		t.Fatalf("prune label=env=prod: %+v %v", rep, err)
	}
	rep, err = e.NetworksPrune(ctx, filters.NewArgs())
	if err != nil || !slices.Equal(rep.NetworksDeleted, []string{"dev"}) {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if got := list("type", "custom"); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
}
