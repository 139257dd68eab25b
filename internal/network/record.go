// Package network is berth's network service: the network records
// (Docker's predefined bridge, host and none, and user-defined bridge
// networks), address allocation over internal/network/ipam, and the
// container.NetworkAttacher that connects containers to their networks
// through the dataplane (internal/network/dataplane) and registers their
// names with the embedded DNS (internal/network/dns). Records and
// allocations live in berth's metadata store, so several berth processes
// (CLI calls, monitors) share them.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/network/ipam"
)

// Network is a network's record, in the field names of Docker's network
// inspect document; Bridge and MTU are berth's own.
type Network struct {
	Name       string            `json:"Name"`
	ID         string            `json:"Id"`
	Created    time.Time         `json:"Created"`
	Scope      string            `json:"Scope"`
	Driver     string            `json:"Driver"`
	EnableIPv6 bool              `json:"EnableIPv6"`
	IPAM       IPAM              `json:"IPAM"`
	Internal   bool              `json:"Internal"`
	Attachable bool              `json:"Attachable"`
	Ingress    bool              `json:"Ingress"`
	Options    map[string]string `json:"Options"`
	Labels     map[string]string `json:"Labels"`
	// Bridge is the Linux bridge of a bridge network.
	Bridge string `json:"berthBridge,omitempty"`
	// UserSubnets: the user gave the subnets (--subnet); --ip needs
	// that, as in Docker.
	UserSubnets bool `json:"berthUserSubnets,omitempty"`
}

