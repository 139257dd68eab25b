package dataplane

import (
	"context"
	"crypto/rand"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsHandle is a netlink handle in the namespace at path.
func nsHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// nsFdOf opens the namespace at path; the test's cleanup closes it.
func nsFdOf(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// mustBePaired fails unless ep's host end is enslaved to the bridge and
// paired with the interface ep.IfName in ep's namespace (the very device:
// its index in that namespace, by namespace id, not by index alone).
func mustBePaired(t *testing.T, n Network, ep Endpoint) {
	t.Helper()
	host, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		t.Fatalf("host end %s: %v", ep.HostIfName, err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	h := nsHandle(t, ep.NetNSPath)
	peer, err := h.LinkByName(ep.IfName)
	if err != nil {
		t.Fatalf("%s in the namespace: %v", ep.IfName, err)
	}
	id, err := netlink.GetNetNsIdByFd(nsFdOf(t, ep.NetNSPath))
	if err != nil {
		t.Fatal(err)
	}
	if host.Type() != "veth" || peer.Type() != "veth" || host.Attrs().MasterIndex != br.Attrs().Index ||
		host.Attrs().NetNsID != id || id < 0 || host.Attrs().ParentIndex != peer.Attrs().Index ||
		peer.Attrs().HardwareAddr.String() != ep.MAC.String() {
		t.Fatalf("%s (%s, master %d, peer %d in nsid %d) is not paired with %s (%s, index %d, MAC %s) in nsid %d on bridge %d",
			ep.HostIfName, host.Type(), host.Attrs().MasterIndex, host.Attrs().ParentIndex, host.Attrs().NetNsID,
			ep.IfName, peer.Type(), peer.Attrs().Index, peer.Attrs().HardwareAddr, id, br.Attrs().Index)
	}
}

func mustBeGone(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	if l, err := h.LinkByName(name); err == nil {
		t.Fatalf("%s (%s) is still there", name, l.Type())
	}
}

// A restart keeps the container's namespace. Whatever the container left
// in it under its interface's name (a container with NET_ADMIN can make
// one) is replaced, so that the new veth is the container's eth0; one
// whose other end is in the host's namespace is not berth's to delete.
func TestAddEndpointStrayIfName(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("s", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	hostNS, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer hostNS.Close()
	for i, tc := range []struct {
		name string
		// stray makes the interface ep.IfName in the namespace (h).
		stray    func(t *testing.T, h *netlink.Handle, ep Endpoint) (hostSide string)
		conflict bool
	}{
		{name: "bridge", stray: func(t *testing.T, h *netlink.Handle, ep Endpoint) string {
			if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: ep.IfName}}); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
		{name: "veth inside", stray: func(t *testing.T, h *netlink.Handle, ep Endpoint) string {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.IfName}, PeerName: "x" + p.tag}
			if err := h.LinkAdd(v); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
		{name: "veth to the host", conflict: true, stray: func(t *testing.T, h *netlink.Handle, ep Endpoint) string {
			other := "bx" + p.tag + "h"
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.IfName}, PeerName: other, PeerNamespace: netlink.NsFd(int(hostNS.Fd()))}
			if err := h.LinkAdd(v); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if l, err := netlink.LinkByName(other); err == nil {
					netlink.LinkDel(l)
				}
			})
			return other
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNS(t)
			h := nsHandle(t, ns)
			ep := p.endpoint(n, ns, string(rune('a'+i)), 2+i)
			t.Cleanup(func() { p.RemoveEndpoint(ctx, n, ep) })
			other := tc.stray(t, h, ep)
			err := p.AddEndpoint(ctx, n, ep)
			if tc.conflict {
				if !errdefs.IsConflict(err) {
					t.Fatalf("AddEndpoint: %v, want a conflict", err)
				}
				if _, err := netlink.LinkByName(other); err != nil {
					t.Fatalf("the host's %s was deleted: %v", other, err)
				}
				mustBeGone(t, &netlink.Handle{}, ep.HostIfName) // nothing half-done
				return
			}
			if err != nil {
				t.Fatalf("AddEndpoint: %v", err)
			}
			mustBePaired(t, n, ep)
			mustBeGone(t, h, "x"+p.tag)
		})
	}
}

