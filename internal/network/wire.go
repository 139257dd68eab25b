package network

import (
	"context"
	"io"

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
//	NewAttacher(svc, dataplane.New(), reg, func(ctx context.Context, cfg dns.Config) (DNSServer, error) {
//		return dns.Start(ctx, cfg, reg)
//	})
//
// with reg := dns.OpenRegistry(filepath.Join(runRoot, "network", "dns")).
func Default(svc *Service, runRoot string) *Attacher {
	_ = runRoot
	return NewAttacher(svc, unwired{}, nil, nil)
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
func (unwired) ReservePorts(context.Context, []dataplane.PortMapping) (io.Closer, error) {
	return io.NopCloser(nil), nil
}
func (unwired) Reconcile(context.Context, []dataplane.Network, []dataplane.Endpoint) error {
	return nil
}
