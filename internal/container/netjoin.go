package container

import "context"

// adoptJoinedHostname gives a container that joins another's network
// namespace (--network container:X) X's hostname and domain name, as
// Docker does at each start (its Config.Hostname shows X's, and `hostname`
// inside prints it, although the UTS namespace is not shared). Docker
// refuses -h with that mode, so nothing of the user's is overwritten. A
// missing X is left to attachNetwork's error.
func (s *Service) adoptJoinedHostname(ctx context.Context, c *Container) (*Container, error) {
	other, joined := ContainerNetNS(c.HostConfig.NetworkMode)
	if !joined {
		return c, nil
	}
	o, err := s.lockedGet(ctx, other)
	if err != nil || o.Config.Hostname == c.Config.Hostname && o.Config.Domainname == c.Config.Domainname {
		return c, nil
	}
	return s.update(ctx, c.ID, func(c *Container) error {
		c.Config.Hostname, c.Config.Domainname = o.Config.Hostname, o.Config.Domainname
		return nil
	})
}
