package dataplane

import (
	"context"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestHostGSOSize: the bridge and the host end of a veth take IPv4 GSO
// packets of hostGSOSize (the host's own TCP to a container), the
// container's end and the MTU keep their defaults.
func TestHostGSOSize(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("g", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ns := newNS(t)
	ep := p.endpoint(n, ns, "g", 2)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{n.Bridge, ep.HostIfName} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		a := l.Attrs()
		if a.TSOMaxSize != 0 && a.TSOMaxSize < hostGSOSize {
			t.Logf("%s: TSO max size %d, below %d: left alone", name, a.TSOMaxSize, hostGSOSize)
			continue
		}
		if a.GSOIPv4MaxSize != hostGSOSize {
			t.Errorf("%s: IPv4 GSO max size %d, want %d", name, a.GSOIPv4MaxSize, hostGSOSize)
		}
		if a.MTU != 1500 {
			t.Errorf("%s: MTU %d, want 1500", name, a.MTU)
		}
	}
	err := inNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if got := l.Attrs().GSOIPv4MaxSize; got == hostGSOSize {
			t.Errorf("container's eth0: IPv4 GSO max size %d, want the kernel's default", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
