package engine

import (
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/filters"
)

// Port is one port of a container in the list (GET /containers/json): a
// published one (IP, PublicPort) or one only exposed.
type Port struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort uint16 `json:"PrivatePort"`
	PublicPort  uint16 `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// summaryPorts lists a container's ports as Docker's list does: the
// published ones while it runs, else (and besides) the exposed ones.
func summaryPorts(c *container.Container) []Port {
	out := []Port{}
	doc := networkSettings(c)
	seen := map[string]bool{}
	for key, bs := range doc.Ports {
		num, proto, _ := strings.Cut(key, "/")
		priv, _ := strconv.Atoi(num)
		seen[key] = true
		if len(bs) == 0 {
			out = append(out, Port{PrivatePort: uint16(priv), Type: proto})
		}
		for _, b := range bs {
			pub, _ := strconv.Atoi(b.HostPort)
			out = append(out, Port{IP: b.HostIP, PrivatePort: uint16(priv), PublicPort: uint16(pub), Type: proto})
		}
	}
	for key := range c.Config.ExposedPorts {
		if seen[key] {
			continue
		}
		num, proto, _ := strings.Cut(key, "/")
		if proto == "" {
			proto = "tcp"
		}
		priv, _ := strconv.Atoi(num)
		out = append(out, Port{PrivatePort: uint16(priv), Type: proto})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
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
	return out
}

// onNetwork is ps's network filter: the container is connected to a
// network of that name or ID.
func onNetwork(f filters.Args, c *container.Container) bool {
	if !f.Contains("network") {
		return true
	}
	if f.ExactMatch("network", c.HostConfig.NetworkMode) {
		return true
	}
	for name, es := range c.NetworkSettings.Networks {
		if f.ExactMatch("network", name) || es.NetworkID != "" && f.ExactMatch("network", es.NetworkID) {
			return true
		}
	}
	return false
}

// publishes is ps's publish filter: one of the container's ports
// ("80", "80/udp", "8000-8080/tcp") is published while it runs.
func publishes(c *container.Container, vals []string) bool {
	ports := networkSettings(c).Ports
	for _, v := range vals {
		rng, proto, _ := strings.Cut(v, "/")
		if proto == "" {
			proto = "tcp"
		}
		lo, hi, err := portRange(rng)
		if err != nil {
			continue
		}
		for p := lo; p <= hi; p++ {
			if len(ports[strconv.Itoa(p)+"/"+proto]) > 0 {
				return true
			}
		}
	}
	return false
}