// IPAM is a network's address configuration.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// IPAMConfig is one subnet of a network.
type IPAMConfig struct {
	Subnet  string `json:"Subnet,omitempty"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

// Allocation is one address held by a container on a network (the value
// of "<network ID>/<address>" in the ipam bucket). It carries what
// network inspect shows of the container, so listing a network's
// containers reads no container record.
type Allocation struct {
	ContainerID string `json:"containerID"`
	Name        string `json:"name"`
	EndpointID  string `json:"endpointID"`
	MacAddress  string `json:"mac"`
	// Address with the subnet's prefix length.
	Address string `json:"address"`
	// Static: the user chose it (--ip/--ip6).
	Static bool `json:"static,omitempty"`
	// Owner is the process that allocated it (pid and start time), for
	// the sweep's judgement of a half-done attach.
	OwnerPid   int    `json:"ownerPid,omitempty"`
	OwnerStart uint64 `json:"ownerStart,omitempty"`
	// The endpoint as the dataplane was given it, so that any process
	// can remove it (its published ports included) or have it restored.
	IfName       string                  `json:"ifName,omitempty"`
	NetNSPath    string                  `json:"netns,omitempty"`
	DefaultRoute bool                    `json:"defaultRoute,omitempty"`
	Ports        []dataplane.PortMapping `json:"ports,omitempty"`
	// Run names the attach that made the endpoint (dataplane.Endpoint's
	// Run, in its guards' digest): the same for each address of one
	// endpoint, another for each run of the container. Empty in records
	// of an older berth.
	Run string `json:"run,omitempty"`
	// Releasing: the container is gone and the process ReleasingPid
	// (started at ReleasingStart) is removing its endpoint; the address
	// stays taken until then, but no longer keeps the network in use
	// (DetachDeferred).
	ReleasingPid   int    `json:"releasingPid,omitempty"`
	ReleasingStart uint64 `json:"releasingStart,omitempty"`
}

// Predefined network names, as Docker has them.
const (
	BridgeName = "bridge"
	HostName   = "host"
	NoneName   = "none"
)

// DefaultBridge is the Linux bridge of berth's default network under the
// default root ("berth0": berth runs beside Docker, whose docker0 it
// leaves alone).
const DefaultBridge = "berth0"

// DefaultRoot is berth's default --root, whose default network's bridge is
// DefaultBridge.
const DefaultRoot = "/var/lib/berth"

// DataplaneTable is the nftables table of the store at root: "berth" for
// the default root, else the name of its default bridge. Each root is a
// world of its own, like a Docker daemon: the dataplane's Reconcile
// removes what its table's records do not list, so two roots must never
// share a table (nor bridges, which the dataplane marks with its table).
func DataplaneTable(root string) string {
	if root == "" || root == DefaultRoot {
		return "berth"
	}
	return DefaultBridgeFor(root)
}

// DefaultBridgeFor is the bridge of the default network of the store at
// root: DefaultBridge for the default root; for any other root (tests,
// several installations side by side, each one like a Docker daemon of its
// own) "berth" and 8 hex digits of the root's hash, so that two roots
// never share a bridge with different subnets.
func DefaultBridgeFor(root string) string {
	if root == "" || root == DefaultRoot {
		return DefaultBridge
	}
	h := sha256.Sum256([]byte("bridge/" + root))
	return "berth" + hex.EncodeToString(h[:])[:8]
}

// Option names of the bridge driver that berth reads.
const (
	OptBridgeName  = "com.docker.network.bridge.name"
	OptMTU         = "com.docker.network.driver.mtu"
	OptDefault     = "com.docker.network.bridge.default_bridge"
	OptICC         = "com.docker.network.bridge.enable_icc"
	OptMasquerade  = "com.docker.network.bridge.enable_ip_masquerade"
	OptHostBinding = "com.docker.network.bridge.host_binding_ipv4"
)

// IsPredefined reports whether name is one of Docker's predefined networks,
// which cannot be created or removed.
func IsPredefined(name string) bool {
	return name == BridgeName || name == HostName || name == NoneName
}

// IsUserDefined reports whether n is a user-defined network (whose
// containers resolve each other by name).
func (n *Network) IsUserDefined() bool { return !IsPredefined(n.Name) }

// Pools are the network's subnets as ipam pools.
func (n *Network) Pools() []ipam.Pool {
	var out []ipam.Pool
	for _, c := range n.IPAM.Config {
		p, err := ipam.ParsePool(c.Subnet, c.IPRange, c.Gateway)
		if err == nil && (p.Subnet.Addr().Is4() || n.EnableIPv6) {
			out = append(out, p)
		}
	}
	return out
}

// MTU is the network's MTU option, 1500 unless set.
func (n *Network) MTU() int {
	if v, err := strconv.Atoi(n.Options[OptMTU]); err == nil && v > 0 {
		return v
	}
	return 1500
}

func (n *Network) optBool(name string, def bool) bool {
	v, ok := n.Options[name]
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def
	}
	return b
}

// bridgeName is the Linux bridge of a user network: the option's, or
// "br-" and the first 12 digits of its ID, as Docker names them.
func bridgeName(id string, opts map[string]string) string {
	if b := opts[OptBridgeName]; b != "" {
		return b
	}
	return "br-" + id[:12]
}

// EndpointID is the ID of a container's endpoint on a network; derived,
// so that any process finds the same one.
func EndpointID(containerID, networkID string) string {
	h := sha256.Sum256([]byte("endpoint/" + containerID + "/" + networkID))
	return hex.EncodeToString(h[:])
}

// HostIfName is the host side of a container's veth on a network, derived
// from both IDs so that what a crashed attach left can be found: "veth"
// and 11 hex digits (15 characters, the kernel's limit).
func HostIfName(containerID, networkID string) string {
	h := sha256.Sum256([]byte("veth/" + containerID + "/" + networkID))
	return "veth" + hex.EncodeToString(h[:])[:11]
}

// prefixOf returns the parsed address with its prefix length ("10.0.0.2/24").
func prefixOf(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	return p, err == nil
}

func allocKey(networkID string, a netip.Addr) string { return networkID + "/" + a.String() }

func splitAllocKey(k string) (networkID string, a netip.Addr, ok bool) {
	id, addr, ok := strings.Cut(k, "/")
	if !ok {
		return "", netip.Addr{}, false
	}
	a, err := netip.ParseAddr(addr)
	return id, a, err == nil
}
