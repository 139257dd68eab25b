package dataplane

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestAttackPortNameReuse: a release without published ports leaves the
// port's guards in place (portDigest). When the port's name is used
// again (the same container started again with another address or MAC,
// or another container whose port name is the same), the guards must be
// the new endpoint's only: the address the old one allowed may now be a
// neighbour's, and the new container must not be able to send as it.
func TestAttackPortNameReuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change makes the endpoint that uses the name again from the
		// released one.
		change func(p *testPlane, n Network, old Endpoint) Endpoint
		// victimTakesOld: a neighbour gets the released address.
		victimTakesOld bool
	}{
		{"same container, another address", func(p *testPlane, n Network, old Endpoint) Endpoint {
			old.Addresses = hostAddrs(n, 5)
			return old
		}, true},
		{"same container, another address and MAC", func(p *testPlane, n Network, old Endpoint) Endpoint {
			ep := p.endpoint(n, "", "x", 5)
			old.Addresses, old.MAC = ep.Addresses, ep.MAC
			return old
		}, true},
		{"another container, same port name", func(p *testPlane, n Network, old Endpoint) Endpoint {
			ep := p.endpoint(n, "", "y", 5)
			ep.HostIfName = old.HostIfName
			return ep
		}, true},
		{"same container, same endpoint", func(p *testPlane, n Network, old Endpoint) Endpoint { return old }, false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			n := p.network("r", true)
			if err := p.EnsureNetwork(ctx, n); err != nil {
				t.Fatal(err)
			}
			nsOld := newNS(t)
			old := p.endpoint(n, nsOld, "a", 2)
			if err := p.AddEndpoint(ctx, n, old); err != nil {
				t.Fatal(err)
			}
			if err := p.ReleaseEndpoint(ctx, n, old); err != nil {
				t.Fatal(err)
			}
			unmountNS(nsOld)
			waitGone(t, old.HostIfName)
			if !guarded(t, p, old.HostIfName) {
				t.Fatal("the release deleted the guards: nothing is left to reuse (the test would prove nothing)")
			}

			victimNS, peerNS, nsNew := newNS(t), newNS(t), newNS(t)
			victim, peer := p.endpoint(n, victimNS, "v", 3), p.endpoint(n, peerNS, "p", 4)
			if tc.victimTakesOld {
				victim.Addresses = old.Addresses
			}
			ep := tc.change(p, n, old)
			ep.NetNSPath = nsNew
			for _, e := range []Endpoint{victim, peer, ep} {
				if err := p.AddEndpoint(ctx, n, e); err != nil {
					t.Fatalf("AddEndpoint of %s: %v", e.HostIfName, err)
				}
			}
			// The port's elements are exactly the new endpoint's.
			want, err := guardElements(n, ep)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.newBatch()
			if err != nil {
				t.Fatal(err)
			}
			have, err := b.portGuards(ep.HostIfName)
			if err != nil {
				t.Fatal(err)
			}
			if extra, missing := notAmong(have, want), notAmong(want, have); len(extra)+len(missing) > 0 {
				t.Errorf("port %s: elements not the new endpoint's: %s; missing: %s\n%s", ep.HostIfName,
					elementKeys(extra), elementKeys(missing), nftListFamily(t, "bridge", p.Table()))
			}
			if !tc.victimTakesOld {
				return
			}
			// As an attacker would: send as the victim, whose address
			// the old guards allowed.
			for i := range 2 {
				own, va, pa := ep.Addresses[i].Addr(), victim.Addresses[i].Addr(), peer.Addresses[i].Addr()
				if got := sendAs(t, nsNew, peerNS, pa, map[string]netip.Addr{"own": own, "victim": va}); !got["own"] {
					t.Fatalf("the control datagram from %s did not arrive", own)
				} else if got["victim"] {
					t.Errorf("the peer took a datagram from the port %s as the victim %s, the address its released endpoint had", ep.HostIfName, va)
				}
			}
		})
	}
}

// sendAs sends datagrams from ns to dst:8004 in peerNS, one per source
// address (forged by a raw socket), a few times; it reports which
// arrived.
func sendAs(t *testing.T, ns, peerNS string, dst netip.Addr, srcs map[string]netip.Addr) map[string]bool {
	t.Helper()
	var srv *net.UDPConn
	if err := inNS(peerNS, func() error {
		var err error
		srv, err = net.ListenUDP("udp", &net.UDPAddr{Port: 8004})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Resolve the peer first (the first solicitation to a port that
	// just came up may be lost, hence the time for a retry).
	ask(ns, "tcp", ap(dst, 1), 5*time.Second)
	got := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			k, _, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			got[string(buf[:k])] = true
		}
	}()
	for range 3 {
		for name, src := range srcs {
			if err := sendRawIP(ns, src, dst, 8004, name); err != nil {
				t.Fatalf("sending as %s: %v", name, err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	<-done
	return got
}

func elementKeys(els []element) string {
	var out []string
	for _, e := range els {
		out = append(out, e.set+":"+strings.TrimRight(string(e.key[:min(len(e.key), 16)]), "\x00")+"+"+net.IP(e.key[min(len(e.key), 16):]).String())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestLazyGuardsPruned: the guards a release leaves go with Reconcile
// (the endpoint not listed) and with their network's removal.
func TestLazyGuardsPruned(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n, other := p.network("l", false), p.network("o", false)
	released := func(name string, i int) Endpoint {
		t.Helper()
		ns := newNS(t)
		ep := p.endpoint(n, ns, name, i)
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		unmountNS(ns)
		waitGone(t, ep.HostIfName)
		if !guarded(t, p, ep.HostIfName) {
			t.Fatalf("the release of %s deleted its guards", ep.HostIfName)
		}
		return ep
	}
	for _, nw := range []Network{n, other} {
		if err := p.EnsureNetwork(ctx, nw); err != nil {
			t.Fatal(err)
		}
	}
	ep := released("a", 2)
	if err := p.Reconcile(ctx, []Network{n, other}, nil); err != nil {
		t.Fatal(err)
	}
	if guarded(t, p, ep.HostIfName) {
		t.Errorf("Reconcile left the guards of %s, no listed endpoint's", ep.HostIfName)
	}
	ep = released("b", 3)
	if err := p.RemoveNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	if guarded(t, p, ep.HostIfName) {
		t.Errorf("RemoveNetwork left the guards of %s, on its network", ep.HostIfName)
	}
}

// TestGuardSetMissing: a bridge table whose chains are there but not the
// digest map (made by a build of ruleset 4 from before it): AddEndpoint
// sets the network up again and the port gets all its guards.
func TestGuardSetMissing(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("s", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	b, err := p.newBatch()
	if err != nil {
		t.Fatal(err)
	}
	b.c.DelSet(b.sets[mapPortDigest])
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(n, newNS(t), "1", 2)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("AddEndpoint without the digest map: %v", err)
	}
	if l := nftListFamily(t, "bridge", p.Table()); !strings.Contains(l, `"`+ep.HostIfName+`" comment`) || !strings.Contains(l, "map "+mapPortDigest) {
		t.Errorf("the port's digest is missing:\n%s", l)
	}
}
