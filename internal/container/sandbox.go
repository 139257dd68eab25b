package container

// SandboxKey is the network namespace of container c as Docker's
// NetworkSettings.SandboxKey names it: the bind-mounted nsfs file of its
// own namespace; "" for the host's or another container's (Docker
// reports none for a container that joins another's).
func (s *Service) SandboxKey(c *Container) string {
	if !ownNetNS(c) {
		return ""
	}
	return s.netnsPath(c.ID)
}
