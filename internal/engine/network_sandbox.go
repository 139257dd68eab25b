package engine

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/berth-dev/berth/internal/container"
)

// fillSandbox sets SandboxID and SandboxKey as Docker's inspect shows
// them once the container has started (Docker keeps both after a stop):
// the key is the network namespace's path; the ID, 64 hex digits, names
// the namespace of this run (berth has no sandbox object: it is derived
// from the container and its start time, so it changes on each start as
// Docker's does).
func (e *Engine) fillSandbox(c *container.Container, ns *NetworkSettings) {
	if ns == nil || container.ParseTime(c.State.StartedAt).IsZero() {
		return
	}
	key := e.Containers.SandboxKey(c)
	if key == "" {
		return
	}
	sum := sha256.Sum256([]byte("sandbox\x00" + c.ID + "\x00" + c.State.StartedAt))
	ns.SandboxID, ns.SandboxKey = hex.EncodeToString(sum[:]), key
}
