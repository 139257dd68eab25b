package network

import (
	"context"
	"testing"
)

// TestSweepIdleRoot: a root with no endpoint and no user network hands
// the dataplane no network to keep (its default bridge and table go); a
// user network, or a container attached anywhere, keeps them all.
func TestSweepIdleRoot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	last := func() string { return f.dp.calls[len(f.dp.calls)-1] }
	sweep := func(running string) {
		t.Helper()
		if err := f.att.Sweep(ctx, func(id string) bool { return id == running }); err != nil {
			t.Fatal(err)
		}
	}
	c := ctr("web", "bridge")
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	sweep(c.ID)
	if got := last(); got != "reconcile 1 1" {
		t.Fatalf("a container on the default bridge: %s", got)
	}
	if err := f.att.Detach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	sweep("")
	if got := last(); got != "reconcile 0 0" {
		t.Fatalf("idle root: %s, want no network kept", got)
	}
	if _, err := f.svc.Create(ctx, CreateOptions{Name: "idle-net"}); err != nil {
		t.Fatal(err)
	}
	sweep("")
	if got := last(); got != "reconcile 2 0" {
		t.Fatalf("a user network without containers: %s, want both bridge networks kept", got)
	}
}
