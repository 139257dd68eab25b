package network

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dataplane"
)

// guardFake is the fake dataplane with ReleaseGuards.
type guardFake struct {
	*fakeDataplane
	gmu      sync.Mutex
	released []dataplane.Endpoint
}

func (g *guardFake) ReleaseGuards(_ context.Context, _ dataplane.Network, ep dataplane.Endpoint) error {
	g.gmu.Lock()
	defer g.gmu.Unlock()
	g.released = append(g.released, ep)
	return nil
}

// TestDetachStoppedReleasesOwnRunsGuards: a stopped container's detach
// frees its addresses at once, and its finish (run by the monitor after
// the report) asks the dataplane to delete the guards of that run: its
// endpoint with the run recorded at its attach, one run for every
// address of an endpoint. The next run of the container, attached before
// the finish, has the same port, MAC and addresses but another run.
func TestDetachStoppedReleasesOwnRunsGuards(t *testing.T) {
	f := newFixture(t)
	g := &guardFake{fakeDataplane: f.dp}
	f.att.dp = g
	ctx := context.Background()
	if _, err := f.svc.Create(ctx, CreateOptions{Name: "gs6", EnableIPv6: true}); err != nil {
		t.Fatal(err)
	}
	c := ctr("gs", "gs6")
	stopping := func() *container.Endpoint { e := ep(c); e.Final = true; return e }
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	var first dataplane.Endpoint
	for _, d := range f.dp.endpoints {
		first = d
	}
	if first.Run == "" || len(first.Addresses) != 2 {
		t.Fatalf("attached endpoint %+v: want a run and two addresses", first)
	}
	atts, err := f.svc.attachmentsOf(ctx, c.ID)
	if err != nil || len(atts) != 1 || len(atts[0].allocs) != 2 || atts[0].allocs[0].Run != atts[0].allocs[1].Run {
		t.Fatalf("allocations %+v (%v): want two of one run", atts, err)
	}

	finish, err := f.att.DetachStopped(ctx, stopping())
	if err != nil || finish == nil {
		t.Fatalf("DetachStopped: finish %v, %v", finish != nil, err)
	}
	if n := len(f.allocations(t)); n != 0 || len(g.released) != 0 {
		t.Fatalf("after the detach: %d allocations, %d released guards; want none before finish", n, len(g.released))
	}
	// Started again before the old monitor finishes.
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	var next dataplane.Endpoint
	for _, d := range f.dp.endpoints {
		next = d
	}
	if next.Run == "" || next.Run == first.Run || next.HostIfName != first.HostIfName ||
		next.MAC.String() != first.MAC.String() || !slices.Equal(next.Addresses, first.Addresses) {
		t.Fatalf("next run %+v, first %+v: want the same port, MAC and addresses, another run", next, first)
	}
	if err := finish(ctx); err != nil {
		t.Fatal(err)
	}
	if len(g.released) != 1 || g.released[0].Run != first.Run || g.released[0].HostIfName != first.HostIfName ||
		!slices.Equal(g.released[0].Addresses, first.Addresses) {
		t.Fatalf("released guards %+v, want the first run's %+v", g.released, first)
	}

	// Not final (a restart by policy): a plain Detach, nothing after.
	if finish, err := f.att.DetachStopped(ctx, ep(c)); err != nil || finish != nil {
		t.Fatalf("DetachStopped, not final: finish %v, %v", finish != nil, err)
	}
	if len(f.allocations(t)) != 0 || len(f.dp.endpoints) != 0 {
		t.Fatalf("a detach left %v %v", f.allocations(t), f.dp.endpoints)
	}

	// Recorded by an older berth (no run): the next run's guards could
	// have this one's digest, so the stop leaves them to Reconcile.
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	err = f.svc.meta.Update(ctx, func(tx *metadata.Tx) error {
		var keys []string
		var vals []Allocation
		tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if json.Unmarshal(raw, &al) == nil {
				al.Run = ""
				keys, vals = append(keys, k), append(vals, al)
			}
			return nil
		})
		for i, k := range keys {
			if err := tx.Put(metadata.BucketIPAM, k, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	finish, err = f.att.DetachStopped(ctx, stopping())
	if err != nil || finish != nil {
		t.Fatalf("DetachStopped of an older berth's endpoint: finish %v, %v; want none", finish != nil, err)
	}
	if len(f.allocations(t)) != 0 || len(f.dp.endpoints) != 0 {
		t.Fatalf("a detach left %v %v", f.allocations(t), f.dp.endpoints)
	}
}
