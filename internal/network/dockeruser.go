package network

import (
	"encoding/json"
	"os"
)

// dockerUserKeys is the part of daemon.json that says whether berth may
// add its rules to Docker's DOCKER-USER chain when a Docker engine runs
// beside it (dataplane/dockeruser.go): "docker-user-chain": false keeps
// berth out of it (and its next sweep takes away what it had added).
type dockerUserKeys struct {
	DockerUserChain *bool `json:"docker-user-chain"`
}

// dockerUserChain reads the switch at each change of a network, as the
// publish policy is read. Default on; a file that cannot be read or parsed
// leaves it on: the attach reports that file's error itself (policy).
func (s *Service) dockerUserChain() bool {
	if s.publish.File == "" {
		return true
	}
	raw, err := os.ReadFile(s.publish.File)
	if err != nil {
		return true
	}
	var keys dockerUserKeys
	if json.Unmarshal(raw, &keys) != nil || keys.DockerUserChain == nil {
		return true
	}
	return *keys.DockerUserChain
}
