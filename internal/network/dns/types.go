// Package dns is berth's embedded name server: inside the network
// namespace of each container on a user-defined network it answers
// 127.0.0.11:53 (UDP and TCP) with the names of the containers on the same
// networks, and forwards other names to the host's resolvers. berth has
// no daemon, so the server runs in the container's monitor (see
// ARCHITECTURE.md); the names are kept in a shared table under the runroot.
//
// The types below are the contract between internal/network and this
// package.
package dns

import "net/netip"

// Entry is one container's names on one network.
type Entry struct {
	Network     string // network ID
	ContainerID string
	// Names are the container's name, its --network-alias names and its
	// short ID; several containers may share an alias (round robin).
	Names []string
	IPv4  netip.Addr
	IPv6  netip.Addr
}

// Config is what a container's server needs.
type Config struct {
	// NetNSPath is the container's network namespace.
	NetNSPath string
	// Networks are the IDs of the networks whose names the container sees.
	Networks []string
	// Upstream are the resolvers other names go to (the host's, or the
	// container's --dns); empty when every network is internal.
	Upstream []netip.AddrPort
}
