package engine

import (
	"sort"

	"github.com/berth-dev/berth/internal/network"
)

// publishConfig is where the network service reads the configuration of
// published ports: daemon.json (the file of the registry settings) and
// the global flag --default-bind-ip.
func publishConfig(cfg Config) network.PublishConfig {
	file := cfg.RegistryConfig
	if file == "" {
		file = DefaultConfigFile
	}
	return network.PublishConfig{File: file, IP: cfg.DefaultBindIP}
}

// checkPublish refuses at create the port bindings that publishing would
// refuse at start (an address publish-addresses does not list), so that
// run leaves no container behind.
func (e *Engine) checkPublish(n *network.Network, hc *CreateHostConfig) error {
	ports := make([]string, 0, len(hc.PortBindings))
	for p := range hc.PortBindings {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	for _, p := range ports {
		for _, b := range hc.PortBindings[p] {
			if err := e.Networks.CheckPublish(n, p, b.HostIP); err != nil {
				return err
			}
		}
	}
	if hc.PublishAllPorts {
		return e.Networks.CheckPublish(n, "(-P)", "")
	}
	return nil
}
