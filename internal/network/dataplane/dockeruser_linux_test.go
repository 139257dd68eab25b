package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/google/nftables/expr"
)

// BenchmarkEnsureNetworkCurrent times EnsureNetwork of a network set up
// already, as every container start calls it: without Docker's chain
// (in a namespace, and in the host's, whose thread is not locked to a
// namespace as in berth's processes), and beside Docker's ruleset with
// berth's rules in place (two listings per family).
func BenchmarkEnsureNetworkCurrent(b *testing.B) {
	for _, bc := range []struct {
		name           string
		docker, hostNS bool
	}{{"no-docker", false, false}, {"beside-docker", true, false}, {"host-ns", false, true}} {
		docker := bc.docker
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			p := newTestPlane(b)
			n := p.network("e", false)
			ns := "" // the host's (unlocked thread, as in berth's processes)
			if !bc.hostNS {
				ns = newNS(b)
			}
			if docker {
				runIn(b, ns, "iptables-nft-restore", "--noflush", dockerFixture)
			}
			err := inNS(ns, func() error {
				if err := p.EnsureNetwork(ctx, n); err != nil {
					return err
				}
				b.ResetTimer()
				for range b.N {
					if err := p.EnsureNetwork(ctx, n); err != nil {
						return err
					}
				}
				b.StopTimer()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestDockerUserChainOff: with the switch off berth adds nothing to
// Docker's chain, and Reconcile takes away what an earlier run added.
func TestDockerUserChainOff(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("o", false)
	ns := newNS(t)
	runIn(t, ns, "iptables-nft-restore", "--noflush", dockerFixture)
	want := "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"
	err := inNS(ns, func() error { return p.EnsureNetwork(ctx, n) })
	if err != nil {
		t.Fatal(err)
	}
	if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); !strings.Contains(got, `"berth `+p.Table()+" "+n.Bridge+`"`) {
		t.Fatalf("no rules of berth's in DOCKER-USER:\n%s", got)
	}
	off := New(WithTable(p.Table()), WithLockDir(p.opts.lockDir), WithDockerUserChain(false))
	if err := inNS(ns, func() error { return off.Reconcile(ctx, []Network{n}, nil) }); err != nil {
		t.Fatal(err)
	}
	if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); got != want {
		t.Errorf("DOCKER-USER after Reconcile with the switch off:\n%s\nwant:\n%s", got, want)
	}
	if err := inNS(ns, func() error { return off.EnsureNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); got != want {
		t.Errorf("DOCKER-USER after EnsureNetwork with the switch off:\n%s\nwant:\n%s", got, want)
	}
}

// TestDockerUserRuleShapes: what berth writes it reads back, and a rule
// of another shape (a user's edit) is not taken for one of berth's.
func TestDockerUserRuleShapes(t *testing.T) {
	for _, r := range dockerUserRules("br-0123456789ab", []string{"custombr"}) {
		got, ok := parseDURule(r.exprs())
		if !ok || got != r {
			t.Errorf("%s read back as %s (%v)", r, got, ok)
		}
	}
	r := duRule{iif: "x", accept: true}
	es := r.exprs()
	es[1] = &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: iptIfname("x")}
	if got, ok := parseDURule(es); ok {
		t.Errorf("! -i x read back as %s", got)
	}
}

// BenchmarkEnsureDockerUser times the part of EnsureNetwork that this
// file adds, when nothing is to change.
func BenchmarkEnsureDockerUser(b *testing.B) {
	for _, docker := range []bool{false, true} {
		name := "no-docker"
		if docker {
			name = "beside-docker"
		}
		b.Run(name, func(b *testing.B) {
			p := newTestPlane(b)
			ns := newNS(b)
			if docker {
				runIn(b, ns, "iptables-nft-restore", "--noflush", dockerFixture)
			}
			err := inNS(ns, func() error {
				if err := p.ensureDockerUser("bt" + p.tag + "x"); err != nil {
					return err
				}
				b.ResetTimer()
				for range b.N {
					if err := p.ensureDockerUser("bt" + p.tag + "x"); err != nil {
						return err
					}
				}
				b.StopTimer()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestDockerUserIPv6 covers table ip6 filter: as Docker 20.10 writes it
// (no DOCKER-USER) berth adds nothing there and leaves it byte for byte;
// with a DOCKER-USER chain (later Dockers, here added by the test) berth's
// rules go there as in table ip filter, and leave with the network.
func TestDockerUserIPv6(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("s", true)
	ns := newNS(t)
	runIn(t, ns, "iptables-nft-restore", "--noflush", dockerFixture)
	runIn(t, ns, "ip6tables-nft-restore", "--noflush", "testdata/docker-20.10-filter6.rules")
	before := runIn(t, ns, "nft", "list", "table", "ip6", "filter")
	if err := inNS(ns, func() error { return p.EnsureNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	if got := runIn(t, ns, "nft", "list", "table", "ip6", "filter"); got != before {
		t.Errorf("table ip6 filter without DOCKER-USER changed:\n%s\nwant:\n%s", got, before)
	}
	if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); !strings.Contains(got, "-i "+n.Bridge+" ") {
		t.Errorf("no rules of berth's in table ip filter:\n%s", got)
	}

	runIn(t, ns, "ip6tables-nft", "-N", "DOCKER-USER")
	runIn(t, ns, "ip6tables-nft", "-A", "DOCKER-USER", "-j", "RETURN")
	runIn(t, ns, "ip6tables-nft", "-I", "FORWARD", "-j", "DOCKER-USER")
	if err := inNS(ns, func() error { return p.EnsureNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	v4 := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER")
	v6 := runIn(t, ns, "ip6tables-nft", "-S", "DOCKER-USER")
	// The same rules, but for the bridge found in ip filter's isolation
	// chain only (custombr, br-278a02e32fb4 is the wildcard's).
	v4 = strings.ReplaceAll(v4, "-A DOCKER-USER -i "+n.Bridge+" -o custombr -m comment --comment \"berth "+p.Table()+" "+n.Bridge+"\" -j RETURN\n", "")
	if v6 != v4 {
		t.Errorf("ip6tables -S DOCKER-USER:\n%s\nwant (as in ip filter):\n%s", v6, v4)
	}
	if err := inNS(ns, func() error { return p.RemoveNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	if got, want := runIn(t, ns, "ip6tables-nft", "-S", "DOCKER-USER"), "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"; got != want {
		t.Errorf("ip6 DOCKER-USER after RemoveNetwork:\n%s\nwant:\n%s", got, want)
	}
}

// TestDockerUserLearnsDockerBridges: a Docker network with a custom bridge
// name made after berth's rules (Docker lists it in its isolation chain)
// gets its RETURN at berth's next ensure, so that berth's containers do
// not reach its containers' unpublished ports.
func TestDockerUserLearnsDockerBridges(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("l", false)
	ns := newNS(t)
	runIn(t, ns, "iptables-nft-restore", "--noflush", dockerFixture)
	if err := inNS(ns, func() error { return p.EnsureNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	ret := "-A DOCKER-USER -i " + n.Bridge + " -o mydockerbr -m comment --comment \"berth " + p.Table() + " " + n.Bridge + "\" -j RETURN\n"
	if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); strings.Contains(got, ret) {
		t.Fatalf("a RETURN for a bridge Docker does not have yet:\n%s", got)
	}
	// As dockerd adds a network's bridge.
	runIn(t, ns, "iptables-nft", "-I", "DOCKER-ISOLATION-STAGE-2", "-o", "mydockerbr", "-j", "DROP")
	if err := inNS(ns, func() error { return p.EnsureNetwork(ctx, n) }); err != nil {
		t.Fatal(err)
	}
	got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER")
	if !strings.Contains(got, ret) {
		t.Errorf("no RETURN for Docker's new bridge mydockerbr:\n%s", got)
	}
	if c := strings.Count(got, `"berth `+p.Table()+" "); c != 7 {
		t.Errorf("%d rules of berth's, want 7 (the old ones replaced):\n%s", c, got)
	}
}

// TestDockerUserLeakCheck: the tests' leak check (testutil.DataplaneLeft,
// which rootclean.Left and NoDataplaneLeft use) reports a root's rules
// left in DOCKER-USER, RemoveDataplane deletes them, and
// SweepStaleDockerUserRules deletes those whose table is gone.
func TestDockerUserLeakCheck(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("k", false)
	ns := newNS(t)
	runIn(t, ns, "iptables-nft-restore", "--noflush", dockerFixture)
	clean := "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"
	for _, remove := range []func() error{
		func() error { testutil.RemoveDataplane(p.Table()); return nil },
		func() error {
			// Only the table goes (deleted by name, as the test
			// sweeps do): its rules are stale.
			runIn(t, ns, "nft", "delete", "table", "inet", p.Table())
			return SweepStaleDockerUserRules()
		},
	} {
		var left []string
		err := inNS(ns, func() error {
			if err := p.EnsureNetwork(ctx, n); err != nil {
				return err
			}
			left = testutil.DataplaneLeft(p.Table())
			return remove()
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(left, "\n"), "rule in Docker's DOCKER-USER chain (ip "+n.Bridge+" ") {
			t.Errorf("DataplaneLeft does not list berth's rules in DOCKER-USER: %q", left)
		}
		if got := runIn(t, ns, "iptables-nft", "-S", "DOCKER-USER"); got != clean {
			t.Errorf("DOCKER-USER after the removal:\n%s\nwant:\n%s", got, clean)
		}
	}
}
