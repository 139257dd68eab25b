package dataplane

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestStaleElementReplaced: a container whose owner let its host port go
// but has not deleted its DNAT element yet (a monitor that reported the
// exit first) does not block the next container that reserved the port:
// with PortsReserved its element replaces the stale one, and the former
// owner's late release leaves it alone. Without the reservation the key
// stays a conflict.
func TestStaleElementReplaced(t *testing.T) {
	p := newTestPlane(t)
	ctx := context.Background()
	n := p.network("s", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 80}})
	old := p.endpoint(n, newNS(t), "o", 2, ports...)
	if err := p.AddEndpoint(ctx, n, old); err != nil {
		t.Fatal(err)
	}
	next := p.endpoint(n, newNS(t), "n", 3, ports...)
	if err := p.AddEndpoint(ctx, n, next); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("a second claim without the reservation: %v, want a conflict", err)
	}
	next.PortsReserved = true
	if err := p.AddEndpoint(ctx, n, next); err != nil {
		t.Fatalf("claim of a reserved port over a stale element: %v", err)
	}
	if err := p.ReleaseEndpoint(ctx, n, old); err != nil {
		t.Fatalf("late release of the former owner: %v", err)
	}
	rules := nftList(t, p.Table())
	want := "tcp . " + strconv.Itoa(int(ports[0].HostPort)) + " comment \"" + next.ContainerID
	if !strings.Contains(rules, want) || !strings.Contains(rules, ": "+next.Addresses[0].Addr().String()+" . 80") ||
		strings.Contains(rules, ": "+old.Addresses[0].Addr().String()+" . ") {
		t.Errorf("want the element %q only:\n%s", want, rules)
	}
}
