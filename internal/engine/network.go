package engine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/network"
)

// NetworkCreateRequest is POST /networks/create.
type NetworkCreateRequest struct {
	Name           string            `json:"Name"`
	CheckDuplicate bool              `json:"CheckDuplicate"`
	Driver         string            `json:"Driver"`
	Scope          string            `json:"Scope"`
	EnableIPv6     bool              `json:"EnableIPv6"`
	IPAM           *NetworkIPAM      `json:"IPAM"`
	Internal       bool              `json:"Internal"`
	Attachable     bool              `json:"Attachable"`
	Ingress        bool              `json:"Ingress"`
	ConfigOnly     bool              `json:"ConfigOnly"`
	ConfigFrom     *NetworkConfigRef `json:"ConfigFrom"`
	Options        map[string]string `json:"Options"`
	Labels         map[string]string `json:"Labels"`
}

// NetworkCreateResponse is its answer.
type NetworkCreateResponse struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning"`
}

// NetworkIPAM is a network's address configuration.
type NetworkIPAM struct {
	Driver  string              `json:"Driver"`
	Options map[string]string   `json:"Options"`
	Config  []NetworkIPAMConfig `json:"Config"`
}

// NetworkIPAMConfig is one subnet.
type NetworkIPAMConfig struct {
	Subnet     string            `json:"Subnet,omitempty"`
	IPRange    string            `json:"IPRange,omitempty"`
	Gateway    string            `json:"Gateway,omitempty"`
	AuxAddress map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// NetworkConfigRef is ConfigFrom.
type NetworkConfigRef struct {
	Network string `json:"Network"`
}

// NetworkResource is the document of `network inspect` and GET /networks
// (Engine 20.10's fields, in its order).
type NetworkResource struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    string                      `json:"Created"`
	Scope      string                      `json:"Scope"`
	Driver     string                      `json:"Driver"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       NetworkIPAM                 `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	ConfigFrom NetworkConfigRef            `json:"ConfigFrom"`
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]EndpointResource `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
}

// EndpointResource is one container of a network's inspect document.
type EndpointResource struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// NetworkCreate is POST /networks/create (`docker network create`).
func (e *Engine) NetworkCreate(ctx context.Context, req NetworkCreateRequest) (NetworkCreateResponse, error) {
	if req.ConfigOnly || req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		return NetworkCreateResponse{}, errdefs.NotImplemented("config-only networks and --config-from are not supported by berth")
	}
	if req.Scope != "" && req.Scope != "local" {
		return NetworkCreateResponse{}, errdefs.InvalidArgument("invalid scope %q: berth networks are local", req.Scope)
	}
	o := network.CreateOptions{Name: req.Name, Driver: req.Driver, EnableIPv6: req.EnableIPv6, Internal: req.Internal,
		Attachable: req.Attachable, Ingress: req.Ingress, Options: req.Options, Labels: req.Labels, CheckDuplicate: true}
	if req.IPAM != nil {
		o.IPAM.Driver, o.IPAM.Options = req.IPAM.Driver, req.IPAM.Options
		for _, c := range req.IPAM.Config {
			if len(c.AuxAddress) > 0 {
				return NetworkCreateResponse{}, errdefs.NotImplemented("auxiliary addresses (--aux-address) are not supported by berth")
			}
			o.IPAM.Config = append(o.IPAM.Config, network.IPAMConfig{Subnet: c.Subnet, IPRange: c.IPRange, Gateway: c.Gateway})
		}
	}
	n, err := e.Networks.Create(ctx, o)
	if err != nil {
		return NetworkCreateResponse{}, err
	}
	if err := e.Attacher.CreateNetwork(ctx, n); err != nil {
		e.Networks.Remove(context.WithoutCancel(ctx), n.ID)
		e.Attacher.RemoveNetwork(context.WithoutCancel(ctx), n)
		return NetworkCreateResponse{}, err
	}
	e.Emit(ctx, networkEvent("create", n, ""))
	return NetworkCreateResponse{ID: n.ID, Warning: e.networkForwardWarning(n)}, nil
}

// networkEvent is Docker's network event: the network's ID, its name and
// type, and the container of a connect or disconnect.
func networkEvent(action string, n *network.Network, containerID string) container.Event {
	attrs := map[string]string{"name": n.Name, "type": n.Driver}
	if containerID != "" {
		attrs["container"] = containerID
	}
	return container.Event{Type: "network", Action: action, ID: n.ID, Attributes: attrs, Scope: "local"}
}

// networkDocument maps a record (and, for inspect, its endpoints).
func networkDocument(n *network.Network, eps map[string][]network.Allocation) NetworkResource {
	doc := NetworkResource{Name: n.Name, ID: n.ID, Created: n.Created.Local().Format(time.RFC3339Nano), Scope: n.Scope,
		Driver: n.Driver, EnableIPv6: n.EnableIPv6, Internal: n.Internal, Attachable: n.Attachable, Ingress: n.Ingress,
		IPAM:       NetworkIPAM{Driver: n.IPAM.Driver, Options: n.IPAM.Options, Config: []NetworkIPAMConfig{}},
		Containers: map[string]EndpointResource{}, Options: orEmptyMap(n.Options), Labels: orEmptyMap(n.Labels)}
	for _, c := range n.IPAM.Config {
		doc.IPAM.Config = append(doc.IPAM.Config, NetworkIPAMConfig{Subnet: c.Subnet, IPRange: c.IPRange, Gateway: c.Gateway})
	}
	for id, allocs := range eps {
		r := EndpointResource{}
		for _, al := range allocs {
			r.Name, r.EndpointID, r.MacAddress = al.Name, al.EndpointID, al.MacAddress
			if strings.Contains(al.Address, ":") {
				r.IPv6Address = al.Address
			} else {
				r.IPv4Address = al.Address
			}
		}
		doc.Containers[id] = r
	}
	return doc
}

// NetworkInspect is GET /networks/{id}.
func (e *Engine) NetworkInspect(ctx context.Context, ref string) (*NetworkResource, error) {
	n, err := e.Networks.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	eps, err := e.Networks.Endpoints(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	for id, allocs := range eps {
		// The container's name now (it may have been renamed).
		if c, err := e.Containers.Get(ctx, id); err == nil {
			for i := range allocs {
				allocs[i].Name = c.ShortName()
			}
		}
	}
	doc := networkDocument(n, eps)
	return &doc, nil
}

// NetworkListRequest is GET /networks.
type NetworkListRequest struct {
	Filters filters.Args
}

var networkListFilters = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}

// NetworkList lists networks by name, filtered as Docker filters them.
func (e *Engine) NetworkList(ctx context.Context, req NetworkListRequest) ([]NetworkResource, error) {
	f := req.Filters
	if err := f.Validate(networkListFilters...); err != nil {
		return nil, err
	}
	if err := f.WalkValues("type", func(v string) error {
		if v != "custom" && v != "builtin" {
			return errdefs.InvalidArgument("invalid filter: 'type'='%s'", v)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	dangling, err := optionalBool(f, "dangling")
	if err != nil {
		return nil, err
	}
	nets, err := e.Networks.List(ctx)
	if err != nil {
		return nil, err
	}
	var used map[string]bool
	if dangling != nil {
		if used, err = e.networksInUse(ctx); err != nil {
			return nil, err
		}
	}
	out := []NetworkResource{}
	for _, n := range nets {
		if !networkMatches(f, n) {
			continue
		}
		if dangling != nil {
			// Docker: dangling networks are user-defined ones no container uses.
			isDangling := n.IsUserDefined() && !used[n.ID]
			if isDangling != *dangling {
				continue
			}
		}
		out = append(out, networkDocument(n, nil))
	}
	return out, nil
}

func networkMatches(f filters.Args, n *network.Network) bool {
	typ := "custom"
	if !n.IsUserDefined() {
		typ = "builtin"
	}
	return f.ExactMatch("driver", n.Driver) && f.FuzzyMatch("id", n.ID) && f.Match("name", n.Name) &&
		f.ExactMatch("scope", n.Scope) && f.ExactMatch("type", typ) && f.MatchKVList("label", n.Labels)
}

// networksInUse are the networks a container is connected to (running or
// not), by ID.
func (e *Engine) networksInUse(ctx context.Context) (map[string]bool, error) {
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, c := range ctrs {
		for _, es := range c.NetworkSettings.Networks {
			used[es.NetworkID] = true
		}
	}
	return used, nil
}

// NetworkRemove is DELETE /networks/{id}.
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	n, err := e.Networks.Remove(ctx, ref)
	if err != nil {
		return err
	}
	// The record is gone; should the kernel's side stay (an error), the
	// next network sweep's reconciliation removes it.
	e.Attacher.RemoveNetwork(ctx, n)
	e.Emit(ctx, networkEvent("destroy", n, ""))
	return nil
}

// NetworkPruneReport is POST /networks/prune's answer.
type NetworkPruneReport struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// NetworksPrune removes the user-defined networks no container uses.
func (e *Engine) NetworksPrune(ctx context.Context, f filters.Args) (*NetworkPruneReport, error) {
	if err := f.Validate("label", "label!", "until"); err != nil {
		return nil, err
	}
	until, err := untilOf(f)
	if err != nil {
		return nil, err
	}
	if err := e.sweepNetworks(ctx); err != nil {
		return nil, err
	}
	// As Docker, a network is unused when no running container is on it
	// (a created or stopped container connected to it fails to start
	// once it is gone).
	cands, err := e.Networks.Prunable(ctx, func(n *network.Network) bool {
		return (until.IsZero() || !n.Created.After(until)) && f.MatchLabels(n.Labels)
	})
	if err != nil {
		return nil, err
	}
	rep := &NetworkPruneReport{}
	for _, n := range cands {
		if err := e.NetworkRemove(ctx, n.ID); err != nil {
			if errdefs.IsNotFound(err) || errors.Is(err, errdefs.ErrForbidden) {
				continue // gone or taken meanwhile
			}
			return rep, err
		}
		rep.NetworksDeleted = append(rep.NetworksDeleted, n.Name)
	}
	if len(rep.NetworksDeleted) > 0 {
		// With the last user network gone the root may be idle: the
		// sweep then takes the default bridge and the table away too.
		if err := e.sweepNetworks(ctx); err != nil {
			return rep, err
		}
	}
	e.Emit(ctx, pruneEvent("network", 0))
	return rep, nil
}

// NetworkConnectRequest is POST /networks/{id}/connect.
type NetworkConnectRequest struct {
	Network        string                   `json:"-"`
	Container      string                   `json:"Container"`
	EndpointConfig *EndpointSettingsRequest `json:"EndpointConfig"`
}

// NetworkConnect connects a container to a network: recorded for a
// container that does not run (it is attached at its next start), and
// attached at once to a running one.
func (e *Engine) NetworkConnect(ctx context.Context, req NetworkConnectRequest) error {
	// Docker looks the container up first.
	if _, err := e.Containers.Get(ctx, req.Container); err != nil {
		return err
	}
	n, err := e.Networks.Get(ctx, req.Network)
	if err != nil {
		return err
	}
	es := &container.EndpointSettings{NetworkID: n.ID}
	if r := req.EndpointConfig; r != nil {
		es.Aliases, es.Links, es.MacAddress = r.Aliases, r.Links, r.MacAddress
		for _, a := range r.Aliases {
			if err := checkHostsName("network alias", a); err != nil {
				return err
			}
		}
		if r.IPAMConfig != nil && (r.IPAMConfig.IPv4Address != "" || r.IPAMConfig.IPv6Address != "") {
			cp := *r.IPAMConfig
			es.IPAMConfig = &cp
		}
	}
	_, err = e.Containers.ChangeNetworks(ctx, req.Container, func(ctx context.Context, c *container.Container, ep *container.Endpoint, running bool) error {
		if err := network.CheckConnect(c, n, es, running); err != nil {
			return err
		}
		if c.NetworkSettings.Networks == nil {
			c.NetworkSettings.Networks = map[string]*container.EndpointSettings{}
		}
		c.NetworkSettings.Networks[n.Name] = es
		if !running {
			return nil
		}
		live, err := e.Attacher.ConnectLive(ctx, c, ep, n, es)
		if err != nil {
			return err
		}
		c.NetworkSettings.Networks[n.Name] = live
		return nil
	})
	// The connect event comes when the endpoint joins (at once for a
	// running container, else at its start), as Docker's.
	return err
}

// NetworkDisconnectRequest is POST /networks/{id}/disconnect.
type NetworkDisconnectRequest struct {
	Network   string `json:"-"`
	Container string `json:"Container"`
	Force     bool   `json:"Force"`
}

// NetworkDisconnect disconnects a container from a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, req NetworkDisconnectRequest) error {
	if _, err := e.Containers.Get(ctx, req.Container); err != nil {
		return err
	}
	n, err := e.Networks.Get(ctx, req.Network)
	if err != nil {
		return err
	}
	_, err = e.Containers.ChangeNetworks(ctx, req.Container, func(ctx context.Context, c *container.Container, ep *container.Endpoint, running bool) error {
		if err := network.CheckDisconnect(c, n, running); err != nil {
			return err
		}
		if running {
			// Its disconnect event comes from the endpoint leaving.
			if err := e.Attacher.DisconnectLive(ctx, ep, n); err != nil {
				return err
			}
		} else {
			e.Emit(ctx, networkEvent("disconnect", n, c.ID)) // Docker emits it here too
		}
		delete(c.NetworkSettings.Networks, n.Name)
		return nil
	})
	return err
}

// NetworkNames lists the networks of a container for `ps`'s NETWORKS
// column, sorted.
func networkNames(c *container.Container) []string {
	if len(c.NetworkSettings.Networks) == 0 {
		return []string{c.HostConfig.NetworkMode}
	}
	return slices.Sorted(maps.Keys(c.NetworkSettings.Networks))
}
