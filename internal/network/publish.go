package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Where published ports go, from berth's daemon.json (the file of
// registry settings too): dockerd's "ip" (its --ip: the default bridge's
// host_binding_ipv4) and berth's own "publish-addresses" (ports published
// on the unspecified address go to the listed host addresses only; any
// other address a -p names is refused). The file is read at each attach,
// by the monitor too, so a container's every start or restart (its
// restart policy, system restore) follows the file as it is then; what a
// running container published stays as `port` and `ps` show it.

// PublishConfig locates the configuration of published ports.
type PublishConfig struct {
	// File is daemon.json ("" for none).
	File string
	// IP overrides the file's "ip" (the global flag --default-bind-ip).
	IP string
}

// publishPolicy is the configuration as read.
type publishPolicy struct {
	source string // the file, for messages
	// defaultIP is the default bridge's host address for ports
	// published without one (invalid: every address).
	defaultIP netip.Addr
	// only are the addresses ports may be published on (empty: any).
	only []netip.Addr
}

// publishKeys is the part of daemon.json read here.
type publishKeys struct {
	IP               string   `json:"ip"`
	PublishAddresses []string `json:"publish-addresses"`
}

// SetPublishConfig says where the configuration of published ports is.
func (s *Service) SetPublishConfig(c PublishConfig) { s.publish = c }

// PublishConfig is the service's configuration of published ports (what
// a monitor is told to read).
func (s *Service) PublishConfig() PublishConfig { return s.publish }

// policy reads the configuration.
func (s *Service) policy() (publishPolicy, error) {
	return loadPublishPolicy(s.publish)
}

func loadPublishPolicy(c PublishConfig) (publishPolicy, error) {
	p := publishPolicy{source: c.File}
	var keys publishKeys
	if c.File != "" {
		raw, err := os.ReadFile(c.File)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return p, errdefs.InvalidArgument("read configuration %s: %v", c.File, err)
		default:
			if err := json.Unmarshal(raw, &keys); err != nil {
				return p, errdefs.InvalidArgument("configuration %s: %v", c.File, err)
			}
		}
	}
	ip, from := keys.IP, `"ip"`
	if c.IP != "" {
		ip, from = c.IP, "--default-bind-ip"
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return p, errdefs.InvalidArgument("configuration %s: %s %q is not an IP address (the default host address of published ports, as dockerd's --ip)", p.source, from, ip)
		}
		if !a.IsUnspecified() {
			p.defaultIP = a.Unmap()
		}
	}
	for _, s := range keys.PublishAddresses {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, errdefs.InvalidArgument("configuration %s: publish-addresses: %q is not an IP address: list host addresses such as \"127.0.0.1\"", p.source, s)
		}
		a = a.Unmap()
		switch {
		case a.IsUnspecified():
			return p, errdefs.InvalidArgument("configuration %s: publish-addresses: %s means every address: list the host addresses ports may be published on, or remove the key", p.source, a)
		case a == netip.IPv6Loopback():
			return p, errdefs.InvalidArgument("configuration %s: publish-addresses: ports cannot be published on ::1 (IPv6 has no route_localnet): list 127.0.0.1 instead", p.source)
		}
		if !slices.Contains(p.only, a) {
			p.only = append(p.only, a)
		}
	}
	return p, nil
}

// hostBinding is the network's host address for ports published without
// one: its com.docker.network.bridge.host_binding_ipv4 and, on the
// default bridge, the daemon's "ip" (Docker makes that the default
// bridge's option; it does not apply to user-defined networks). Invalid
// means every address.
func (p publishPolicy) hostBinding(n *Network) netip.Addr {
	if n == nil {
		return netip.Addr{}
	}
	if n.Name == BridgeName && p.defaultIP.IsValid() {
		return p.defaultIP
	}
	if a, err := netip.ParseAddr(n.Options[OptHostBinding]); err == nil && !a.IsUnspecified() {
		return a.Unmap()
	}
	return netip.Addr{}
}

