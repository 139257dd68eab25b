package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// PortRequest asks for a container's published ports (docker port).
type PortRequest struct {
	Container string
	// PrivatePort is "PORT[/PROTO]" (tcp when no protocol is given); empty
	// for every published port.
	PrivatePort string
}

// PortMapping is one published port: the container's port ("80/tcp") and
// where the host publishes it.
type PortMapping struct {
	PrivatePort string
	HostIP      string
	HostPort    string
}

// ErrNoPublicPort is the error of a PrivatePort that is not published.
type ErrNoPublicPort struct{ Port, Container string }

func (e *ErrNoPublicPort) Error() string {
	return fmt.Sprintf("No public port '%s' published for %s", e.Port, e.Container)
}

// Is makes it a not-found error for errdefs.
func (e *ErrNoPublicPort) Is(target error) bool { return target == errdefs.ErrNotFound }

// ContainerPorts lists a container's published ports as docker's port
// command reads them from the container's network settings, sorted by
// private port. A PrivatePort that is not published is an ErrNoPublicPort.
// Until bridge networking lands no container has published ports.
func (e *Engine) ContainerPorts(ctx context.Context, req PortRequest) ([]PortMapping, error) {
	var want string
	if req.PrivatePort != "" {
		port, proto, _ := strings.Cut(req.PrivatePort, "/")
		if proto == "" {
			proto = "tcp"
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, errdefs.InvalidArgument("invalid port (%s): %v", port, err)
		}
		want = port + "/" + strings.ToLower(proto)
	}
	c, err := e.Containers.Get(ctx, req.Container)
	if err != nil {
		return nil, err
	}
	ports := e.containerDocument(c).NetworkSettings.Ports
	keys := make([]string, 0, len(ports))
	for k := range ports {
		if want == "" || k == want {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return portLess(keys[i], keys[j]) })
	var out []PortMapping
	for _, k := range keys {
		for _, b := range ports[k] {
			out = append(out, PortMapping{PrivatePort: k, HostIP: b.HostIP, HostPort: b.HostPort})
		}
	}
	if want != "" && len(out) == 0 {
		return nil, &ErrNoPublicPort{Port: req.PrivatePort, Container: req.Container}
	}
	return out, nil
}

// portLess orders "PORT/PROTO" keys by number, then protocol.
func portLess(a, b string) bool {
	pa, qa, _ := strings.Cut(a, "/")
	pb, qb, _ := strings.Cut(b, "/")
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb {
		return na < nb
	}
	return qa < qb
}
