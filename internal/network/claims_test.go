package network

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/metadata"
)

// TestRootsClaimDistinctSubnets: roots on one host whose bridges do not
// exist yet (no route shows their subnets) still get distinct subnets for
// their default and pool-picked networks; a removed root's claims lapse.
func TestRootsClaimDistinctSubnets(t *testing.T) {
	ctx := context.Background()
	claims := t.TempDir()
	open := func(root string) *Service {
		meta, err := metadata.Open(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		s := NewService(meta, root)
		s.hostRoutes = func() []netip.Prefix { return nil }
		s.claims.dir = claims
		return s
	}
	subnetOf := func(s *Service, name string) string {
		n, err := s.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return n.IPAM.Config[0].Subnet
	}
	rootA, rootB := t.TempDir(), filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(rootB, 0o700); err != nil {
		t.Fatal(err)
	}
	a, b := open(rootA), open(rootB)
	seen := map[string]string{}
	for _, st := range []struct {
		svc  *Service
		root string
	}{{a, "A"}, {b, "B"}} {
		if _, err := st.svc.Create(ctx, CreateOptions{Name: "net" + st.root}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{BridgeName, "net" + st.root} {
			sub := subnetOf(st.svc, name)
			if other, dup := seen[sub]; dup {
				t.Fatalf("%s of root %s took %s, which %s has", name, st.root, sub, other)
			}
			seen[sub] = name + " of root " + st.root
		}
	}
	// Root B goes away: a third root may take its subnets again.
	bridgeB := subnetOf(b, BridgeName)
	if err := os.RemoveAll(filepath.Dir(rootB)); err != nil {
		t.Fatal(err)
	}
	c := open(t.TempDir())
	if got := subnetOf(c, BridgeName); got != bridgeB {
		t.Errorf("after root B went, a new root's bridge took %s, want B's %s back", got, bridgeB)
	}
	// Removing a network gives its claim up.
	if _, err := a.Remove(ctx, "netA"); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(claims, "*.json"))
	if len(left) != 2 { // the bridges of A and C (B's went with its root)
		t.Errorf("claims after removing netA: %v", left)
	}
}
