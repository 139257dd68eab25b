package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// BenchmarkEnsureNetworkCurrent times EnsureNetwork of a network set up
// already, as every container start calls it: without Docker's chain
// (the host's namespace here), and beside Docker's ruleset with berth's
// rules in place (two listings per family).
func BenchmarkEnsureNetworkCurrent(b *testing.B) {
	for _, docker := range []bool{false, true} {
		name := "no-docker"
		if docker {
			name = "beside-docker"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			p := newTestPlane(b)
			n := p.network("e", false)
			ns := newNS(b)
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
