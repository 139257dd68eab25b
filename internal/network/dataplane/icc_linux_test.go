package dataplane

import (
	"context"
	"os"
	"testing"
)

// TestICCOff: with enable_icc=false the containers of a network cannot
// reach each other, even on a host whose bridge-nf-call-iptables is 0
// (berth turns br_netfilter on for that bridge only); a network with ICC
// on beside it is unaffected, and the host still reaches both. A
// namespace of the test's own stands for the host, so the host's
// settings are not touched.
func TestICCOff(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	off := p.network("o", false)
	off.ICC = false
	on := p.network("n", false)
	ns1, ns2, ns3, ns4 := newNS(t), newNS(t), newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(off, ns1, "1", 2), p.endpoint(off, ns2, "2", 3)
	ep3, ep4 := p.endpoint(on, ns3, "3", 2), p.endpoint(on, ns4, "4", 3)
	err := inNS(host, func() error {
		if err := os.WriteFile(brnfSysctl, []byte("0"), 0o644); err != nil {
			return err // br_netfilter is not loaded: in CI, a failure
		}
		for _, n := range []Network{off, on} {
			if err := p.EnsureNetwork(ctx, n); err != nil {
				return err
			}
		}
		for _, e := range []struct {
			n  Network
			ep Endpoint
		}{{off, ep1}, {off, ep2}, {on, ep3}, {on, ep4}} {
			if err := p.AddEndpoint(ctx, e.n, e.ep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("setting up: %v", err)
	}
	serve(t, ns1, 8000)
	serve(t, ns3, 8000)
	a1, a3 := ep1.Addresses[0].Addr(), ep3.Addresses[0].Addr()
	mustNotReach(t, ns2, "tcp", ap(a1, 8000))
	mustNotReach(t, ns2, "udp", ap(a1, 8000))
	mustReach(t, ns4, "tcp", ap(a3, 8000), ep4.Addresses[0].Addr().String())
	mustReach(t, host, "tcp", ap(a1, 8000), off.Gateways[0].String())
}
