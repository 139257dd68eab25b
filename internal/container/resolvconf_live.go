package container

import "os"

// RewriteResolvConf rewrites the resolv.conf of a running container c for
// its DNS as it is now: the embedded server's 127.0.0.11 when it is on a
// user-defined network, else the host's resolvers (or --dns), as Docker
// does when `network connect` gives a container its first user network.
// The file is rewritten in place: the container's bind mount keeps its
// inode.
func RewriteResolvConf(c *Container, embedded bool) error {
	if c.ResolvConfPath == "" {
		return nil
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	return os.WriteFile(c.ResolvConfPath, resolvConf(host, c.HostConfig, embedded), 0o644)
}
