package engine

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
)

// ParsePortSpecs reads -p values as Docker's CLI does:
// [ip:][hostPort:]containerPort[/proto], with ranges on either side
// ("8080-8081:80-81"; a host range for one container port means "a free
// one of these") and IPv6 host addresses in brackets. It returns the
// exposed ports and the bindings (HostPort "" = a free port at start).
func ParsePortSpecs(specs []string) (map[string]struct{}, container.PortMap, error) {
	exposed := map[string]struct{}{}
	bindings := container.PortMap{}
	for _, spec := range specs {
		if err := parsePortSpec(spec, exposed, bindings); err != nil {
			return nil, nil, err
		}
	}
	return exposed, bindings, nil
}

func parsePortSpec(spec string, exposed map[string]struct{}, bindings container.PortMap) error {
	rest, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return errdefs.InvalidArgument("invalid proto: %s", proto)
	}
	var ip, hostPort, ctrPort string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return errdefs.InvalidArgument("invalid IP address: %s", rest)
		}
		ip = rest[1:end]
		after := strings.TrimPrefix(rest[end+1:], ":")
		hostPort, ctrPort, _ = strings.Cut(after, ":")
		if ctrPort == "" {
			return errdefs.InvalidArgument("no port specified: %s<empty>", spec)
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPort = parts[0]
		case 2:
			hostPort, ctrPort = parts[0], parts[1]
		case 3:
			ip, hostPort, ctrPort = parts[0], parts[1], parts[2]
		default:
			// An IPv6 address without brackets: the last two fields are the ports.
			n := len(parts)
			ip, hostPort, ctrPort = strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
		}
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return errdefs.InvalidArgument("invalid IP address: %s", ip)
		}
	}
	if ctrPort == "" {
		return errdefs.InvalidArgument("no port specified: %s<empty>", spec)
	}
	cLo, cHi, err := portRange(ctrPort)
	if err != nil {
		return errdefs.InvalidArgument("invalid containerPort: %s", ctrPort)
	}
	var hLo, hHi int
	if hostPort != "" {
		if hLo, hHi, err = portRange(hostPort); err != nil {
			return errdefs.InvalidArgument("invalid hostPort: %s", hostPort)
		}
	}
	n := cHi - cLo
	if hostPort != "" && hHi-hLo != n && n != 0 {
		return errdefs.InvalidArgument("invalid ranges specified for container and host Ports: %s and %s", ctrPort, hostPort)
	}
	for i := 0; i <= n; i++ {
		key := strconv.Itoa(cLo+i) + "/" + proto
		exposed[key] = struct{}{}
		b := container.PortBinding{HostIP: ip}
		switch {
		case hostPort == "":
		case n == 0 && hHi != hLo:
			b.HostPort = hostPort // one free port of the range
		default:
			b.HostPort = strconv.Itoa(hLo + i)
		}
		bindings[key] = append(bindings[key], b)
	}
	return nil
}

// portRange reads "80" or "80-81" (1-65535).
func portRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = strconv.Atoi(a)
	if err != nil || lo < 1 || lo > 65535 {
		return 0, 0, errdefs.InvalidArgument("invalid port %s", s)
	}
	hi = lo
	if isRange {
		hi, err = strconv.Atoi(b)
		if err != nil || hi < lo || hi > 65535 {
			return 0, 0, errdefs.InvalidArgument("invalid port %s", s)
		}
	}
	return lo, hi, nil
}
