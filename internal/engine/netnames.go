package engine

import (
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// checkHostsName refuses a name that berth writes into a container's
// /etc/hosts or /etc/hostname (hostname, --add-host name, network
// alias) when it could change the file's lines rather than name a host:
// whitespace would add names to the line, a newline or other control
// character would add lines (another address for any name), '#' would
// comment the rest out. No resolver accepts such a name anyway.
func checkHostsName(what, name string) error {
	if i := strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }); i >= 0 {
		return errdefs.InvalidArgument("invalid %s %q: it must not contain whitespace, control characters or '#'", what, name)
	}
	return nil
}

// checkEndpointNames checks the names a create request writes into
// /etc/hosts.
func checkEndpointNames(req *ContainerCreateRequest) error {
	if err := checkHostsName("hostname", req.Config.Hostname); err != nil {
		return err
	}
	if err := checkHostsName("domainname", req.Config.Domainname); err != nil {
		return err
	}
	for _, h := range req.HostConfig.ExtraHosts {
		name, _, _ := strings.Cut(h, ":")
		if err := checkHostsName("host name in add-host", name); err != nil {
			return err
		}
	}
	for _, es := range req.NetworkingConfig.EndpointsConfig {
		if es == nil {
			continue
		}
		for _, a := range es.Aliases {
			if err := checkHostsName("network alias", a); err != nil {
				return err
			}
		}
	}
	return nil
}
