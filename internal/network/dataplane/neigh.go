package dataplane

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// pinGateways makes the container's neighbour entries for its network's
// gateways permanent, on the bridge's MAC: any container has CAP_NET_RAW
// and could otherwise answer ARP/NDP for the gateway's address (or send
// gratuitous replies) and see its neighbours' traffic out. Received ARP
// and NDP never replace a permanent entry; the bridge's MAC is fixed at
// its creation.
//
// The host's entries for container addresses (which a neighbour could
// poison to draw a published port's traffic) are not pinned: the
// bridge table's guards (antispoof.go) keep any forged ARP/NDP from
// reaching the host, and a permanent entry there makes the host send at
// once, before the kernel has activated the new veth's queue, so the
// first packets to a container that just started would be lost (ARP's
// retries hide that window).
func pinGateways(h *netlink.Handle, br, peer netlink.Link, n Network, ep Endpoint) error {
	for _, gw := range n.Gateways {
		ne := &netlink.Neigh{LinkIndex: peer.Attrs().Index, Family: addrFamily(gw), State: netlink.NUD_PERMANENT, IP: gw.AsSlice(), HardwareAddr: br.Attrs().HardwareAddr}
		if err := h.NeighSet(ne); err != nil {
			return fmt.Errorf("container %s: neighbour entry of the gateway %s: %w", ep.ContainerID, gw, err)
		}
	}
	return nil
}
