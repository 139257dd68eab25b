package network

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/network/dns"
)

// Default builds the attacher of berth's processes (CLI and monitors):
// the kernel side through the dataplane, in the root's own nftables table
// (so that one root's Reconcile never removes another's networks), and
// the embedded DNS of user-defined networks with its name table under
// the runroot. Building it costs nothing: sockets and files are opened
// when a container is attached.
func Default(svc *Service, runRoot string) *Attacher {
	dp := dataplane.New(dataplane.WithTable(svc.table), dataplane.WithDockerUserChainFunc(svc.dockerUserChain))
	reg := dns.OpenRegistry(filepath.Join(runRoot, "network", "dns"))
	var mu sync.Mutex
	lastPorts := map[string]dns.Ports{} // netns -> its server's ports
	a := NewAttacher(svc, dp, reg, func(ctx context.Context, cfg dns.Config) (DNSServer, error) {
		// The server listens on ports of its own behind a redirect of
		// 127.0.0.11:53, so that the container's processes may listen on
		// port 53 themselves; a restart asks for the previous run's
		// ports first, which leaves the redirect as it is.
		mu.Lock()
		cfg.Redirect, cfg.Ports = dp, lastPorts[cfg.NetNSPath]
		mu.Unlock()
		srv, err := dns.Start(ctx, cfg, reg)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		lastPorts[cfg.NetNSPath] = srv.Ports()
		mu.Unlock()
		return srv, nil
	})
	a.lockPath = filepath.Join(runRoot, "network", "attach.lock")
	a.notifyDir = filepath.Join(runRoot, "network", "changed")
	return a
}
