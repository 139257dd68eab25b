package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/ipam"
)

// Service keeps network records and address allocations.
type Service struct {
	meta *metadata.Store
	// bridge is the Linux bridge the default network gets when it is made.
	bridge string
	// table is the dataplane's nftables table for this root.
	table string
	// hostRoutes lists the destinations of the host's routes, which a
	// network chosen from the default pools must not overlap.
	hostRoutes func() []netip.Prefix
	// claims are the host-wide claims of subnets picked from the pools.
	claims subnetClaims
	now    func() time.Time
	// publish locates the configuration of published ports (publish.go).
	publish PublishConfig
}

// NewService opens the network service over berth's metadata store at
// root (--root).
func NewService(meta *metadata.Store, root string) *Service {
	s := &Service{meta: meta, bridge: DefaultBridgeFor(root), table: DataplaneTable(root), hostRoutes: HostRoutes, now: time.Now}
	if root != "" {
		s.claims = subnetClaims{dir: defaultClaimsDir, root: root}
	}
	return s
}

// DataplaneTable is the nftables table the dataplane of this root uses.
func (s *Service) DataplaneTable() string { return s.table }

// newID is a random 64-hex network ID whose short form is not all digits
// (as container IDs).
func newID() string {
	for {
		b := make([]byte, 32)
		rand.Read(b)
		id := hex.EncodeToString(b)
		if strings.ContainsAny(id[:12], "abcdef") {
			return id
		}
	}
}

// networksTx reads every network record.
func networksTx(tx *metadata.Tx) ([]*Network, error) {
	var out []*Network
	err := tx.ForEach(metadata.BucketNetworks, func(k string, raw []byte) error {
		var n Network
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("network record %s: %w", k, err)
		}
		out = append(out, &n)
		return nil
	})
	return out, err
}

// ErrNotFound is Docker's message for an unknown network.
func ErrNotFound(ref string) error { return errdefs.NotFound("network %s not found", ref) }

// resolveTx finds a network by full ID, name, or unique ID prefix, in
// Docker's order. Predefined networks not yet made resolve once
// ensurePredefined has run.
func resolveTx(tx *metadata.Tx, ref string) (*Network, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument("network name or ID is empty")
	}
	all, err := networksTx(tx)
	if err != nil {
		return nil, err
	}
	for _, n := range all {
		if n.ID == ref {
			return n, nil
		}
	}
	for _, n := range all {
		if n.Name == ref {
			return n, nil
		}
	}
	var match []*Network
	for _, n := range all {
		if strings.HasPrefix(n.ID, ref) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 0:
		return nil, ErrNotFound(ref)
	case 1:
		return match[0], nil
	}
	return nil, errdefs.InvalidArgument("network %s is ambiguous (%d matches found based on ID prefix)", ref, len(match))
}

