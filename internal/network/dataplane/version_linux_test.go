package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/google/nftables"
)

// TestRulesetVersions: two builds on one table, the newer one's ruleset
// version injected. The newer upgrades the older's table; the older then
// refuses to touch it, with an error that says what to do, and leaves
// it as it is.
func TestRulesetVersions(t *testing.T) {
	ctx := context.Background()
	older := newTestPlane(t)
	newer := &testPlane{Dataplane: New(WithTable(older.Table()), WithLockDir(older.opts.lockDir)), t: t, tag: older.tag}
	newer.opts.version = rulesetVersion + 1
	a, b := older.network("a", false), older.network("b", false)

	if err := older.EnsureNetwork(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := markersIn(t, older.Table()); got != markerName(rulesetVersion) {
		t.Fatalf("markers after the older build: %q", got)
	}
	// Upgrade: the newer build rewrites the static part and its marker
	// replaces the older one.
	if err := newer.EnsureNetwork(ctx, b); err != nil {
		t.Fatalf("newer build on an older table: %v", err)
	}
	if got := markersIn(t, older.Table()); got != markerName(rulesetVersion+1) {
		t.Fatalf("markers after the upgrade: %q, want only %s", got, markerName(rulesetVersion+1))
	}
	// Again: nothing to do.
	if err := newer.EnsureNetwork(ctx, a); err != nil {
		t.Fatal(err)
	}
	before := nftList(t, older.Table())
	// No downgrade: the older build refuses, whatever it is asked.
	want := "ruleset version " + itoa(rulesetVersion+1) + " written by a newer berth; upgrade this berth"
	for name, call := range map[string]func() error{
		"EnsureNetwork":        func() error { return older.EnsureNetwork(ctx, a) },
		"Reconcile":            func() error { return older.Reconcile(ctx, []Network{a}, nil) },
		"Reconcile of nothing": func() error { return older.Reconcile(ctx, nil, nil) },
	} {
		err := call()
		if err == nil || !strings.Contains(err.Error(), want) || !errdefs.IsConflict(err) {
			t.Errorf("%s of the older build on a newer table: %v, want a conflict saying %q", name, err, want)
		}
	}
	if after := nftList(t, older.Table()); after != before {
		t.Errorf("the older build changed the newer table:\n%s\nwas:\n%s", after, before)
	}
	for _, n := range []Network{a, b} {
		if !linkExists(n.Bridge) {
			t.Errorf("the older build's refused Reconcile removed %s", n.Bridge)
		}
	}
}

// markersIn lists the table's ruleset markers, sorted, space-separated.
func markersIn(t *testing.T, table string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(nftList(t, table), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "chain" && strings.HasPrefix(f[1], markerPrefix) {
			out = append(out, f[1])
		}
	}
	return strings.Join(out, " ")
}

func itoa(v int) string { return markerName(v)[len(markerPrefix):] }

// TestRulesetUpgradeToGuards: a table of a berth from before the ports'
// guards (ruleset 2 or 3, no bridge table) is upgraded by the first
// EnsureNetwork, unforced, as a container's start calls it: the old
// marker goes, the bridge table comes with the network's chain, and an
// endpoint then gets its guards.
func TestRulesetUpgradeToGuards(t *testing.T) {
	for _, v := range []int{2, 3} {
		t.Run(markerName(v), func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			old := &testPlane{Dataplane: New(WithTable(p.Table()), WithLockDir(p.opts.lockDir)), t: t, tag: p.tag}
			old.opts.version = v
			n := p.network("u", false)
			if err := old.EnsureNetwork(ctx, n); err != nil {
				t.Fatal(err)
			}
			// The older build made no bridge table.
			c, err := nftables.New()
			if err != nil {
				t.Fatal(err)
			}
			c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyBridge})
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := p.EnsureNetwork(ctx, n); err != nil {
				t.Fatalf("EnsureNetwork on a ruleset-%d table: %v", v, err)
			}
			if got := markersIn(t, p.Table()); got != markerName(rulesetVersion) {
				t.Fatalf("markers after the upgrade: %q, want only %s", got, markerName(rulesetVersion))
			}
			if l := nftListFamily(t, "bridge", p.Table()); !strings.Contains(l, "chain "+netChain(n.Bridge)+" ") || !strings.Contains(l, "chain "+guardStaticChain+" ") {
				t.Fatalf("bridge table after the upgrade:\n%s", l)
			}
			ep := p.endpoint(n, newNS(t), "e", 2)
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				t.Fatal(err)
			}
			if !guarded(t, p, ep.HostIfName) {
				t.Fatal("an endpoint after the upgrade has no guards")
			}
		})
	}
}