// An existing host end is reused only if its peer is the very device
// named ep.IfName in ep's namespace. Interface indexes are per namespace,
// and a container with NET_ADMIN picks its interfaces' indexes: here its
// eth0 has the index of the host end's real peer (which lives in another
// namespace) and is paired with an interface of the host end's index, so
// that indexes alone make it look like the host end's peer. Adopting it
// would leave the container's traffic off the bridge.
func TestAddEndpointForgedPeerIndex(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("f", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	other, kept := newNS(t), newNS(t)
	ep := p.endpoint(n, kept, "f", 2)
	t.Cleanup(func() { p.RemoveEndpoint(ctx, n, ep) })
	// An index free in the host's namespace and in kept.
	b := make([]byte, 2)
	rand.Read(b)
	idx := 30000 + int(b[0])<<8 | int(b[1])
	for {
		if _, err := netlink.LinkByIndex(idx); err != nil {
			break
		}
		idx++
	}
	// The host end, paired with an eth0 in another namespace.
	otherFd := nsFdOf(t, other)
	hostEnd := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName, Index: idx, MasterIndex: br.Attrs().Index},
		PeerName:  ep.IfName, PeerNamespace: netlink.NsFd(otherFd),
	}
	if err := netlink.LinkAdd(hostEnd); err != nil {
		t.Fatal(err)
	}
	realPeer, err := nsHandle(t, other).LinkByName(ep.IfName)
	if err != nil {
		t.Fatal(err)
	}
	// The container's forgery: eth0 of that index and ep's MAC, its peer
	// of the host end's index.
	h := nsHandle(t, kept)
	forged := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: "x" + p.tag, Index: idx},
		PeerName:  "y" + p.tag, PeerHardwareAddr: ep.MAC,
	}
	if err := h.LinkAdd(forged); err != nil {
		t.Fatal(err)
	}
	y, err := h.LinkByName("y" + p.tag)
	if err != nil {
		t.Fatal(err)
	}
	if y.Attrs().Index != realPeer.Attrs().Index {
		t.Fatalf("setup: the forged peer has index %d, the real one %d", y.Attrs().Index, realPeer.Attrs().Index)
	}
	if err := h.LinkSetName(y, ep.IfName); err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		t.Fatal(err)
	}
	eth0, err := h.LinkByName(ep.IfName)
	if err != nil {
		t.Fatal(err)
	}
	if host.Attrs().ParentIndex != eth0.Attrs().Index || eth0.Attrs().ParentIndex != host.Attrs().Index {
		t.Fatalf("setup: indexes do not look paired: host %d -> %d, eth0 %d -> %d",
			host.Attrs().Index, host.Attrs().ParentIndex, eth0.Attrs().Index, eth0.Attrs().ParentIndex)
	}
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("AddEndpoint: %v", err)
	}
	mustBePaired(t, n, ep)
	mustBeGone(t, h, "x"+p.tag)
}

// The race of issue 11: a restart's AddEndpoint meets the previous veth
// of the same names while it is being deleted (by the kernel, with the
// previous namespace, or by another berth process). Every attempt must
// end with the new pair in place, whichever lookup the deletion falls
// between. The loop runs to a deadline, not to a count of failures.
func TestAddEndpointRacesOldVethDeletion(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("r", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(n, newNS(t), "r", 2)
	t.Cleanup(func() { p.RemoveEndpoint(ctx, n, ep) })
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		old, err := netlink.LinkByName(ep.HostIfName)
		if err != nil {
			t.Fatal(err)
		}
		prev := ep.NetNSPath
		ep.NetNSPath = newNS(t)
		done := make(chan error, 1)
		go func() {
			// Deleted by index: the new pair's host end has a new one.
			for range i % 4 {
				runtime.Gosched() // vary where the deletion lands
			}
			err := netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: old.Attrs().Index}})
			if isLinkNotFound(err) {
				err = nil
			}
			done <- err
		}()
		if i%2 == 1 {
			// The stop's way: the namespace goes, and the kernel deletes
			// its veth in the background as well.
			unix.Unmount(prev, unix.MNT_DETACH)
		}
		err = p.AddEndpoint(ctx, n, ep)
		if derr := <-done; derr != nil && !errorsIsENODEV(derr) {
			t.Fatalf("deleting the old veth: %v", derr)
		}
		if err != nil {
			t.Fatalf("attempt %d: AddEndpoint: %v", i, err)
		}
		mustBePaired(t, n, ep)
	}
}

func errorsIsENODEV(err error) bool { return isLinkNotFound(err) || err == unix.ENODEV }

// A host link of the host end's name that is no veth is not a leftover of
// berth's: it is a conflict, and it stays.
func TestAddEndpointForeignHostEndName(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("h", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(n, newNS(t), "h", 2)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(ep.HostIfName); err == nil {
			netlink.LinkDel(l)
		}
	})
	if err := p.AddEndpoint(ctx, n, ep); !errdefs.IsConflict(err) {
		t.Fatalf("AddEndpoint: %v, want a conflict", err)
	}
	if l, err := netlink.LinkByName(ep.HostIfName); err != nil || l.Type() != "bridge" {
		t.Fatalf("the host's %s: %v %v", ep.HostIfName, l, err)
	}
	mustBeGone(t, nsHandle(t, ep.NetNSPath), ep.IfName)
}