// ensurePredefined makes Docker's predefined networks the first time they
// are needed: bridge (on a subnet of the default pools that no host route
// and no other network uses), host and none.
func (s *Service) ensurePredefined(tx *metadata.Tx) error {
	all, err := networksTx(tx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	var used []netip.Prefix
	for _, n := range all {
		have[n.Name] = true
		used = append(used, subnetsOf(n)...)
	}
	if have[BridgeName] && have[HostName] && have[NoneName] {
		return nil
	}
	now := s.now().UTC()
	mk := func(name, driver string) *Network {
		return &Network{Name: name, ID: newID(), Created: now, Scope: "local", Driver: driver,
			IPAM: IPAM{Driver: "default", Config: []IPAMConfig{}}, Options: map[string]string{}, Labels: map[string]string{}}
	}
	var add []*Network
	if !have[BridgeName] {
		n := mk(BridgeName, "bridge")
		subnet, err := s.claims.pick(n.ID, append(used, s.hostRoutes()...), ipam.PickSubnet)
		if err != nil {
			return err
		}
		n.IPAM.Config = []IPAMConfig{{Subnet: subnet.String(), Gateway: subnet.Addr().Next().String()}}
		n.Options = map[string]string{
			OptDefault: "true", OptICC: "true", OptMasquerade: "true",
			OptHostBinding: "0.0.0.0", OptBridgeName: s.bridge, OptMTU: "1500",
		}
		n.Bridge = s.bridge
		add = append(add, n)
	}
	if !have[HostName] {
		add = append(add, mk(HostName, "host"))
	}
	if !have[NoneName] {
		add = append(add, mk(NoneName, "null"))
	}
	for _, n := range add {
		if err := tx.Put(metadata.BucketNetworks, n.ID, n); err != nil {
			return err
		}
	}
	return nil
}

func subnetsOf(n *Network) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// update runs fn in a write transaction with the predefined networks made.
func (s *Service) update(ctx context.Context, fn func(tx *metadata.Tx) error) error {
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		if err := s.ensurePredefined(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// view runs fn on the records; when a predefined network is missing (a
// new store), it makes them first, once.
func (s *Service) view(ctx context.Context, fn func(tx *metadata.Tx) error) error {
	missing := false
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		for _, name := range []string{BridgeName, HostName, NoneName} {
			if _, err := resolveByName(tx, name); err != nil {
				missing = true
				return nil
			}
		}
		return fn(tx)
	})
	if err != nil || !missing {
		return err
	}
	return s.update(ctx, fn)
}

func resolveByName(tx *metadata.Tx, name string) (*Network, error) {
	all, err := networksTx(tx)
	if err != nil {
		return nil, err
	}
	for _, n := range all {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, ErrNotFound(name)
}

// CreateOptions is `network create`'s request.
type CreateOptions struct {
	Name       string
	Driver     string
	EnableIPv6 bool
	IPAM       IPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	Options    map[string]string
	Labels     map[string]string
	// CheckDuplicate is Docker's (always on since API 1.44).
	CheckDuplicate bool
}

// Create makes a user-defined network.
func (s *Service) Create(ctx context.Context, o CreateOptions) (*Network, error) {
	if o.Name == "" {
		return nil, errdefs.InvalidArgument("network name must not be empty")
	}
	// Docker accepts any name; berth keys networks by ID and names its
	// bridges after the ID, so no name reaches the kernel either.
	if IsPredefined(o.Name) {
		return nil, errdefs.Forbidden("operation is not permitted on predefined %s network", o.Name)
	}
	if o.Driver == "" {
		o.Driver = "bridge"
	}
	switch o.Driver {
	case "bridge":
	case "overlay":
		return nil, errdefs.Unavailable(`This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`)
	case "host", "null":
		return nil, errdefs.Forbidden("only one instance of %q network is allowed", o.Driver)
	case "macvlan", "ipvlan":
		return nil, errdefs.NotImplemented("the %s driver is not supported by berth: use bridge", o.Driver)
	default:
		return nil, errdefs.NotFound("plugin %q not found", o.Driver)
	}
	if o.Ingress {
		return nil, errdefs.Forbidden("ingress network can only be created in swarm mode")
	}
	if o.IPAM.Driver == "" {
		o.IPAM.Driver = "default"
	}
	if o.IPAM.Driver != "default" {
		return nil, errdefs.NotFound("plugin %q not found", o.IPAM.Driver)
	}
	if v, ok := o.Options[OptMTU]; ok {
		mtu, err := strconv.Atoi(v)
		if err != nil {
			return nil, errdefs.InvalidArgument("failed to parse %s value: %s (%v)", OptMTU, v, err)
		}
		if mtu < 68 || mtu > 65535 {
			return nil, errdefs.InvalidArgument("invalid MTU number: %d", mtu)
		}
	}
	if v, ok := o.Options[OptHostBinding]; ok {
		if _, err := netip.ParseAddr(v); err != nil {
			return nil, errdefs.InvalidArgument("failed to parse %s value: %s (nil ip)", OptHostBinding, v)
		}
	}
	if b := o.Options[OptBridgeName]; b != "" && (len(b) > 15 || strings.ContainsAny(b, "/ \t:")) {
		return nil, errdefs.InvalidArgument("invalid bridge name %q: at most 15 characters, no '/', ':' or spaces", b)
	}
	var pools []ipam.Pool
	for _, c := range o.IPAM.Config {
		if c.Subnet == "" {
			if c.IPRange != "" || c.Gateway != "" {
				return nil, errdefs.InvalidArgument("ip-range or gateway given without a subnet")
			}
			continue
		}
		p, err := ipam.ParsePool(c.Subnet, c.IPRange, c.Gateway)
		if err != nil {
			return nil, err
		}
		pools = append(pools, p)
	}
	for i, a := range pools {
		for _, b := range pools[i+1:] {
			if a.Subnet.Overlaps(b.Subnet) {
				return nil, errdefs.Forbidden("Pool overlaps with other one on this address space")
			}
		}
	}
	n := &Network{Name: o.Name, ID: newID(), Created: s.now().UTC(), Scope: "local", Driver: o.Driver,
		EnableIPv6: o.EnableIPv6, Internal: o.Internal, Attachable: o.Attachable, Ingress: o.Ingress,
		IPAM:    IPAM{Driver: o.IPAM.Driver, Options: o.IPAM.Options, Config: []IPAMConfig{}},
		Options: maps.Clone(o.Options), Labels: maps.Clone(o.Labels)}
	if n.Options == nil {
		n.Options = map[string]string{}
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Bridge = bridgeName(n.ID, n.Options)
	err := s.update(ctx, func(tx *metadata.Tx) error {
		all, err := networksTx(tx)
		if err != nil {
			return err
		}
		var used []netip.Prefix
		for _, other := range all {
			if other.Name == n.Name {
				return errdefs.Conflict("network with name %s already exists", n.Name)
			}
			if other.Bridge != "" && other.Bridge == n.Bridge {
				return errdefs.Conflict("bridge name %s is used by network %s", n.Bridge, other.Name)
			}
			used = append(used, subnetsOf(other)...)
		}
		for _, p := range pools {
			for _, u := range used {
				if p.Subnet.Overlaps(u) {
					return errdefs.Forbidden("Pool overlaps with other one on this address space")
				}
			}
		}
		cfg := []IPAMConfig{}
		have4, have6 := false, false
		for i, p := range pools {
			c := o.IPAM.Config[i]
			c.Subnet, c.Gateway = p.Subnet.String(), p.Gateway.String()
			if p.Range.IsValid() {
				c.IPRange = p.Range.String()
			}
			if p.Subnet.Addr().Is6() && !o.EnableIPv6 {
				// Docker keeps an IPv6 subnet of a network without
				// --ipv6, unused, and gives it no gateway.
				c.Gateway = ""
			}
			cfg = append(cfg, c)
			have4 = have4 || p.Subnet.Addr().Is4()
			have6 = have6 || p.Subnet.Addr().Is6()
		}
		if !have4 {
			sub, err := s.claims.pick(n.ID, append(used, s.hostRoutes()...), ipam.PickSubnet)
			if err != nil {
				return err
			}
			cfg = append([]IPAMConfig{{Subnet: sub.String(), Gateway: sub.Addr().Next().String()}}, cfg...)
		}
		if n.EnableIPv6 && !have6 {
			sub, err := ipam.PickSubnet6(n.ID, used)
			if err != nil {
				return err
			}
			cfg = append(cfg, IPAMConfig{Subnet: sub.String(), Gateway: sub.Addr().Next().String()})
		}
		n.IPAM.Config = cfg
		n.UserSubnets = len(pools) > 0
		return tx.Put(metadata.BucketNetworks, n.ID, n)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Get returns the network ref names.
func (s *Service) Get(ctx context.Context, ref string) (*Network, error) {
	var n *Network
	err := s.view(ctx, func(tx *metadata.Tx) error {
		var err error
		n, err = resolveTx(tx, ref)
		return err
	})
	if err == nil {
		n = s.withDefaultIP(n)
	}
	return n, err
}

// List returns every network, by name.
func (s *Service) List(ctx context.Context) ([]*Network, error) {
	var out []*Network
	err := s.view(ctx, func(tx *metadata.Tx) error {
		var err error
		out, err = networksTx(tx)
		return err
	})
	for i := range out {
		out[i] = s.withDefaultIP(out[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Endpoints returns the allocations on network id, one per container (its
// IPv4 and IPv6 addresses), keyed by container ID.
func (s *Service) Endpoints(ctx context.Context, id string) (map[string][]Allocation, error) {
	out := map[string][]Allocation{}
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEachPrefix(metadata.BucketIPAM, id+"/", func(_ string, raw []byte) error {
			var a Allocation
			if err := json.Unmarshal(raw, &a); err != nil {
				return err
			}
			if a.ReleasingPid != 0 {
				return nil // its container is gone (DetachDeferred)
			}
			out[a.ContainerID] = append(out[a.ContainerID], a)
			return nil
		})
	})
	return out, err
}

// inUseTx reports whether any container holds an address on network id.
func inUseTx(tx *metadata.Tx, id string) bool {
	used := false
	tx.ForEachPrefix(metadata.BucketIPAM, id+"/", func(_ string, raw []byte) error {
		var al Allocation
		if json.Unmarshal(raw, &al) == nil && al.ReleasingPid != 0 {
			return nil // its container is gone (DetachDeferred)
		}
		used = true
		return errStop
	})
	return used
}

var errStop = fmt.Errorf("stop")

// Remove deletes a user-defined network that no running container uses,
// with Docker's refusals. teardown removes its bridge (the dataplane),
// after the record is gone.
func (s *Service) Remove(ctx context.Context, ref string) (*Network, error) {
	var n *Network
	err := s.update(ctx, func(tx *metadata.Tx) error {
		var err error
		if n, err = resolveTx(tx, ref); err != nil {
			return err
		}
		if !n.IsUserDefined() {
			return errdefs.Forbidden("%s is a pre-defined network and cannot be removed", n.Name)
		}
		if inUseTx(tx, n.ID) {
			return errdefs.Forbidden("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
		}
		s.claims.release(n.ID)
		return tx.Delete(metadata.BucketNetworks, n.ID)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Prunable lists the user-defined networks no running container uses, for
// which keep (the prune filters) holds.
func (s *Service) Prunable(ctx context.Context, keep func(*Network) bool) ([]*Network, error) {
	var out []*Network
	err := s.view(ctx, func(tx *metadata.Tx) error {
		all, err := networksTx(tx)
		if err != nil {
			return err
		}
		for _, n := range all {
			if n.IsUserDefined() && !inUseTx(tx, n.ID) && keep(n) {
				out = append(out, n)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *Network) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// HostRoutes reads the destinations of the host's IPv4 and IPv6 routes
// (/proc/net/route, /proc/net/ipv6_route), leaving out default routes.
func HostRoutes() []netip.Prefix {
	var out []netip.Prefix
	if f, err := os.Open("/proc/net/route"); err == nil {
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 8 {
				continue
			}
			dst, err1 := strconv.ParseUint(fl[1], 16, 32)
			mask, err2 := strconv.ParseUint(fl[7], 16, 32)
			if err1 != nil || err2 != nil || mask == 0 {
				continue
			}
			var d, m [4]byte
			binary.LittleEndian.PutUint32(d[:], uint32(dst))
			binary.LittleEndian.PutUint32(m[:], uint32(mask))
			bits := 0
			for _, b := range m {
				for ; b != 0; b <<= 1 {
					bits++
				}
			}
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked())
		}
		f.Close()
	}
	if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 2 {
				continue
			}
			raw, err := hex.DecodeString(fl[0])
			bits, err2 := strconv.ParseUint(fl[1], 16, 8)
			if err != nil || err2 != nil || len(raw) != 16 || bits == 0 {
				continue
			}
			a := netip.AddrFrom16([16]byte(raw))
			if a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() {
				continue
			}
			out = append(out, netip.PrefixFrom(a, int(bits)).Masked())
		}
		f.Close()
	}
	return out
}
