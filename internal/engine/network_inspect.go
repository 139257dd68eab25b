package engine

import (
	"maps"
	"slices"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/network"
)

// inspectLinks words --link as Docker's HostConfig.Links does:
// "/target:/container/alias".
func inspectLinks(c *container.Container) []string {
	var out []string
	for _, l := range c.HostConfig.Links {
		name, alias := network.ParseLink(l)
		out = append(out, "/"+name+":/"+c.ShortName()+"/"+alias)
	}
	return out
}

// networkSettings maps a container's recorded networks to Docker's
// NetworkSettings: the networks it is connected to always, and the
// addresses and published ports of its attachment while it runs (Docker
// clears them when the container stops). The default bridge's endpoint is
// repeated at the top, for old clients.
func networkSettings(c *container.Container) *NetworkSettings {
	live := c.State.Running || c.State.Paused || c.State.Restarting
	out := &NetworkSettings{Ports: map[string][]PortBinding{}, Networks: map[string]*EndpointSettings{}}
	if live {
		for p, bs := range c.NetworkSettings.Ports {
			if bs == nil {
				out.Ports[p] = nil
				continue
			}
			list := make([]PortBinding, 0, len(bs))
			for _, b := range bs {
				list = append(list, PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
			}
			out.Ports[p] = list
		}
	}
	nets := c.NetworkSettings.Networks
	if len(nets) == 0 {
		mode := c.HostConfig.NetworkMode
		if mode == "" {
			mode = "none"
		}
		if _, joined := container.ContainerNetNS(mode); !joined {
			out.Networks[mode] = &EndpointSettings{}
		}
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		es := nets[name]
		doc := &EndpointSettings{IPAMConfig: es.IPAMConfig, Links: nilIfEmpty(es.Links), Aliases: nilIfEmpty(es.Aliases), NetworkID: es.NetworkID}
		if live {
			doc.EndpointID, doc.Gateway, doc.IPAddress, doc.IPPrefixLen = es.EndpointID, es.Gateway, es.IPAddress, es.IPPrefixLen
			doc.IPv6Gateway, doc.GlobalIPv6Address, doc.GlobalIPv6PrefixLen = es.IPv6Gateway, es.GlobalIPv6Address, es.GlobalIPv6PrefixLen
			doc.MacAddress, doc.DNSNames = es.MacAddress, es.DNSNames
			if name == "bridge" {
				out.EndpointInfo = EndpointInfo{EndpointID: es.EndpointID, Gateway: es.Gateway,
					GlobalIPv6Address: es.GlobalIPv6Address, GlobalIPv6PrefixLen: es.GlobalIPv6PrefixLen,
					IPAddress: es.IPAddress, IPPrefixLen: es.IPPrefixLen, IPv6Gateway: es.IPv6Gateway, MacAddress: es.MacAddress}
			}
		}
		// A stopped container keeps its aliases (with the short ID its
		// first start added), as Docker's.
		out.Networks[name] = doc
	}
	return out
}
