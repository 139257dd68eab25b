package dataplane

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// exactGuards fails unless the port's elements in the kernel are exactly
// ep's.
func exactGuards(t *testing.T, p *testPlane, n Network, ep Endpoint) {
	t.Helper()
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
		t.Fatalf("port %s: elements not the live endpoint's: %s; missing: %s\n%s", ep.HostIfName,
			elementKeys(extra), elementKeys(missing), nftListFamily(t, "bridge", p.Table()))
	}
}

// TestReleaseGuards: the guards a release without published ports
// leaves go with ReleaseGuards (the container removed), and only they:
// a neighbour's stay, and so do those of another endpoint that uses the
// port name again, even one with the same MAC and addresses (an attacker
// whose port name collides with a removed container's, given its
// released address), whether it is fully attached or between its guards'
// transaction and its veth.
func TestReleaseGuards(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("g", true)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
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
		if !guarded(t, p, ep.HostIfName) {
			t.Fatalf("the release of %s deleted its guards (the test would prove nothing)", ep.HostIfName)
		}
		return ep
	}
	// the same port name, MAC and addresses; another container.
	twin := func(old Endpoint, ns string) Endpoint {
		ep := p.endpoint(n, ns, "t", 9)
		ep.HostIfName, ep.MAC, ep.Addresses = old.HostIfName, old.MAC, old.Addresses
		return ep
	}

	neighbourNS := newNS(t)
	neighbour := p.endpoint(n, neighbourNS, "n", 7)
	if err := p.AddEndpoint(ctx, n, neighbour); err != nil {
		t.Fatal(err)
	}

	t.Run("removed", func(t *testing.T) {
		old := released("a", 2)
		// Not waiting for the veth to go: ReleaseGuards does.
		if err := p.ReleaseGuards(ctx, n, old); err != nil {
			t.Fatal(err)
		}
		if guarded(t, p, old.HostIfName) {
			t.Errorf("ReleaseGuards left guards of %s\n%s", old.HostIfName, nftListFamily(t, "bridge", p.Table()))
		}
		exactGuards(t, p, n, neighbour)
		// Again: nothing left, no error.
		if err := p.ReleaseGuards(ctx, n, old); err != nil {
			t.Fatalf("ReleaseGuards again: %v", err)
		}
	})

	t.Run("name used again, attached", func(t *testing.T) {
		old := released("b", 3)
		waitGone(t, old.HostIfName)
		ep := twin(old, newNS(t))
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		defer p.RemoveEndpoint(ctx, n, ep)
		if err := p.ReleaseGuards(ctx, n, old); !errdefs.IsConflict(err) {
			t.Errorf("ReleaseGuards with the port's link there: %v, want a conflict", err)
		}
		exactGuards(t, p, n, ep)
	})

	t.Run("name used again, guards before the veth", func(t *testing.T) {
		old := released("c", 4)
		waitGone(t, old.HostIfName)
		// AddEndpoint's state between its transaction and its veth.
		ep := twin(old, "")
		guards, err := guardElements(n, ep)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.addGuards(ep.HostIfName, guards); err != nil {
			t.Fatal(err)
		}
		defer p.removeListedGuards(ep.HostIfName)
		if err := p.ReleaseGuards(ctx, n, old); err != nil {
			t.Fatal(err)
		}
		exactGuards(t, p, n, ep)
	})

	t.Run("name used again, concurrently", func(t *testing.T) {
		for i := range 5 {
			old := released("d", 5)
			waitGone(t, old.HostIfName)
			ep := twin(old, newNS(t))
			var wg sync.WaitGroup
			var addErr, relErr error
			wg.Add(2)
			go func() { defer wg.Done(); addErr = p.AddEndpoint(ctx, n, ep) }()
			go func() { defer wg.Done(); relErr = p.ReleaseGuards(ctx, n, old) }()
			wg.Wait()
			if addErr != nil {
				t.Fatalf("round %d: AddEndpoint: %v", i, addErr)
			}
			if relErr != nil && !errdefs.IsConflict(relErr) {
				t.Fatalf("round %d: ReleaseGuards: %v", i, relErr)
			}
			exactGuards(t, p, n, ep)
			if err := p.RemoveEndpoint(ctx, n, ep); err != nil {
				t.Fatal(err)
			}
		}
	})

	// The late release of a removed container with published ports
	// (after its report, as DetachDeferred's finish does it) deletes its
	// DNAT elements, and its guards only if they are still its own.
	t.Run("published ports, name used again before the release", func(t *testing.T) {
		ns := newNS(t)
		old := p.endpoint(n, ns, "f", 8, reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 80}})...)
		if err := p.AddEndpoint(ctx, n, old); err != nil {
			t.Fatal(err)
		}
		unmountNS(ns)
		waitGone(t, old.HostIfName)
		ep := twin(old, newNS(t))
		ep.Ports = nil
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		defer p.RemoveEndpoint(ctx, n, ep)
		if err := p.ReleaseEndpoint(ctx, n, old); err != nil {
			t.Fatal(err)
		}
		exactGuards(t, p, n, ep)
		dnat, err := endpointElements(n, old)
		if err != nil {
			t.Fatal(err)
		}
		if left, err := p.presentElements(dnat); err != nil || len(left) > 0 {
			t.Errorf("the release left DNAT elements %s (%v)", elementKeys(left), err)
		}
	})

	t.Run("namespace kept alive", func(t *testing.T) {
		ns := newNS(t)
		ep := p.endpoint(n, ns, "e", 6)
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		// Another container shares the namespace: the veth stays.
		if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		if err := p.ReleaseGuards(ctx, n, ep); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), ep.HostIfName) {
			t.Errorf("ReleaseGuards with a live veth: %v, want a conflict", err)
		}
		exactGuards(t, p, n, ep)
		if err := p.RemoveEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	})
}
