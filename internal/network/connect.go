package network

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dns"
)

// ConnectLive attaches the running container c to network n (whose
// endpoint settings es the caller has put in c's record): an address, the
// dataplane's veth as the next ethN, and its names. It returns the
// settings to record. The container's DNS server, which its monitor
// holds, is told of the network (notify.go).
func (a *Attacher) ConnectLive(ctx context.Context, c *container.Container, ep *container.Endpoint, n *Network, es *container.EndpointSettings) (*container.EndpointSettings, error) {
	at := &attachment{name: n.Name, net: n, settings: es,
		spec: endpointSpec{ifName: nextIfName(c), netns: ep.NetNSPath, defaultRoute: len(c.NetworkSettings.Networks) <= 1 && !n.Internal}}
	unlock, err := a.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	err = a.svc.update(ctx, func(tx *metadata.Tx) error {
		at.allocs = nil
		return allocate(tx, c, at, len(c.NetworkSettings.Networks))
	})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.release(context.WithoutCancel(ctx), ep, []*attachment{at}, nil)
		}
	}()
	dn := dpNetwork(n)
	if err := a.dp.EnsureNetwork(ctx, dn); err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := a.dp.AddEndpoint(ctx, dn, endpointOf(n, c.ID, at.allocs)); err != nil {
		return nil, fmt.Errorf("connect to network %s: %w", n.Name, err)
	}
	if a.names != nil && n.IsUserDefined() {
		e := dns.Entry{Network: n.ID, ContainerID: c.ID, Names: dnsNames(c, es)}
		for _, al := range at.allocs {
			p, _ := prefixOf(al.Address)
			if p.Addr().Is4() {
				e.IPv4 = p.Addr()
			} else {
				e.IPv6 = p.Addr()
			}
		}
		if err := a.names.Add(ctx, e); err != nil {
			return nil, err
		}
	}
	ok = true
	a.notifyChanged(c.ID)
	a.emit(ctx, "connect", n, c.ID)
	att := attachmentOf(c, []*attachment{at}, nil, "", nil, false)
	return att.Settings.Networks[n.Name], nil
}

// nextIfName is the next ethN of the running container: one more than
// the networks it was on (the caller has added the new one).
func nextIfName(c *container.Container) string {
	return fmt.Sprintf("eth%d", len(c.NetworkSettings.Networks)-1)
}

// DisconnectLive detaches the running container from network n.
func (a *Attacher) DisconnectLive(ctx context.Context, ep *container.Endpoint, n *Network) error {
	atts, err := a.svc.attachmentsOf(ctx, ep.ID)
	if err != nil {
		return err
	}
	for _, at := range atts {
		if at.net.ID == n.ID {
			if err := a.release(ctx, ep, []*attachment{at}, nil); err != nil {
				return err
			}
			a.notifyChanged(ep.ID)
			a.emit(ctx, "disconnect", n, ep.ID)
		}
	}
	return nil
}

// CheckConnect judges `network connect` of c to n with Docker's refusals.
func CheckConnect(c *container.Container, n *Network, es *container.EndpointSettings, running bool) error {
	mode := c.HostConfig.NetworkMode
	if mode == HostName || n.Driver == "host" {
		return errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
	}
	if _, joined := container.ContainerNetNS(mode); joined {
		return errdefs.Forbidden("container sharing network namespace with another container or host cannot be connected to any other network")
	}
	_, onNone := c.NetworkSettings.Networks[NoneName]
	if onNone || n.Driver == "null" && len(c.NetworkSettings.Networks) > 0 {
		return errdefs.Forbidden("container cannot be connected to multiple networks with one of the networks in private (none) mode")
	}
	if _, ok := c.NetworkSettings.Networks[n.Name]; ok && running {
		// A container that does not run has its settings replaced, as Docker does.
		return errdefs.Forbidden("endpoint with name %s already exists in network %s", c.ShortName(), n.Name)
	}
	if es != nil && es.IPAMConfig != nil && (es.IPAMConfig.IPv4Address != "" || es.IPAMConfig.IPv6Address != "") {
		if !n.IsUserDefined() {
			return errdefs.InvalidArgument("user specified IP address is supported on user defined networks only")
		}
		if !n.UserSubnets {
			return errdefs.InvalidArgument("user specified IP address is supported only when connecting to networks with user configured subnets")
		}
	}
	if es != nil && len(es.Aliases) > 0 && !n.IsUserDefined() {
		return errdefs.InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
	}
	return nil
}

// CheckDisconnect judges `network disconnect`.
func CheckDisconnect(c *container.Container, n *Network, running bool) error {
	if c.HostConfig.NetworkMode == HostName || n.Driver == "host" {
		return errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
	}
	if _, ok := c.NetworkSettings.Networks[n.Name]; !ok {
		if running { // Docker's two wordings
			return errdefs.Forbidden("container %s is not connected to network %s", c.ID, n.Name)
		}
		return errdefs.Forbidden("container %s is not connected to the network %s", c.ID, n.Name)
	}
	return nil
}

// CreateNetwork puts a new network's bridge and rules into the kernel,
// as Docker makes a network's bridge when the network is created.
func (a *Attacher) CreateNetwork(ctx context.Context, n *Network) error {
	// Under the attach lock, as an attach: a sweep listing the networks
	// before this one was recorded must not reconcile its bridge away.
	unlock, err := a.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	return a.dp.EnsureNetwork(ctx, dpNetwork(n))
}

// RemoveNetwork takes a removed network's bridge and rules out of the
// kernel.
func (a *Attacher) RemoveNetwork(ctx context.Context, n *Network) error {
	return a.dp.RemoveNetwork(ctx, dpNetwork(n))
}