// hostAddrs resolves where one port binding of a container on network n
// is published, in Docker's precedence: the -p address, the network's
// host binding (hostBinding), every address. With publish-addresses,
// every address means each listed one (of the family an explicit 0.0.0.0
// or :: names), and an address that is not listed is refused. The zero
// Addr alone stands for every address.
func (p publishPolicy) hostAddrs(binding, port string, n *Network) ([]netip.Addr, error) {
	var asked netip.Addr
	if binding != "" {
		a, err := netip.ParseAddr(binding)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid host IP %q for port %s", binding, port)
		}
		asked = a.Unmap()
	}
	from := ""
	if !asked.IsValid() {
		if hb := p.hostBinding(n); hb.IsValid() {
			asked = hb
			from = fmt.Sprintf(" (network %s's %s)", n.Name, OptHostBinding)
			if n.Name == BridgeName && p.defaultIP.IsValid() {
				from = " (the default host address, \"ip\" or --default-bind-ip)"
			}
		}
	}
	if len(p.only) == 0 {
		return []netip.Addr{asked}, nil
	}
	if asked.IsValid() && !asked.IsUnspecified() {
		if !slices.Contains(p.only, asked) {
			return nil, errdefs.InvalidArgument("cannot publish port %s on %s%s: publish-addresses in %s allows only %s; publish on one of those (-p %s:HOSTPORT:CONTAINERPORT) or add %s to the list",
				port, asked, from, p.sourceName(), joinAddrs(p.only), bracket(p.only[0]), asked)
		}
		return []netip.Addr{asked}, nil
	}
	// A container without an IPv6 address gets nothing forwarded from
	// the listed IPv6 ones: they are left out (as [::] is).
	v6 := n == nil || hasV6(n)
	var out []netip.Addr
	for _, a := range p.only {
		if asked.IsValid() && a.Is4() != asked.Is4() || !asked.IsValid() && a.Is6() && !v6 {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		what := "every address"
		if asked.IsValid() {
			what = asked.String()
		}
		return nil, errdefs.InvalidArgument("cannot publish port %s on %s: publish-addresses in %s lists no address of that family (%s)", port, what, p.sourceName(), joinAddrs(p.only))
	}
	return out, nil
}

func (p publishPolicy) sourceName() string {
	if p.source == "" {
		return "the configuration"
	}
	return p.source
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func bracket(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// withDefaultIP shows the default bridge with the daemon's "ip" as its
// host_binding_ipv4, as Docker does (the record keeps 0.0.0.0: the file
// may change). A configuration that cannot be read changes nothing here;
// publishing says what is wrong with it.
func (s *Service) withDefaultIP(n *Network) *Network {
	if n == nil || n.Name != BridgeName || s.publish.File == "" && s.publish.IP == "" {
		return n
	}
	p, err := s.policy()
	if err != nil || !p.defaultIP.IsValid() {
		return n
	}
	cp := *n
	cp.Options = maps.Clone(n.Options)
	if cp.Options == nil {
		cp.Options = map[string]string{}
	}
	cp.Options[OptHostBinding] = p.defaultIP.String()
	return &cp
}

// CheckPublish refuses, at create, a port binding that publishing on
// network n would refuse (an address publish-addresses does not list), so
// that nothing is left of the container. Each start checks again.
func (s *Service) CheckPublish(n *Network, port, hostIP string) error {
	if n == nil || n.Driver != "bridge" {
		return nil
	}
	p, err := s.policy()
	if err != nil {
		return err
	}
	_, err = p.hostAddrs(hostIP, port, n)
	return err
}

// MonitorArgs are the flags that tell a monitor (ParseMonitorArgs) where
// the configuration is, so that it publishes as the CLI would.
func MonitorArgs(c PublishConfig) []string {
	var args []string
	if c.File != "" {
		args = append(args, "--config-file", c.File)
	}
	if c.IP != "" {
		args = append(args, "--default-bind-ip", c.IP)
	}
	return args
}

func hasV6(n *Network) bool {
	for _, p := range n.Pools() {
		if p.Subnet.Addr().Is6() {
			return true
		}
	}
	return false
}
