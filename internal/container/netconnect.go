package container

import "context"

// NetworkChange is what `network connect` and `disconnect` do to a
// container: fn changes c.NetworkSettings.Networks (c is the record read
// under the container's lock) and, when running is true, connects or
// disconnects the container at once through the endpoint ep (its network
// namespace); what fn leaves in c.NetworkSettings is recorded.
type NetworkChange func(ctx context.Context, c *Container, ep *Endpoint, running bool) error

// ChangeNetworks applies change to container ref under its lock, so that
// no start or stop runs meanwhile, and records its networks.
func (s *Service) ChangeNetworks(ctx context.Context, ref string, change NetworkChange) (*Container, error) {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	running := c.State.Running || c.State.Paused || c.State.Restarting
	if err := change(ctx, c, s.endpoint(c), running); err != nil {
		return nil, err
	}
	return s.update(ctx, c.ID, func(r *Container) error {
		r.NetworkSettings = c.NetworkSettings
		return nil
	})
}
