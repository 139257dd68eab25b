package dataplane

import (
	"slices"
	"strings"
	"testing"
)

// TestForwardBlockers loads other firewalls' rule sets into a namespace
// of the test's (never the host's) and checks which base chains at the
// forward hook the check reports as dropping berth's traffic.
func TestForwardBlockers(t *testing.T) {
	const br = "brfwtest0"
	type load []string
	ipt := func(f string) load { return load{"iptables-nft-restore", "--noflush", f} }
	ip6t := func(f string) load { return load{"ip6tables-nft-restore", "--noflush", f} }
	nft := func(rules string) load { return load{"nft", rules} }
	ufwRoute := func(dir string) load { return load{"iptables-nft", "-A", "ufw-user-forward", dir, br, "-j", "ACCEPT"} }
	tests := []struct {
		name       string
		loads      []load
		dockerUser bool
		ipv6       bool
		want       []ForwardBlocker
	}{
		{name: "no firewall", dockerUser: true, ipv6: true},
		{name: "ufw", loads: []load{ipt("testdata/ufw-filter.rules")}, dockerUser: true,
			want: []ForwardBlocker{{Family: "ip", Table: "filter", Chain: "FORWARD", Kind: "ufw"}}},
		{name: "ufw route allow in and out on the bridge", dockerUser: true,
			loads: []load{ipt("testdata/ufw-filter.rules"), ufwRoute("-i"), ufwRoute("-o")}},
		{name: "ufw route allow in on the bridge only", dockerUser: true,
			loads: []load{ipt("testdata/ufw-filter.rules"), ufwRoute("-i")},
			want:  []ForwardBlocker{{Family: "ip", Table: "filter", Chain: "FORWARD", Kind: "ufw"}}},
		{name: "ufw route allow for another bridge", dockerUser: true,
			loads: []load{ipt("testdata/ufw-filter.rules"), {"iptables-nft", "-A", "ufw-user-forward", "-i", "other0", "-j", "ACCEPT"},
				{"iptables-nft", "-A", "ufw-user-forward", "-o", "other0", "-j", "ACCEPT"}},
			want: []ForwardBlocker{{Family: "ip", Table: "filter", Chain: "FORWARD", Kind: "ufw"}}},
		{name: "docker, DOCKER-USER on", loads: []load{ipt(dockerFixture)}, dockerUser: true, ipv6: true},
		{name: "docker, DOCKER-USER off", loads: []load{ipt(dockerFixture)},
			want: []ForwardBlocker{{Family: "ip", Table: "filter", Chain: "FORWARD", Kind: "docker"}}},
		{name: "docker ip6 without DOCKER-USER, IPv6 network",
			loads: []load{ipt(dockerFixture), ip6t("testdata/docker-20.10-filter6.rules")}, dockerUser: true, ipv6: true,
			want: []ForwardBlocker{{Family: "ip6", Table: "filter", Chain: "FORWARD", Kind: "docker-no-user-chain"}}},
		{name: "docker ip6 without DOCKER-USER, IPv4 network",
			loads: []load{ipt(dockerFixture), ip6t("testdata/docker-20.10-filter6.rules")}, dockerUser: true},
		{name: "plain nft inet drop", loads: []load{nft("add table inet mine; add chain inet mine fw_forward { type filter hook forward priority 0; policy drop; }")},
			dockerUser: true, want: []ForwardBlocker{{Family: "inet", Table: "mine", Chain: "fw_forward"}}},
		{name: "plain nft inet drop, the bridge accepted", loads: []load{nft("add table inet mine; " +
			"add chain inet mine fw_forward { type filter hook forward priority 0; policy drop; }; " +
			"add chain inet mine fw_user; add rule inet mine fw_forward jump fw_user; " +
			"add rule inet mine fw_user iifname " + br + " accept; add rule inet mine fw_user oifname " + br + " accept")},
			dockerUser: true},
		{name: "accept policy and other hooks", dockerUser: true, loads: []load{nft(
			"add table ip mine; add chain ip mine fw_forward { type filter hook forward priority 0; policy accept; }; " +
				"add chain ip mine fw_input { type filter hook input priority 0; policy drop; }")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPlane(t)
			ns := newNS(t)
			for _, l := range tc.loads {
				runIn(t, ns, l[0], l[1:]...)
			}
			// berth's own table, even with a drop, is not another's.
			runIn(t, ns, "nft", "add table inet "+p.Table()+"; add chain inet "+p.Table()+" fw_x { type filter hook forward priority 0; policy drop; }")
			d := New(WithTable(p.Table()), WithDockerUserChain(tc.dockerUser))
			var got []ForwardBlocker
			err := inNS(ns, func() (err error) { got, err = d.ForwardBlockers(br, tc.ipv6); return err })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ForwardBlockers = %+v\nwant %+v", got, tc.want)
			}
			for _, b := range got {
				w := b.Warning(br)
				for _, part := range []string{"table " + b.Family + " " + b.Table, "chain " + b.Chain, "bridge " + br, "cannot reach other hosts"} {
					if !strings.Contains(w, part) {
						t.Errorf("warning %q lacks %q", w, part)
					}
				}
			}
		})
	}
}

// BenchmarkForwardBlockers times the check create runs: in a namespace
// without a firewall, beside Docker's ruleset (DOCKER-USER on, so the
// daemon.json switch is asked) and beside ufw's.
func BenchmarkForwardBlockers(b *testing.B) {
	for _, bc := range []struct{ name, fixture string }{{"empty", ""}, {"docker", dockerFixture}, {"ufw", "testdata/ufw-filter.rules"}} {
		b.Run(bc.name, func(b *testing.B) {
			p := newTestPlane(b)
			ns := newNS(b)
			if bc.fixture != "" {
				runIn(b, ns, "iptables-nft-restore", "--noflush", bc.fixture)
			}
			err := inNS(ns, func() error {
				for range b.N {
					if _, err := p.ForwardBlockers("brfwtest0", true); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
