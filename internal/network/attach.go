package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/network/dns"
	"github.com/berth-dev/berth/internal/network/ipam"
)

// Dataplane is what the attacher needs of internal/network/dataplane.
type Dataplane interface {
	EnsureNetwork(ctx context.Context, n dataplane.Network) error
	RemoveNetwork(ctx context.Context, n dataplane.Network) error
	AddEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	RemoveEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	// ReleaseEndpoint is RemoveEndpoint for a namespace about to be
	// destroyed: the kernel deletes its veth with it.
	ReleaseEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
	ReservePorts(ctx context.Context, ports []dataplane.PortMapping) (io.Closer, error)
	Reconcile(ctx context.Context, networks []dataplane.Network, endpoints []dataplane.Endpoint) error
}

// Names is what the attacher needs of the embedded DNS's shared name
// table (dns.Registry).
type Names interface {
	Add(ctx context.Context, e dns.Entry) error
	Remove(ctx context.Context, networkID, containerID string) error
}

// DNSServer is a running embedded DNS server (dns.Server).
type DNSServer interface {
	SetNetworks(networks []string)
	Close() error
}

// StartDNS starts a container's embedded DNS server (dns.Start over the
// registry).
type StartDNS func(ctx context.Context, cfg dns.Config) (DNSServer, error)

// Attacher implements container.NetworkAttacher over the network records,
// the dataplane and the embedded DNS. An instance lives in each monitor
// (which holds a running container's port reservations and DNS server
// until Detach) and in each CLI process (which detaches containers it
// removes or reconciles; what a dead monitor held died with it).
type Attacher struct {
	svc      *Service
	dp       Dataplane
	names    Names
	startDNS StartDNS
	// resolvConf is the host's resolv.conf (a file in tests).
	resolvConf string
	// lockPath is the attach lock (see lock); "" for none.
	lockPath string
	// notifyDir holds the files that tell monitors of live network
	// changes (notify.go); "" for none.
	notifyDir string

	mu   sync.Mutex
	held map[string]*held // container ID -> what this process holds for it
	// events receives Docker's network connect and disconnect events, as
	// endpoints join and leave (SetEvents; none until set).
	events Events
}

// Events is where the attacher reports endpoints joining and leaving
// networks (the container service's event journal).
type Events interface {
	Emit(ctx context.Context, ev container.Event)
}

