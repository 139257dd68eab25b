package network

import (
	"context"
	"io"
	"path/filepath"

	"github.com/berth-dev/berth/internal/network/dataplane"
)

// Default builds the attacher of berth's processes (CLI and monitors).
//
// Until internal/network/dataplane and internal/network/dns provide their
// constructors, it runs over unwired: records and addresses are kept and
// shown, but no bridge, veth, rule or DNS server is made (containers on a
// bridge network have their loopback only, as with --network none). The
// real wiring is:
//
//	reg := dns.OpenRegistry(filepath.Join(runRoot, "network", "dns"))
//	a := NewAttacher(svc, dataplane.New(dataplane.WithTable(svc.DataplaneTable())), reg,
//		func(ctx context.Context, cfg dns.Config) (DNSServer, error) { return dns.Start(ctx, cfg, reg) })
//	a.lockPath = filepath.Join(runRoot, "network", "attach.lock")
//	a.notifyDir = filepath.Join(runRoot, "network", "changed")
//
// (checked against the netplane and netdns branches of 07:20: build,
// traffic, names and the e2e tests pass). The table is per root, so that
// one root's Reconcile never removes another's networks.
func Default(svc *Service, runRoot string) *Attacher {
	a := NewAttacher(svc, unwired{}, nil, nil)
	a.lockPath = filepath.Join(runRoot, "network", "attach.lock")
	a.notifyDir = filepath.Join(runRoot, "network", "changed")
	return a
}

// unwired is the dataplane stand-in of Default (see there).
type unwired struct{}

func (unwired) EnsureNetwork(context.Context, dataplane.Network) error { return nil }
func (unwired) RemoveNetwork(context.Context, dataplane.Network) error { return nil }
func (unwired) AddEndpoint(context.Context, dataplane.Network, dataplane.Endpoint) error {
	return nil
}
func (unwired) RemoveEndpoint(context.Context, dataplane.Network, dataplane.Endpoint) error {
	return nil
}
func (unwired) ReleaseEndpoint(context.Context, dataplane.Network, dataplane.Endpoint) error {
	return nil
}

// ReservePorts fills free host ports as the dataplane does (not held).
func (unwired) ReservePorts(_ context.Context, ports []dataplane.PortMapping) (io.Closer, error) {
	for i := range ports {
		if ports[i].HostPort == 0 {
			p, err := freePort(ports[i].Proto, ports[i].HostIP, 0, 0)
			if err != nil {
				return nil, err
			}
			ports[i].HostPort = p
		}
	}
	return io.NopCloser(nil), nil
}
func (unwired) Reconcile(context.Context, []dataplane.Network, []dataplane.Endpoint) error {
	return nil
}
