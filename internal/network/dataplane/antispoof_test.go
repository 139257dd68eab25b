package dataplane

import (
	"context"
	"errors"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestAddEndpointNeedsMAC: the port's guards are made before its
// interface, so the MAC must be known; nothing is touched without it.
func TestAddEndpointNeedsMAC(t *testing.T) {
	d := New(WithTable("btnomac"), WithLockDir(t.TempDir()))
	ep := endpoint(defaultNet, "c1", "veth1", []string{"172.17.0.2/16"})
	ep.MAC = nil
	if err := d.AddEndpoint(context.Background(), defaultNet, ep); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("AddEndpoint without a MAC: %v, want an invalid argument", err)
	}
}

// TestLinkLocal: the EUI-64 address the kernel derives from a MAC.
func TestLinkLocal(t *testing.T) {
	ep := endpoint(defaultNet, "c1", "veth1", nil)
	if got := linkLocal(ep.MAC).String(); got != "fe80::42:acff:fe11:2" {
		t.Errorf("link-local address of %s: %s", ep.MAC, got)
	}
}
