package container

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// resolveRunningUser resolves an `exec -u` value in running container c
// against the /etc/passwd and /etc/group its processes see, volumes and
// binds included (as runc resolves it inside the container, for Docker).
// The files are read below a descriptor of the container's own root (see
// withRoot), never through a path the container could redirect.
func (s *Service) resolveRunningUser(ctx context.Context, c *Container, spec string) (specs.User, error) {
	var u specs.User
	err := s.withRoot(ctx, c, true, func(rootfd int) error {
		var err error
		u, _, err = runtime.ResolveUserAt(rootfd, spec, c.HostConfig.GroupAdd)
		return err
	})
	return u, err
}
