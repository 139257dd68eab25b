package container

import "strings"

// NetworkSettings is what berth records of a container's networks, in the
// shape of Docker's inspect NetworkSettings: the networks it is connected
// to (kept while it is stopped, as Docker keeps them) and, while it runs,
// the addresses and ports its attachment gave.
type NetworkSettings struct {
	// Ports are the published ports as resolved at the last attachment.
	Ports PortMap `json:"Ports,omitempty"`
	// Networks are keyed by network name ("bridge" for the default one).
	Networks map[string]*EndpointSettings `json:"Networks,omitempty"`
}

// EndpointSettings is a container's attachment to one network.
type EndpointSettings struct {
	IPAMConfig          *EndpointIPAMConfig `json:"IPAMConfig"`
	Links               []string            `json:"Links"`
	Aliases             []string            `json:"Aliases"`
	NetworkID           string              `json:"NetworkID"`
	EndpointID          string              `json:"EndpointID"`
	Gateway             string              `json:"Gateway"`
	IPAddress           string              `json:"IPAddress"`
	IPPrefixLen         int                 `json:"IPPrefixLen"`
	IPv6Gateway         string              `json:"IPv6Gateway"`
	GlobalIPv6Address   string              `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int                 `json:"GlobalIPv6PrefixLen"`
	MacAddress          string              `json:"MacAddress"`
	DNSNames            []string            `json:"DNSNames"`
}

// EndpointIPAMConfig holds the addresses a user chose (--ip, --ip6).
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
	IPv6Address string `json:"IPv6Address,omitempty"`
}

// ContainerNetNS reports the container whose network namespace a
// "container:<id>" mode joins.
func ContainerNetNS(mode string) (string, bool) {
	return strings.CutPrefix(mode, "container:")
}

// UsesNetworks reports whether a network mode attaches the container to
// networks of berth's (bridge or a user-defined network), rather than
// none, host or another container's namespace.
func UsesNetworks(mode string) bool {
	_, joined := ContainerNetNS(mode)
	return mode != "none" && mode != "host" && !joined
}
