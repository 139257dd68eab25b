package network

import "github.com/berth-dev/berth/internal/network/dataplane"

// ForwardWarnings are the warnings for a container on n, or for n's
// creation, when another firewall on the host drops the traffic berth
// forwards for n's bridge (dataplane/forwardcheck.go): none for a network
// without a bridge or an --internal one (nothing of it is forwarded to
// other hosts), and none when the check itself fails (it only advises).
func (s *Service) ForwardWarnings(n *Network) []string {
	if n == nil || n.Bridge == "" || n.Driver != "bridge" || n.Internal {
		return nil
	}
	dp := dataplane.New(dataplane.WithTable(s.table), dataplane.WithDockerUserChainFunc(s.dockerUserChain))
	blockers, err := dp.ForwardBlockers(n.Bridge, n.EnableIPv6)
	if err != nil {
		return nil
	}
	var out []string
	for _, b := range blockers {
		out = append(out, b.Warning(n.Bridge))
	}
	return out
}
