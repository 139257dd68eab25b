package dataplane

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestStoppedRunGuards: the guards a stopped run's release leaves (no
// published ports) go with its late ReleaseGuards, which its monitor
// calls after reporting the exit; and that call never deletes the
// guards of the container's next run (`stop` then `start` at once, or
// `restart`), whose port name, MAC and addresses are all the same: only
// the run (Endpoint.Run, in the port's digest) tells the two apart. Fails
// when the digest does not cover the run (the next run's guards are
// deleted while its veth is being made, or before).
func TestStoppedRunGuards(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("s", true)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	// runOf is the container's k-th run in namespace ns ("": none yet).
	runOf := func(ep Endpoint, ns string, k int) Endpoint {
		ep.NetNSPath, ep.Run = ns, fmt.Sprintf("run-%d-%s", k, randHex(8))
		return ep
	}
	// stopped attaches a run and stops it as its monitor does: the
	// endpoint released, then the namespace let go.
	stopped := func(ep Endpoint) {
		t.Helper()
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		unmountNS(ep.NetNSPath)
		if !guarded(t, p, ep.HostIfName) {
			t.Fatalf("the release of %s deleted its guards (the test would prove nothing)", ep.HostIfName)
		}
	}
	neighbour := runOf(p.endpoint(n, "", "n", 7), newNS(t), 1)
	if err := p.AddEndpoint(ctx, n, neighbour); err != nil {
		t.Fatal(err)
	}

	t.Run("stopped", func(t *testing.T) {
		first := runOf(p.endpoint(n, "", "a", 2), newNS(t), 1)
		stopped(first)
		if err := p.ReleaseGuards(ctx, n, first); err != nil {
			t.Fatal(err)
		}
		if guarded(t, p, first.HostIfName) {
			t.Errorf("ReleaseGuards left guards of %s\n%s", first.HostIfName, nftListFamily(t, "bridge", p.Table()))
		}
		exactGuards(t, p, n, neighbour)
	})

	t.Run("started again, guards before the veth", func(t *testing.T) {
		first := runOf(p.endpoint(n, "", "b", 3), newNS(t), 1)
		stopped(first)
		waitGone(t, first.HostIfName)
		// The next run's AddEndpoint between its guards' transaction
		// (which replaces the first run's) and its veth.
		next := runOf(first, "", 2)
		guards, err := guardElements(n, next)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.addGuards(next.HostIfName, guards); err != nil {
			t.Fatal(err)
		}
		defer p.removeListedGuards(next.HostIfName)
		if err := p.ReleaseGuards(ctx, n, first); err != nil {
			t.Fatal(err)
		}
		exactGuards(t, p, n, next)
	})

	t.Run("started again before the release", func(t *testing.T) {
		first := runOf(p.endpoint(n, "", "c", 4), newNS(t), 1)
		stopped(first)
		waitGone(t, first.HostIfName)
		next := runOf(first, newNS(t), 2)
		if err := p.AddEndpoint(ctx, n, next); err != nil {
			t.Fatal(err)
		}
		defer p.RemoveEndpoint(ctx, n, next)
		exactGuards(t, p, n, next)
		if err := p.ReleaseGuards(ctx, n, first); err != nil && !errdefs.IsConflict(err) {
			t.Fatalf("ReleaseGuards of the first run: %v", err)
		}
		exactGuards(t, p, n, next)
	})

	t.Run("started again, concurrently", func(t *testing.T) {
		ep := p.endpoint(n, "", "d", 5)
		for i := range 5 {
			first := runOf(ep, newNS(t), 2*i)
			stopped(first)
			waitGone(t, first.HostIfName)
			next := runOf(ep, newNS(t), 2*i+1)
			var wg sync.WaitGroup
			var addErr, relErr error
			wg.Add(2)
			go func() { defer wg.Done(); addErr = p.AddEndpoint(ctx, n, next) }()
			go func() { defer wg.Done(); relErr = p.ReleaseGuards(ctx, n, first) }()
			wg.Wait()
			if addErr != nil {
				t.Fatalf("round %d: AddEndpoint: %v", i, addErr)
			}
			if relErr != nil && !errdefs.IsConflict(relErr) {
				t.Fatalf("round %d: ReleaseGuards: %v", i, relErr)
			}
			exactGuards(t, p, n, next)
			if err := p.RemoveEndpoint(ctx, n, next); err != nil {
				t.Fatal(err)
			}
			if guarded(t, p, next.HostIfName) {
				t.Fatalf("round %d: RemoveEndpoint left guards of %s", i, next.HostIfName)
			}
		}
	})

	// A restart by policy removes the endpoint (RemoveEndpoint) and
	// attaches the next run: nothing of the first run is left.
	t.Run("restarted by policy", func(t *testing.T) {
		ns := newNS(t)
		first := runOf(p.endpoint(n, "", "e", 6), ns, 1)
		if err := p.AddEndpoint(ctx, n, first); err != nil {
			t.Fatal(err)
		}
		if err := p.RemoveEndpoint(ctx, n, first); err != nil {
			t.Fatal(err)
		}
		if guarded(t, p, first.HostIfName) {
			t.Fatalf("RemoveEndpoint left guards of %s", first.HostIfName)
		}
		next := runOf(first, ns, 2)
		if err := p.AddEndpoint(ctx, n, next); err != nil {
			t.Fatal(err)
		}
		defer p.RemoveEndpoint(ctx, n, next)
		exactGuards(t, p, n, next)
	})
	exactGuards(t, p, n, neighbour)
}
