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

import (
	"context"
	"net/netip"
)

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
	// Redirect, when set, has the server listen on 127.0.0.11 at ports
	// the kernel picks and 127.0.0.11:53 redirected to them inside the
	// namespace, so that the container's own processes can listen on
	// port 53 of every address (a DNS server in a container). Nil: the
	// server binds 127.0.0.11:53 itself. *dataplane.Dataplane is one.
	Redirect Redirector
	// Ports, with Redirect, are the ports to listen on if they are free
	// (0: any). A server restarted in the same namespace should be given
	// those of the one it replaces (Server.Ports): the redirect then
	// stays as it is, where other ports make RedirectDNS replace it and
	// clear conntrack (~0.5 ms against ~15 ms measured here).
	Ports Ports
	// Links are the container's --link aliases on user networks (alias
	// -> the linked container's name): Docker resolves them for the
	// linking container only, so they live in its server, not the table.
	Links map[string]string
}

// Ports are a server's UDP and TCP ports on 127.0.0.11.
type Ports struct {
	UDP, TCP uint16
}

// Redirector sends a namespace's queries to 127.0.0.11:53 (UDP and TCP)
// to the server's ports: dataplane's RedirectDNS. It replaces what an
// earlier call installed.
type Redirector interface {
	RedirectDNS(ctx context.Context, netnsPath string, udpPort, tcpPort uint16) error
}
