package dataplane

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// nftListIn lists table ip name inside the namespace at ns: nft runs as
// a child of a thread in that namespace, so it is in it too.
func nftListIn(t *testing.T, ns, name string) (string, error) {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	var out []byte
	err := inNS(ns, func() error {
		var err error
		out, err = exec.Command(nft, "list", "table", "ip", name).CombinedOutput()
		return err
	})
	return string(out), err
}

// tablesIn are the names of the ip tables inside the namespace at ns.
func tablesIn(t *testing.T, ns string) []string {
	t.Helper()
	f, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	return names
}

// ruleHandles are the handles of the DNS chain's rules in the namespace.
func ruleHandles(t *testing.T, ns, table string) []uint64 {
	t.Helper()
	f, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}
	rules, err := c.GetRules(tb, &nftables.Chain{Name: dnsChain, Table: tb})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rules {
		out = append(out, r.Handle)
	}
	return out
}

func TestDNSFlows(t *testing.T) {
	flow := func(proto uint8, dst string, dport, replyPort uint16) *netlink.ConntrackFlow {
		f := &netlink.ConntrackFlow{}
		f.Forward = netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP("127.0.0.1"), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: dport}
		f.Reverse = netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(dst), DstIP: net.ParseIP("127.0.0.1"), SrcPort: replyPort, DstPort: 40000}
		return f
	}
	match := dnsFlows{unix.IPPROTO_UDP: 41000, unix.IPPROTO_TCP: 42000}
	for _, tc := range []struct {
		name string
		flow *netlink.ConntrackFlow
		want bool
	}{
		{"udp to a former port", flow(unix.IPPROTO_UDP, "127.0.0.11", 53, 39000), true},
		{"tcp to a former port", flow(unix.IPPROTO_TCP, "127.0.0.11", 53, 39000), true},
		{"udp untranslated", flow(unix.IPPROTO_UDP, "127.0.0.11", 53, 53), true},
		{"udp to the server", flow(unix.IPPROTO_UDP, "127.0.0.11", 53, 41000), false},
		{"tcp to the server", flow(unix.IPPROTO_TCP, "127.0.0.11", 53, 42000), false},
		{"udp to the tcp port", flow(unix.IPPROTO_UDP, "127.0.0.11", 53, 42000), true},
		{"another address", flow(unix.IPPROTO_UDP, "127.0.0.1", 53, 39000), false},
		{"another port", flow(unix.IPPROTO_UDP, "127.0.0.11", 5353, 39000), false},
		{"sctp", flow(unix.IPPROTO_SCTP, "127.0.0.11", 53, 39000), false},
	} {
		if got := match.MatchConntrackFlow(tc.flow); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// normalise drops indentation and blank lines.
func normalise(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// TestDNSRedirect: the table RedirectDNS writes inside a namespace is,
// as nft lists it, the golden text; a second call replaces it (a server
// restarted on other ports) and leaves the host's tables alone;
// RemoveDNSRedirect removes it, also twice and from a namespace that is
// gone.
func TestDNSRedirect(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	ns := newNS(t)
	check := func(udp, tcp uint16) {
		t.Helper()
		got, err := nftListIn(t, ns, p.DNSTable())
		if err != nil {
			t.Fatalf("%v\n%s", err, got)
		}
		if want := RenderDNSRedirect(p.DNSTable(), udp, tcp); normalise(got) != normalise(want) {
			t.Fatalf("nft lists\n%s\nthe model is\n%s", got, want)
		}
		if names := tablesIn(t, ns); len(names) != 1 || names[0] != p.DNSTable() {
			t.Fatalf("tables in the namespace: %v", names)
		}
	}
	if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	check(40001, 40002)
	before := ruleHandles(t, ns, p.DNSTable())
	// The same ports again: nothing is rewritten.
	if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	check(40001, 40002)
	if got := ruleHandles(t, ns, p.DNSTable()); !slices.Equal(got, before) {
		t.Fatalf("the same ports rewrote the rules: handles %v, then %v", before, got)
	}
	if err := p.RedirectDNS(ctx, ns, 40003, 40004); err != nil {
		t.Fatal(err)
	}
	check(40003, 40004)
	for _, tb := range tablesIn(t, "/proc/self/ns/net") {
		if tb == p.DNSTable() {
			t.Fatalf("table ip %s is in the host's namespace", tb)
		}
	}
	for range 2 {
		if err := p.RemoveDNSRedirect(ctx, ns); err != nil {
			t.Fatal(err)
		}
		if names := tablesIn(t, ns); len(names) != 0 {
			t.Fatalf("tables left in the namespace: %v", names)
		}
	}
	gone := filepath.Join(t.TempDir(), "gone")
	if err := p.RemoveDNSRedirect(ctx, gone); err != nil {
		t.Fatalf("RemoveDNSRedirect of a namespace that is gone: %v", err)
	}
	if err := p.RedirectDNS(ctx, gone, 40001, 40002); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("RedirectDNS in a namespace that is gone: %v", err)
	}
	if err := p.RedirectDNS(ctx, ns, 0, 40002); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("port 0: %v", err)
	}
}

// BenchmarkRedirectDNS is what the redirect adds to the start of a
// container on a user network: the first RedirectDNS in a new namespace,
// and, for a server restarted in the same namespace, one with the same
// ports and one with others. The namespace's making is not timed.
//
//	go test -run '^$' -bench RedirectDNS -benchtime 200x ./internal/network/dataplane/
func BenchmarkRedirectDNS(b *testing.B) {
	ctx := context.Background()
	p := newTestPlane(b)
	b.Run("first", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			ns := newNS(b)
			b.StartTimer()
			if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			unmountNS(ns)
			b.StartTimer()
		}
	})
	b.Run("same-ports", func(b *testing.B) {
		ns := newNS(b)
		if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("other-ports", func(b *testing.B) {
		ns := newNS(b)
		if err := p.RedirectDNS(ctx, ns, 40001, 40002); err != nil {
			b.Fatal(err)
		}
		for i := range b.N {
			if err := p.RedirectDNS(ctx, ns, 40001+uint16(i%2), 40002); err != nil {
				b.Fatal(err)
			}
		}
	})
}
