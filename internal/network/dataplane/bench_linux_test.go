package dataplane

import (
	"context"
	"testing"
)

// BenchmarkEndpoint is what a container on a bridge pays in the dataplane
// over --network none: AddEndpoint, then ReleaseEndpoint (the stop path:
// the veth goes with the namespace) or RemoveEndpoint (disconnect: the
// veth is deleted, which waits for RCU grace periods), with no port and
// with two published ports.
//
//	go test -run '^$' -bench Endpoint -benchtime 100x ./internal/network/dataplane/
func BenchmarkEndpoint(b *testing.B) {
	two := []PortMapping{{Proto: "tcp", HostPort: 47001, ContainerPort: 80}, {Proto: "udp", HostPort: 47001, ContainerPort: 53}}
	for _, bc := range []struct {
		name    string
		ports   []PortMapping
		release bool
	}{
		{"add+release/no-ports", nil, true},
		{"add+release/two-ports", two, true},
		{"add+remove/no-ports", nil, false},
		{"add+remove/two-ports", two, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			p := newTestPlane(b)
			n := p.network("x", false)
			if err := p.EnsureNetwork(ctx, n); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				// A fresh namespace each time, as each container has one;
				// its making and unmounting is not timed (--network none
				// pays for it too).
				b.StopTimer()
				ns := newNS(b)
				ep := p.endpoint(n, ns, "1", 2, bc.ports...)
				b.StartTimer()
				if err := p.AddEndpoint(ctx, n, ep); err != nil {
					b.Fatal(err)
				}
				var err error
				if bc.release {
					err = p.ReleaseEndpoint(ctx, n, ep)
				} else {
					err = p.RemoveEndpoint(ctx, n, ep)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				unmountNS(ns)
				waitGone(b, ep.HostIfName)
				b.StartTimer()
			}
		})
	}
}
