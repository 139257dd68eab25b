package engine

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network"
)

// NetworkingConfig is the create request's NetworkingConfig: the
// endpoint settings of the network the container starts on, keyed by that
// network's name or ID.
type NetworkingConfig struct {
	EndpointsConfig map[string]*EndpointSettingsRequest `json:"EndpointsConfig"`
}

// EndpointSettingsRequest is what a create or connect request may say of
// an endpoint (Docker's EndpointSettings: IPAMConfig, Links, Aliases,
// MacAddress).
type EndpointSettingsRequest struct {
	IPAMConfig *EndpointIPAMConfig `json:"IPAMConfig"`
	Links      []string            `json:"Links"`
	Aliases    []string            `json:"Aliases"`
	MacAddress string              `json:"MacAddress"`
}

// EndpointIPAMConfig is an endpoint's chosen addresses (--ip, --ip6).
type EndpointIPAMConfig = container.EndpointIPAMConfig

// validateNetworking checks a create request's network mode and the
// options that go with it, with Docker's messages. It does not need the
// store; resolveNetworking then finds the networks and containers named.
func validateNetworking(req *ContainerCreateRequest) error {
	hc, cfg := &req.HostConfig, &req.Config
	switch hc.NetworkMode {
	case "", "default":
		hc.NetworkMode = network.BridgeName
	}
	mode := hc.NetworkMode
	other, joined := container.ContainerNetNS(mode)
	if joined && other == "" {
		return errdefs.InvalidArgument("Invalid network mode: invalid container format container:<name|id>")
	}
	if joined {
		switch {
		case cfg.Hostname != "":
			return errdefs.InvalidArgument("conflicting options: hostname and the network mode")
		case len(hc.DNS) > 0:
			return errdefs.InvalidArgument("conflicting options: dns and the network mode")
		case len(hc.ExtraHosts) > 0:
			return errdefs.InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
		case cfg.MacAddress != "":
			return errdefs.InvalidArgument("conflicting options: mac-address and the network mode")
		case len(hc.Links) > 0:
			return errdefs.InvalidArgument("conflicting options: container type network can't be used with links. This would result in undefined behavior")
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return errdefs.InvalidArgument("conflicting options: port publishing and the container type network mode")
		}
	}
	if mode == network.HostName && len(hc.Links) > 0 {
		return errdefs.InvalidArgument("conflicting options: host type networking can't be used with links. This would result in undefined behavior")
	}
	if cfg.MacAddress != "" {
		if _, err := net.ParseMAC(cfg.MacAddress); err != nil {
			return errdefs.InvalidArgument("%s is not a valid mac address", cfg.MacAddress)
		}
	}
	if err := checkEndpointNames(req); err != nil {
		return err
	}
	for _, h := range hc.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" {
			return errdefs.InvalidArgument("invalid IP address in add-host: %q", ip)
		}
		if ip != "host-gateway" {
			if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil {
				return errdefs.InvalidArgument("invalid IP address in add-host: %q", ip)
			}
		}
	}
	if len(req.NetworkingConfig.EndpointsConfig) > 1 {
		var names []string
		for n := range req.NetworkingConfig.EndpointsConfig {
			names = append(names, n)
		}
		sort.Strings(names)
		return errdefs.InvalidArgument("Container cannot be connected to network endpoints: %s", strings.Join(names, ", "))
	}
	userNet := mode != network.BridgeName && mode != network.HostName && mode != network.NoneName && !joined
	for _, es := range req.NetworkingConfig.EndpointsConfig {
		if es == nil {
			continue
		}
		if es.IPAMConfig != nil && (es.IPAMConfig.IPv4Address != "" || es.IPAMConfig.IPv6Address != "") {
			if !userNet {
				return errdefs.InvalidArgument("user specified IP address is supported on user defined networks only")
			}
			if a := es.IPAMConfig.IPv4Address; a != "" {
				if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
					return errdefs.InvalidArgument("invalid IPv4 address: %s", a)
				}
			}
			if a := es.IPAMConfig.IPv6Address; a != "" {
				if ip, err := netip.ParseAddr(a); err != nil || !ip.Is6() {
					return errdefs.InvalidArgument("invalid IPv6 address: %s", a)
				}
			}
		}
		if len(es.Aliases) > 0 && !userNet {
			return errdefs.InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
		}
		if es.MacAddress != "" {
			if _, err := net.ParseMAC(es.MacAddress); err != nil {
				return errdefs.InvalidArgument("%s is not a valid mac address", es.MacAddress)
			}
		}
	}
	for p := range hc.PortBindings {
		if _, _, err := splitPortProto(p); err != nil {
			return err
		}
	}
	return nil
}

// splitPortProto checks a container port key ("80/tcp").
func splitPortProto(p string) (string, string, error) {
	num, proto, _ := strings.Cut(p, "/")
	if proto == "" {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return "", "", errdefs.InvalidArgument("invalid proto: %s", proto)
	}
	if !digits(num) {
		return "", "", errdefs.InvalidArgument("invalid containerPort: %s", num)
	}
	return num, proto, nil
}

// resolveNetworking finds what a validated request names: its network
// (NetworkMode becomes the network's name), the container a
// container:<ref> mode joins (by full ID) and link targets; and records
// the endpoint settings in the new container's NetworkSettings.
func (e *Engine) resolveNetworking(ctx context.Context, req *ContainerCreateRequest) (container.NetworkSettings, error) {
	hc := &req.HostConfig
	var st container.NetworkSettings
	if other, joined := container.ContainerNetNS(hc.NetworkMode); joined {
		c, err := e.Containers.Get(ctx, other)
		if err != nil {
			return st, err
		}
		hc.NetworkMode = "container:" + c.ID
		return st, nil
	}
	n, err := e.Networks.Get(ctx, hc.NetworkMode)
	if err != nil {
		return st, err
	}
	hc.NetworkMode = n.Name
	if err := e.checkPublish(n, hc); err != nil {
		return st, err
	}
	var es *EndpointSettingsRequest
	for ref, v := range req.NetworkingConfig.EndpointsConfig {
		if ref != n.Name && ref != n.ID && ref != "default" && ref != "" {
			if other, err := e.Networks.Get(ctx, ref); err != nil || other.ID != n.ID {
				return st, errdefs.InvalidArgument("Container cannot be connected to network endpoints: %s", ref)
			}
		}
		es = v
	}
	rec := &container.EndpointSettings{NetworkID: n.ID}
	if es != nil {
		rec.Aliases, rec.Links, rec.MacAddress = es.Aliases, es.Links, es.MacAddress
		if es.IPAMConfig != nil && (es.IPAMConfig.IPv4Address != "" || es.IPAMConfig.IPv6Address != "") {
			if len(n.IPAM.Config) == 0 || !userConfigured(n) {
				return st, errdefs.InvalidArgument("user specified IP address is supported only when connecting to networks with user configured subnets")
			}
			cp := *es.IPAMConfig
			rec.IPAMConfig = &cp
		}
		if es.MacAddress != "" && req.Config.MacAddress == "" {
			req.Config.MacAddress = es.MacAddress
		}
	}
	for _, l := range hc.Links {
		name, _ := network.ParseLink(l)
		if _, err := e.Containers.Get(ctx, name); err != nil {
			return st, errdefs.InvalidArgument("could not get container for %s", name)
		}
	}
	st.Networks = map[string]*container.EndpointSettings{n.Name: rec}
	return st, nil
}

// userConfigured reports whether the user gave the network's subnets
// (--ip needs them, as in Docker).
func userConfigured(n *network.Network) bool { return n.IsUserDefined() && n.UserSubnets }