// lock takes the attach lock: attaches hold it shared from recording
// their addresses until their endpoints are in the kernel, the sweep
// exclusively while it lists the recorded endpoints and has the dataplane
// reconcile to them, so that it never removes an endpoint being made.
func (a *Attacher) lock(ctx context.Context, how int) (func(), error) {
	if a.lockPath == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(a.lockPath), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(a.lockPath, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockfile.Flock(ctx, f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("network attach lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// SetEvents makes the attacher emit network connect and disconnect
// events to ev (the container service, built after the attacher).
func (a *Attacher) SetEvents(ev Events) { a.events = ev }

// emit sends Docker's network event for container id on n.
func (a *Attacher) emit(ctx context.Context, action string, n *Network, containerID string) {
	if a.events == nil {
		return
	}
	a.events.Emit(ctx, networkEvent(action, n, containerID))
}

func networkEvent(action string, n *Network, containerID string) container.Event {
	return container.Event{Type: "network", Action: action, ID: n.ID, Scope: "local",
		Attributes: map[string]string{"container": containerID, "name": n.Name, "type": n.Driver}}
}

// emitFor is emit for ep's container, or holds the event when ep asks.
func (a *Attacher) emitFor(ctx context.Context, ep *container.Endpoint, action string, n *Network) {
	if ep.HeldEvents != nil {
		*ep.HeldEvents = append(*ep.HeldEvents, networkEvent(action, n, ep.ID))
		return
	}
	a.emit(ctx, action, n, ep.ID)
}

// held is what a running container's attachment keeps open in the
// process that made it.
type held struct {
	ports   io.Closer
	unwatch func()
	// mu guards server and closed against the network watcher
	// (notify.go), which may start or stop the server.
	mu     sync.Mutex
	server DNSServer
	closed bool
}

// close stops what h holds.
func (h *held) close() error {
	if h.unwatch != nil {
		h.unwatch()
	}
	h.mu.Lock()
	h.closed = true
	srv := h.server
	h.server = nil
	h.mu.Unlock()
	var errs []error
	if srv != nil {
		errs = append(errs, srv.Close())
	}
	if h.ports != nil {
		errs = append(errs, h.ports.Close())
	}
	return errors.Join(errs...)
}

// NewAttacher builds the attacher. names and startDNS may be nil (no
// embedded DNS: user networks then resolve no names).
func NewAttacher(svc *Service, dp Dataplane, names Names, startDNS StartDNS) *Attacher {
	return &Attacher{svc: svc, dp: dp, names: names, startDNS: startDNS, resolvConf: "/etc/resolv.conf", held: map[string]*held{}}
}

var _ container.NetworkAttacher = (*Attacher)(nil)

// attachment is one network of a container being attached.
type attachment struct {
	name     string // the key in NetworkSettings.Networks
	net      *Network
	settings *container.EndpointSettings
	allocs   []Allocation
	// spec is what the allocations record of the endpoint.
	spec endpointSpec
}

// endpointSpec is the endpoint of a container on one network, beside its
// addresses.
type endpointSpec struct {
	ifName, netns string
	defaultRoute  bool
	ports         []dataplane.PortMapping
}

// endpointOf builds the dataplane's endpoint from what the allocations
// of a container on n record.
func endpointOf(n *Network, containerID string, allocs []Allocation) dataplane.Endpoint {
	ep := dataplane.Endpoint{ContainerID: containerID, NetworkID: n.ID, HostIfName: HostIfName(containerID, n.ID), MTU: n.MTU()}
	pools := n.Pools()
	for _, al := range allocs {
		p, ok := prefixOf(al.Address)
		if !ok {
			continue
		}
		ep.Addresses = append(ep.Addresses, p)
		if ep.MAC == nil {
			ep.MAC = parseMAC(al.MacAddress)
		}
		if ep.IfName == "" {
			ep.IfName, ep.NetNSPath, ep.Ports, ep.Run = al.IfName, al.NetNSPath, al.Ports, al.Run
		}
		if al.DefaultRoute {
			for _, pl := range pools {
				if pl.Subnet.Contains(p.Addr()) {
					ep.Gateways = append(ep.Gateways, pl.Gateway)
				}
			}
		}
	}
	if ep.IfName == "" {
		ep.IfName = "eth0" // recorded by an older berth
	}
	return ep
}

// networkOrder lists the container's bridge networks, its mode's first
// (eth0), then the others by name. "none" is no network to attach (a
// container on none that was connected to another network later is
// attached to that one only).
func networkOrder(c *container.Container) []string {
	mode := c.HostConfig.NetworkMode
	var names, rest []string
	if _, ok := c.NetworkSettings.Networks[mode]; (ok || len(c.NetworkSettings.Networks) == 0) && mode != NoneName {
		names = []string{mode} // else disconnected from it
	}
	for name := range c.NetworkSettings.Networks {
		if name != mode && name != NoneName {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// attachable reports whether the container has networks of berth's to be
// attached to (not host, another container's namespace, or none alone).
func attachable(ep *container.Endpoint) bool {
	mode := ep.NetworkMode
	if _, joined := container.ContainerNetNS(mode); joined || mode == HostName {
		return false
	}
	return ep.Container == nil || len(networkOrder(ep.Container)) > 0
}

// Attach connects the container to each of its networks: addresses
// (allocated in one metadata transaction, or the --ip/--ip6 asked for),
// the dataplane's bridge and veth, published ports (reserved and held in
// this process until Detach), DNS names on user-defined networks and the
// container's embedded DNS server. On any failure everything done is
// undone.
func (a *Attacher) Attach(ctx context.Context, ep *container.Endpoint) (_ *container.NetworkAttachment, err error) {
	c := ep.Container
	if c == nil || !attachable(ep) {
		return &container.NetworkAttachment{}, nil
	}
	// What a previous run of this container left (a crashed monitor)
	// goes first, so that its addresses are free again.
	if err := a.Detach(ctx, ep); err != nil {
		return nil, err
	}
	unlock, err := a.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var atts []*attachment
	h := &held{}
	defer func() {
		if err != nil {
			a.release(context.WithoutCancel(ctx), ep, atts, h)
		}
	}()
	// Published ports are reserved first (the dataplane picks free ones),
	// so that the addresses' records carry them.
	ports, err := a.reserve(ctx, c)
	if err != nil {
		return nil, err
	}
	h.ports = ports.closer
	var bridgeGW string
	var bridgeNet *Network
	var linkHosts []string
	err = a.svc.update(ctx, func(tx *metadata.Tx) error {
		atts = atts[:0]
		routed := false
		for i, name := range networkOrder(c) {
			n, err := resolveTx(tx, name)
			if err != nil {
				return err
			}
			if n.Driver != "bridge" {
				return errdefs.InvalidArgument("container cannot be connected to network %s with driver %s together with others", n.Name, n.Driver)
			}
			es := c.NetworkSettings.Networks[name]
			if es == nil {
				es = &container.EndpointSettings{}
			}
			at := &attachment{name: name, net: n, settings: es,
				spec: endpointSpec{ifName: fmt.Sprintf("eth%d", i), netns: ep.NetNSPath, defaultRoute: !routed && !n.Internal}}
			routed = routed || at.spec.defaultRoute
			if i == 0 {
				at.spec.ports = ports.mappings
			}
			if err := allocate(tx, c, at, i); err != nil {
				return err
			}
			atts = append(atts, at)
		}
		br, err := resolveByName(tx, BridgeName)
		if err == nil && len(br.Pools()) > 0 {
			bridgeNet = br
			bridgeGW = br.Pools()[0].Gateway.String()
			if len(c.HostConfig.Links) > 0 {
				linkHosts, err = linkEntries(tx, br, c.HostConfig.Links)
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, at := range atts {
		dn := dpNetwork(at.net)
		if err := a.dp.EnsureNetwork(ctx, dn); err != nil {
			return nil, fmt.Errorf("network %s: %w", at.net.Name, err)
		}
		dep := endpointOf(at.net, c.ID, at.allocs)
		dep.PortsReserved = true // h.ports holds them
		if err := a.dp.AddEndpoint(ctx, dn, dep); err != nil {
			return nil, fmt.Errorf("connect to network %s: %w", at.net.Name, err)
		}
	}
	if bridgeNet != nil && usesHostGateway(c) {
		// host-gateway is the default bridge's address: it must exist
		// even when no container is on that network.
		if err := a.dp.EnsureNetwork(ctx, dpNetwork(bridgeNet)); err != nil {
			return nil, fmt.Errorf("network %s (for host-gateway): %w", bridgeNet.Name, err)
		}
	}
	portMap := portsView(c, ports.mappings, atts)
	var userNets []string
	if a.names != nil {
		for _, at := range atts {
			if !at.net.IsUserDefined() {
				continue
			}
			userNets = append(userNets, at.net.ID)
			e := dns.Entry{Network: at.net.ID, ContainerID: c.ID, Names: dnsNames(c, at.settings)}
			for _, al := range at.allocs {
				p, _ := prefixOf(al.Address)
				if p.Addr().Is4() {
					e.IPv4 = p.Addr()
				} else {
					e.IPv6 = p.Addr()
				}
			}
			if err := a.names.Add(ctx, e); err != nil {
				return nil, fmt.Errorf("register the names of %s on %s: %w", c.ShortName(), at.net.Name, err)
			}
		}
		if len(userNets) > 0 && a.startDNS != nil {
			srv, err := a.startDNS(ctx, dns.Config{NetNSPath: ep.NetNSPath, Networks: userNets, Upstream: a.upstream(c, atts), Links: dnsLinks(c)})
			if err != nil {
				return nil, fmt.Errorf("start the embedded DNS server of %s: %w", c.ShortName(), err)
			}
			h.server = srv
		}
	}
	if a.names != nil && a.startDNS != nil && ep.NetNSPath != "" {
		// Also without a server: `network connect` to a user network
		// starts one (notify.go).
		if h.unwatch, err = a.watchNetworks(ep, h); err != nil {
			return nil, fmt.Errorf("watch the networks of %s: %w", c.ShortName(), err)
		}
	}
	a.mu.Lock()
	a.held[c.ID] = h
	a.mu.Unlock()
	for _, at := range atts {
		a.emit(ctx, "connect", at.net, c.ID)
	}
	return attachmentOf(c, atts, portMap, bridgeGW, linkHosts, len(userNets) > 0), nil
}

// allocate gives at its addresses on its network: the container's --ip
// and --ip6 when given, else the first free ones.
func allocate(tx *metadata.Tx, c *container.Container, at *attachment, index int) error {
	n := at.net
	taken := map[netip.Addr]bool{}
	if err := tx.ForEachPrefix(metadata.BucketIPAM, n.ID+"/", func(k string, _ []byte) error {
		if _, addr, ok := splitAllocKey(k); ok {
			taken[addr] = true
		}
		return nil
	}); err != nil {
		return err
	}
	isTaken := func(a netip.Addr) bool { return taken[a] }
	var want4, want6 netip.Addr
	if cfg := at.settings.IPAMConfig; cfg != nil {
		var err error
		if cfg.IPv4Address != "" {
			if want4, err = netip.ParseAddr(cfg.IPv4Address); err != nil || !want4.Is4() {
				return errdefs.InvalidArgument("invalid IPv4 address: %s", cfg.IPv4Address)
			}
		}
		if cfg.IPv6Address != "" {
			if want6, err = netip.ParseAddr(cfg.IPv6Address); err != nil || !want6.Is6() {
				return errdefs.InvalidArgument("invalid IPv6 address: %s", cfg.IPv6Address)
			}
		}
	}
	pools := n.Pools()
	pick := func(v4 bool, want netip.Addr) (netip.Addr, ipam.Pool, bool, error) {
		var errs []error
		for _, p := range pools {
			if p.Subnet.Addr().Is4() != v4 {
				continue
			}
			if want.IsValid() {
				if !p.Subnet.Contains(want) {
					continue
				}
				return want, p, true, ipam.CheckStatic(p, want, isTaken)
			}
			a, err := ipam.Allocate(p, isTaken)
			if err == nil {
				return a, p, false, nil
			}
			errs = append(errs, err)
		}
		if want.IsValid() {
			return netip.Addr{}, ipam.Pool{}, true, ipam.ErrNotInSubnet(want)
		}
		if len(errs) > 0 {
			return netip.Addr{}, ipam.Pool{}, false, errors.Join(errs...)
		}
		return netip.Addr{}, ipam.Pool{}, false, nil
	}
	eid := EndpointID(c.ID, n.ID)
	run := newRun()
	var mac string
	put := func(addr netip.Addr, p ipam.Pool, static bool) error {
		if addr.Is4() || mac == "" {
			if at.settings.MacAddress != "" {
				mac = at.settings.MacAddress // the endpoint's own (connect)
			} else if c.Config.MacAddress != "" && index == 0 {
				mac = c.Config.MacAddress
			} else if addr.Is4() {
				mac = ipam.MAC(addr).String()
			}
		}
		pid, start := selfOwner()
		al := Allocation{ContainerID: c.ID, Name: c.ShortName(), EndpointID: eid, MacAddress: mac,
			Address: netip.PrefixFrom(addr, p.Subnet.Bits()).String(), Static: static, OwnerPid: pid, OwnerStart: start,
			IfName: at.spec.ifName, NetNSPath: at.spec.netns, DefaultRoute: at.spec.defaultRoute, Ports: at.spec.ports, Run: run}
		taken[addr] = true
		at.allocs = append(at.allocs, al)
		return tx.Put(metadata.BucketIPAM, allocKey(n.ID, addr), al)
	}
	a4, p4, static4, err := pick(true, want4)
	if err != nil {
		return err
	}
	if a4.IsValid() {
		if err := put(a4, p4, static4); err != nil {
			return err
		}
	}
	if n.EnableIPv6 || want6.IsValid() {
		if !n.EnableIPv6 {
			return errdefs.InvalidArgument("user specified IP address is supported only when connecting to networks with user configured subnets")
		}
		a6, p6, static6, err := pick(false, want6)
		if err != nil {
			return err
		}
		if a6.IsValid() {
			if err := put(a6, p6, static6); err != nil {
				return err
			}
		}
	}
	if len(at.allocs) == 0 {
		return errdefs.Unavailable("network %s has no subnet to give an address from", n.Name)
	}
	return nil
}

// linkEntries are the /etc/hosts lines of legacy links ("name:alias") to
// containers on the default bridge: their address, the alias, the
// container's short ID and name, as Docker writes them.
func linkEntries(tx *metadata.Tx, br *Network, links []string) ([]string, error) {
	byID := map[string]Allocation{}
	err := tx.ForEachPrefix(metadata.BucketIPAM, br.ID+"/", func(_ string, raw []byte) error {
		var al Allocation
		if json.Unmarshal(raw, &al) == nil {
			if p, ok := prefixOf(al.Address); ok && p.Addr().Is4() {
				byID[al.ContainerID] = al
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		name, alias := ParseLink(l)
		// The container's name now (it may have been renamed since it
		// started), from the names the container service keeps.
		al, ok := byID[string(tx.GetRaw(metadata.BucketNames, name))]
		if !ok {
			return nil, errdefs.InvalidArgument("Cannot link to a non running container: /%s AS %s", name, alias)
		}
		p, _ := prefixOf(al.Address)
		names := []string{alias}
		if alias != name {
			names = append(names, al.ContainerID[:12], name)
		} else {
			names = append(names, al.ContainerID[:12])
		}
		out = append(out, p.Addr().String()+"\t"+strings.Join(names, " "))
	}
	return out, nil
}

// ParseLink splits a link as the CLI gives it ("name[:alias]") or as
// Docker records it ("/name:/container/alias").
func ParseLink(l string) (name, alias string) {
	name, alias, ok := strings.Cut(l, ":")
	name = strings.TrimPrefix(name, "/")
	if !ok {
		return name, name
	}
	if i := strings.LastIndex(alias, "/"); i >= 0 {
		alias = alias[i+1:]
	}
	return name, alias
}

// dnsNames are the names a container answers to on a user network: its
// name, its --network-alias names and its short ID.
func dnsNames(c *container.Container, es *container.EndpointSettings) []string {
	names := []string{c.ShortName()}
	for _, al := range es.Aliases {
		if al != "" && al != c.ShortName() && al != c.ID[:12] {
			names = append(names, al)
		}
	}
	return append(names, c.ID[:12])
}

// dnsLinks are the container's --link aliases for its embedded DNS
// server (alias -> linked container's name).
func dnsLinks(c *container.Container) map[string]string {
	out := map[string]string{}
	add := func(links []string) {
		for _, l := range links {
			if name, alias := ParseLink(l); alias != name {
				out[alias] = name
			}
		}
	}
	add(c.HostConfig.Links)
	for _, es := range c.NetworkSettings.Networks {
		add(es.Links) // where links to user networks are recorded, as Docker's
	}
	return out
}

// upstream are the resolvers the embedded DNS forwards other names to:
// --dns, else the host's (loopback ones included: the server forwards
// from the host's namespace). None when every network is internal.
func (a *Attacher) upstream(c *container.Container, atts []*attachment) []netip.AddrPort {
	internal := true
	for _, at := range atts {
		internal = internal && at.net.Internal
	}
	if internal {
		return nil
	}
	servers := c.HostConfig.DNS
	if len(servers) == 0 {
		b, _ := os.ReadFile(a.resolvConf)
		servers, _, _ = container.ParseResolvConf(b)
	}
	var out []netip.AddrPort
	for _, s := range servers {
		if addr, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(addr, 53))
		}
	}
	return out
}

// dpNetwork is the dataplane's view of a network record.
func dpNetwork(n *Network) dataplane.Network {
	d := dataplane.Network{ID: n.ID, Bridge: n.Bridge, MTU: n.MTU(), Internal: n.Internal,
		Masquerade: n.optBool(OptMasquerade, true) && !n.Internal, ICC: n.optBool(OptICC, true)}
	if d.Bridge == "" {
		d.Bridge = bridgeName(n.ID, n.Options)
	}
	for _, p := range n.Pools() {
		d.Subnets = append(d.Subnets, p.Subnet)
		d.Gateways = append(d.Gateways, p.Gateway)
	}
	if hb, err := netip.ParseAddr(n.Options[OptHostBinding]); err == nil && !hb.IsUnspecified() {
		d.HostBinding = hb
	}
	return d
}

// attachmentOf is what the container records and writes to /etc of its
// attachment.
func attachmentOf(c *container.Container, atts []*attachment, ports container.PortMap, bridgeGW string, links []string, embedded bool) *container.NetworkAttachment {
	att := &container.NetworkAttachment{EmbeddedDNS: embedded, HostGateway: bridgeGW, Hosts: links}
	st := &container.NetworkSettings{Ports: ports, Networks: map[string]*container.EndpointSettings{}}
	for name, es := range c.NetworkSettings.Networks {
		cp := *es
		st.Networks[name] = &cp
	}
	for _, at := range atts {
		es := *at.settings
		es.NetworkID, es.EndpointID = at.net.ID, EndpointID(c.ID, at.net.ID)
		es.Gateway, es.IPAddress, es.IPPrefixLen = "", "", 0
		es.IPv6Gateway, es.GlobalIPv6Address, es.GlobalIPv6PrefixLen = "", "", 0
		es.DNSNames = nil
		pools := at.net.Pools()
		for _, al := range at.allocs {
			p, _ := prefixOf(al.Address)
			var gw string
			for _, pl := range pools {
				if pl.Subnet.Contains(p.Addr()) {
					gw = pl.Gateway.String()
				}
			}
			if p.Addr().Is4() {
				es.IPAddress, es.IPPrefixLen, es.Gateway = p.Addr().String(), p.Bits(), gw
			} else {
				es.GlobalIPv6Address, es.GlobalIPv6PrefixLen, es.IPv6Gateway = p.Addr().String(), p.Bits(), gw
			}
			es.MacAddress = al.MacAddress
			att.Addresses = append(att.Addresses, p.Addr().String())
		}
		if at.net.IsUserDefined() {
			es.DNSNames = dnsNames(c, at.settings)
			aliases := append([]string{}, at.settings.Aliases...)
			short := c.ID[:12]
			if !contains(aliases, short) {
				aliases = append(aliases, short)
			}
			es.Aliases = aliases
		}
		st.Networks[at.name] = &es
	}
	att.Settings = st
	return att
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Detach undoes the container's attachment: its DNS server and port
// reservations (when this process holds them), its endpoints in the
// dataplane, its names, and its addresses. It is idempotent: what is
// already gone is skipped.
func (a *Attacher) Detach(ctx context.Context, ep *container.Endpoint) error {
	if !attachable(ep) {
		return nil
	}
	a.mu.Lock()
	h := a.held[ep.ID]
	delete(a.held, ep.ID)
	a.mu.Unlock()
	atts, err := a.svc.attachmentsOf(ctx, ep.ID)
	if err != nil {
		return err
	}
	if len(atts) == 0 && h == nil {
		return nil
	}
	if err := a.release(ctx, ep, atts, h); err != nil {
		return err
	}
	for _, at := range atts {
		a.emitFor(ctx, ep, "disconnect", at.net)
	}
	return nil
}

// release undoes atts (endpoints, names, addresses) and what h holds.
func (a *Attacher) release(ctx context.Context, ep *container.Endpoint, atts []*attachment, h *held) error {
	var errs []error
	if h != nil {
		errs = append(errs, h.close())
	}
	for _, at := range atts {
		if len(at.allocs) == 0 {
			continue // nothing of it was recorded, so nothing made
		}
		dn := dpNetwork(at.net)
		dep := endpointOf(at.net, ep.ID, at.allocs)
		remove := a.dp.RemoveEndpoint
		if ep.Final && dep.NetNSPath != "" {
			remove = a.dp.ReleaseEndpoint
		}
		if err := remove(ctx, dn, dep); err != nil {
			errs = append(errs, fmt.Errorf("disconnect from network %s: %w", at.net.Name, err))
		}
		if a.names != nil && at.net.IsUserDefined() {
			if err := a.names.Remove(ctx, at.net.ID, ep.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // the addresses stay until the endpoints are gone
	}
	var nets []string
	for _, at := range atts {
		nets = append(nets, at.net.ID)
	}
	return a.svc.releaseContainer(ctx, ep.ID, nets)
}

// attachmentsOf lists the networks on which container id holds addresses,
// with those allocations.
func (s *Service) attachmentsOf(ctx context.Context, id string) ([]*attachment, error) {
	var out []*attachment
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		byNet := map[string]*attachment{}
		err := tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if err := json.Unmarshal(raw, &al); err != nil || al.ContainerID != id || releaserAlive(al) {
				return nil // another's, or being released by a live process
			}
			nid, _, ok := splitAllocKey(k)
			if !ok {
				return nil
			}
			at := byNet[nid]
			if at == nil {
				var n Network
				if err := tx.Get(metadata.BucketNetworks, nid, &n); err != nil {
					// Its record is gone: still undo, on the subnet
					// the address gives.
					n = Network{ID: nid, Name: nid, Driver: "bridge", Bridge: bridgeName(nid, nil)}
					if p, ok := prefixOf(al.Address); ok {
						n.IPAM.Config = []IPAMConfig{{Subnet: p.Masked().String()}}
						n.EnableIPv6 = p.Addr().Is6()
					}
				}
				at = &attachment{name: n.Name, net: &n}
				byNet[nid] = at
				out = append(out, at)
			}
			at.allocs = append(at.allocs, al)
			return nil
		})
		return err
	})
	return out, err
}

// releaseContainer frees the addresses of container id on the networks
// nets, in one transaction.
func (s *Service) releaseContainer(ctx context.Context, id string, nets []string) error {
	if len(nets) == 0 {
		return nil
	}
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		var keys []string
		for _, nid := range nets {
			err := tx.ForEachPrefix(metadata.BucketIPAM, nid+"/", func(k string, raw []byte) error {
				var al Allocation
				if json.Unmarshal(raw, &al) == nil && al.ContainerID == id {
					keys = append(keys, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := tx.Delete(metadata.BucketIPAM, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// usesHostGateway reports whether an --add-host of c names host-gateway.
func usesHostGateway(c *container.Container) bool {
	for _, h := range c.HostConfig.ExtraHosts {
		if strings.HasSuffix(h, ":host-gateway") {
			return true
		}
	}
	return false
}
