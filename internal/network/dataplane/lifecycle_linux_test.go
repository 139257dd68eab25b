package dataplane

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// tableExists says whether either of berth's tables (inet, bridge) is in
// the kernel; bothTablesExist whether both are.
func tableExists(t *testing.T, table string) bool {
	t.Helper()
	return familyTableExists(t, "inet", table) || familyTableExists(t, "bridge", table)
}

func bothTablesExist(t *testing.T, table string) bool {
	t.Helper()
	return familyTableExists(t, "inet", table) && familyTableExists(t, "bridge", table)
}

func familyTableExists(t *testing.T, family, table string) bool {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	return exec.Command(nft, "list", "table", family, table).Run() == nil
}

// TestTableLifecycle: a root's table lives as long as one of its bridges
// does. Reconcile never makes a bridge for a network without endpoints,
// and with no bridge left the table goes, unless the users' chain holds
// rules of theirs.
func TestTableLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	idle, used := p.network("i", false), p.network("u", false)
	// A sweep of a root that never ran a container makes nothing.
	if err := p.Reconcile(ctx, []Network{idle}, nil); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if linkExists(idle.Bridge) || tableExists(t, p.Table()) {
		t.Fatalf("Reconcile made a bridge or a table for a network without endpoints")
	}
	// A network with an endpoint is made; an idle one whose bridge
	// exists is kept.
	if err := p.EnsureNetwork(ctx, idle); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(used, newNS(t), "e", 2)
	if err := p.Reconcile(ctx, []Network{idle, used}, []Endpoint{ep}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for _, name := range []string{idle.Bridge, used.Bridge, ep.HostIfName} {
		if !linkExists(name) {
			t.Errorf("%s missing after Reconcile", name)
		}
	}
	// The last network's removal takes the table.
	if err := p.RemoveNetwork(ctx, idle); err != nil {
		t.Fatal(err)
	}
	if !bothTablesExist(t, p.Table()) {
		t.Fatal("a table went with a network while another one remains")
	}
	if !fileExists(p.lockPath()) {
		t.Fatal("the lock file went while the table stays")
	}
	if err := p.RemoveNetwork(ctx, used); err != nil {
		t.Fatal(err)
	}
	if tableExists(t, p.Table()) {
		t.Fatal("a table (inet or bridge) remains after the last network went")
	}
	if fileExists(p.lockPath()) {
		t.Fatal("the lock file remains after the table went")
	}
	// A late unpublishing (a monitor finishing its release after a
	// sweep dropped the table) does not make the lock file again.
	ep.Ports = []PortMapping{{Proto: "tcp", HostPort: 18000, ContainerPort: 80}}
	if err := p.ReleaseEndpoint(ctx, used, ep); err != nil {
		t.Fatalf("ReleaseEndpoint without a table: %v", err)
	}
	if err := p.RemoveEndpoint(ctx, used, ep); err != nil {
		t.Fatalf("RemoveEndpoint without a table: %v", err)
	}
	ep.Ports = nil // guards only
	if err := p.ReleaseEndpoint(ctx, used, ep); err != nil {
		t.Fatalf("ReleaseEndpoint without a table: %v", err)
	}
	if fileExists(p.lockPath()) || tableExists(t, p.Table()) {
		t.Fatal("a late removal made the lock file or the table again")
	}
	// So does an idle sweep's, but never the users' rules.
	if err := p.EnsureNetwork(ctx, idle); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: p.Table(), Family: nftables.TableFamilyINet}
	c.AddRule(&nftables.Rule{Table: table, Chain: &nftables.Chain{Name: UserChain, Table: table}, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := p.Reconcile(ctx, nil, nil); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if linkExists(idle.Bridge) {
		t.Errorf("%s remains after a Reconcile that did not list it", idle.Bridge)
	}
	if !familyTableExists(t, "inet", p.Table()) || !strings.Contains(nftList(t, p.Table()), "counter") {
		t.Fatal("the users' rule went with the table")
	}
	if familyTableExists(t, "bridge", p.Table()) {
		t.Error("the bridge table (berth's alone) stays with the users' rules")
	}
	rules, err := c.GetRules(table, &nftables.Chain{Name: UserChain, Table: table})
	if err != nil || len(rules) != 1 {
		t.Fatalf("rules of %s: %v %v", UserChain, rules, err)
	}
	c.DelRule(rules[0])
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := p.Reconcile(ctx, nil, nil); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if tableExists(t, p.Table()) || fileExists(p.lockPath()) {
		t.Fatal("the table or its lock file remains after an idle Reconcile")
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
