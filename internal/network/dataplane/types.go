// Package dataplane puts berth's networks into the kernel: Linux bridges,
// veth pairs moved into container network namespaces, addresses and
// routes (netlink), and berth's own nftables tables for masquerade,
// published ports, isolation and the user chain. It keeps no state of its
// own: it is told what should exist (by internal/network, which owns the
// records and address allocation) and makes the kernel match, idempotently.
//
// The types below are the contract between internal/network and this
// package.
package dataplane

import (
	"net"
	"net/netip"
)

// Network is one bridge network as the kernel sees it.
type Network struct {
	// ID is berth's network ID; rules and sets are named after it.
	ID string
	// Bridge is the Linux bridge's name ("berth0" for the default network,
	// "br-<first 12 of ID>" or the com.docker.network.bridge.name option).
	Bridge string
	// MTU of the bridge and of the veths on it; 0 means 1500.
	MTU int
	// Subnets and, index for index, the bridge's (gateway) address in each.
	Subnets  []netip.Prefix
	Gateways []netip.Addr
	// Internal networks have no route out: no masquerade, no forwarding
	// to or from other interfaces.
	Internal bool
	// Masquerade the subnets' traffic leaving through other interfaces
	// (com.docker.network.bridge.enable_ip_masquerade, default true).
	Masquerade bool
	// ICC allows traffic between containers of this network
	// (com.docker.network.bridge.enable_icc, default true).
	ICC bool
	// HostBinding is the default host address of ports published without
	// one (com.docker.network.bridge.host_binding_ipv4); invalid means all.
	HostBinding netip.Addr
}

// PortMapping is one published port (ranges are expanded by the caller).
type PortMapping struct {
	Proto string // "tcp", "udp" or "sctp"
	// HostIP is the host address the port is published on; the zero Addr
	// (or an unspecified one) means every address of its family.
	HostIP        netip.Addr
	HostPort      uint16
	ContainerPort uint16
}

// Endpoint is one container's attachment to one network.
type Endpoint struct {
	ContainerID string
	NetworkID   string
	// NetNSPath is the container's network namespace (an nsfs bind mount).
	NetNSPath string
	// IfName is the interface inside the container: eth0, eth1...
	IfName string
	// HostIfName is the host side of the veth pair, derived from the
	// container and network IDs so that a crashed attach can be found.
	HostIfName string
	// MAC of the container's interface, required: the port's guards
	// (antispoof.go) are made before the interface.
	MAC net.HardwareAddr
	// Addresses of the container on this network, with the subnet's prefix.
	Addresses []netip.Prefix
	// Gateways become the container's default routes; empty when another
	// network of the container provides them.
	Gateways []netip.Addr
	MTU      int
	Ports    []PortMapping
	// Run names this attachment of the endpoint (a nonce its attach
	// made, recorded with its addresses): it is in the port's digest
	// (portDigest), so that the late ReleaseGuards of a stopped run
	// never deletes the guards of the container's next run, whose port
	// name, MAC and addresses may all be the same. Empty for endpoints
	// recorded by an older berth (the digest is then theirs).
	Run string
	// PortsReserved says the caller holds ReservePorts' reservation of
	// Ports: a DNAT element with one of their keys then belongs to no
	// live container (its owner let the port go and has not deleted it
	// yet, or died), and AddEndpoint replaces it instead of failing.
	PortsReserved bool
}
