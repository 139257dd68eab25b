package cli

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/engine"
)

// displayPorts words a container's ports as docker's PORTS column does:
// consecutive ports published to the same address with the same numbers
// are shown as one range ("0.0.0.0:8080-8081->8080-8081/tcp"), exposed
// ones as "80/tcp", others one by one ("0.0.0.0:8080->80/tcp"), after
// the ranges.
func displayPorts(ports []engine.Port) string {
	ports = append([]engine.Port(nil), ports...)
	sort.SliceStable(ports, func(i, j int) bool {
		a, b := ports[i], ports[j]
		if a.PrivatePort != b.PrivatePort {
			return a.PrivatePort < b.PrivatePort
		}
		if a.IP != b.IP {
			return a.IP < b.IP
		}
		if a.PublicPort != b.PublicPort {
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})
	type span struct {
		ip, proto   string
		first, last uint16
	}
	var order []string
	open := map[string]*span{}
	var out, mapped []string
	word := func(s *span) string {
		r := strconv.Itoa(int(s.first))
		if s.last != s.first {
			r += "-" + strconv.Itoa(int(s.last))
		}
		if s.ip != "" {
			r = net.JoinHostPort(s.ip, r) + "->" + r
		}
		return r + "/" + s.proto
	}
	for _, p := range ports {
		if p.IP != "" && p.PublicPort != p.PrivatePort {
			mapped = append(mapped, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.IP, strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
			continue
		}
		key := p.IP + "/" + p.Type
		s := open[key]
		switch {
		case s == nil:
			open[key] = &span{ip: p.IP, proto: p.Type, first: p.PrivatePort, last: p.PrivatePort}
			order = append(order, key)
		case p.PrivatePort == s.last+1:
			s.last = p.PrivatePort
		default:
			out = append(out, word(s))
			open[key] = &span{ip: p.IP, proto: p.Type, first: p.PrivatePort, last: p.PrivatePort}
		}
	}
	for _, k := range order {
		out = append(out, word(open[k]))
	}
	return strings.Join(append(out, mapped...), ", ")
}
